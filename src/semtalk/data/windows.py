"""Window bookkeeping over cached clips, and the Datasets that cut them.

Lengths follow the reference:

- a clip's usable length is whole seconds of its shortest modality: `(T // 30) * 30`;
- training windows: `window` frames every `stride` frames inside the usable length;
- test / validation sequences: the usable length cut to a multiple of 8 (n); generation then runs
  `(n - seed) // (window - seed)` windows advancing by `window - seed` and yields
  `seed + (window - seed) * windows` frames (e.g. 1906 frames, 64.1 s of audio -> 1890 -> 1888 -> 1864).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from semtalk.body.joints import FPS
from semtalk.body.parts import SMPLXParams, latent_all, split_parts
from semtalk.data.errors import DataError

#: per-frame arrays of a cached clip, cut along time with the window
FRAME_KEYS: tuple[str, ...] = (
    "hubert", "beat", "words", "sem", "emotion", "poses", "trans", "expressions", "contact",
)  # fmt: skip


def usable_frames(num_frames: int, fps: int = FPS) -> int:
    """Whole seconds of a clip, in frames."""
    return (int(num_frames) // fps) * fps


def train_starts(num_frames: int, window: int = 64, stride: int = 20, fps: int = FPS) -> list[int]:
    """Start frames of the training windows of a clip of `num_frames` frames."""
    usable = usable_frames(num_frames, fps)
    return list(range(0, usable - window + 1, stride)) if usable >= window else []


def sequence_length(num_frames: int, fps: int = FPS, multiple: int = 8) -> int:
    """Length of a clip as a whole validation/test sequence: whole seconds, cut to a multiple of 8."""
    return (usable_frames(num_frames, fps) // multiple) * multiple


def generation_windows(length: int, window: int = 64, seed_frames: int = 4) -> int:
    """Number of autoregressive generation windows over a sequence of `length` frames."""
    return max(0, (length - seed_frames) // (window - seed_frames))


def generation_starts(length: int, window: int = 64, seed_frames: int = 4) -> list[int]:
    step = window - seed_frames
    return [k * step for k in range(generation_windows(length, window, seed_frames))]


def generated_length(length: int, window: int = 64, seed_frames: int = 4) -> int:
    """Frames that generation over `length` frames produces (and that evaluation compares)."""
    return seed_frames + (window - seed_frames) * generation_windows(length, window, seed_frames)


def motion_parts(poses: torch.Tensor, trans: torch.Tensor, expressions: torch.Tensor, contact: torch.Tensor):
    """`(..., T, 165/3/100/4)` -> part features `face (..., T, 106)`, `upper 78`, `hands 180`, `lower 61` and
    `latent_all (..., T, 337)`."""
    params = SMPLXParams(poses=poses, expressions=expressions, trans=trans, contact=contact)
    out = split_parts(params)
    out["latent_all"] = latent_all(params)
    return out


class _ClipFiles:
    """Lazily opened cached clip files (each worker process opens its own handles)."""

    def __init__(self, paths: Sequence[Path], max_open: int = 64) -> None:
        self.paths = [Path(p) for p in paths]
        self.max_open = max_open
        self._open: OrderedDict[int, Any] = OrderedDict()

    def __getstate__(self) -> dict:
        return {"paths": self.paths, "max_open": self.max_open, "_open": OrderedDict()}

    def handle(self, i: int):
        from safetensors import safe_open

        h = self._open.get(i)
        if h is None:
            try:
                h = safe_open(str(self.paths[i]), framework="numpy")
            except Exception as exc:  # SafetensorError, OSError: truncated, overwritten or missing
                raise DataError(
                    self.paths[i],
                    f"cached clip file cannot be read ({exc.__class__.__name__}: {exc})",
                    "rerun `semtalk cache ROOT CACHE` (or the DataModule's prepare_data): it rebuilds damaged files",
                ) from exc
            self._open[i] = h
            if len(self._open) > self.max_open:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(i)
        return h

    def keys(self, i: int) -> set[str]:
        return set(self.handle(i).keys())

    def rows(self, i: int, key: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        h = self.handle(i)
        if start is None:
            return h.get_tensor(key)
        return h.get_slice(key)[start:stop]


def _sample(files: _ClipFiles, i: int, start: int, stop: int, keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in keys:
        out[k] = torch.from_numpy(np.array(files.rows(i, k, start, stop)))
    out["betas"] = torch.from_numpy(np.array(files.rows(i, "betas")))
    out["speaker"] = torch.as_tensor(int(files.rows(i, "speaker")[0]), dtype=torch.long)
    out.update(motion_parts(out["poses"], out["trans"], out["expressions"], out["contact"]))
    return out


class WindowDataset(Dataset):
    """Fixed-length training windows cut from cached clips.

    Each item holds, for a window of W frames (W = `window`, tokens of `token_frames` frames):
    `hubert (W, D)`, `beat (W, 3)`, `words (W,)` int64, `sem (W,)`, `sem_token (W / 4,)`, `emotion (W, De)`
    (when cached), `clip_text (Dc,)` (the window's sentence feature), motion `poses (W, 165)`,
    `trans (W, 3)`, `expressions (W, 100)`, `contact (W, 4)`, `betas (300,)`, `speaker ()` int64 (0-24),
    parts `face (W, 106)`, `upper (W, 78)`, `hands (W, 180)`, `lower (W, 61)`, `latent_all (W, 337)`, and
    `clip_id`, `start`.

    Args:
        paths: cached clip files.
        frames: frame count of each clip (same order).
        window, stride: window length and step in frames.
        token_frames: frames per token (for `sem_token`).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        frames: Sequence[int],
        window: int = 64,
        stride: int = 20,
        token_frames: int = 4,
        clip_ids: Sequence[str] | None = None,
    ) -> None:
        self.files = _ClipFiles(paths)
        self.clip_ids = list(clip_ids) if clip_ids is not None else [Path(p).stem for p in paths]
        self.window, self.stride, self.token_frames = window, stride, token_frames
        self.index: list[tuple[int, int, int]] = []  # (clip, start, window number)
        for c, n in enumerate(frames):
            self.index += [(c, s, k) for k, s in enumerate(train_starts(n, window, stride))]
        self._keys: tuple[str, ...] | None = None

    def __len__(self) -> int:
        return len(self.index)

    def _frame_keys(self, c: int) -> tuple[str, ...]:
        if self._keys is None:
            have = self.files.keys(c)
            self._keys = tuple(k for k in FRAME_KEYS if k in have)
        return self._keys

    def __getitem__(self, idx: int) -> dict[str, Any]:
        c, start, k = self.index[idx]
        out = _sample(self.files, c, start, start + self.window, self._frame_keys(c))
        from semtalk.features.semantic import token_means

        out["sem_token"] = token_means(out["sem"], self.token_frames)
        if "clip_text" in self.files.keys(c):
            out["clip_text"] = torch.from_numpy(np.array(self.files.rows(c, "clip_text", k, k + 1)[0]))
        out["clip_id"], out["start"] = self.clip_ids[c], start
        return out


class SequenceDataset(Dataset):
    """Whole clips for validation and test: one item per clip, `length = sequence_length(T)` frames.

    Items hold the same per-frame keys as `WindowDataset` over the whole sequence, plus
    `clip_text (G, Dc)` (one sentence feature per generation window, G = `generation_windows(length)`),
    `sem_token`, `length` and `generated_length` (the frames generation and evaluation use).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        frames: Sequence[int],
        window: int = 64,
        seed_frames: int = 4,
        token_frames: int = 4,
        clip_ids: Sequence[str] | None = None,
    ) -> None:
        self.files = _ClipFiles(paths)
        self.clip_ids = list(clip_ids) if clip_ids is not None else [Path(p).stem for p in paths]
        self.lengths = [sequence_length(n) for n in frames]
        self.window, self.seed_frames, self.token_frames = window, seed_frames, token_frames

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        n = self.lengths[idx]
        have = self.files.keys(idx)
        out = _sample(self.files, idx, 0, n, [k for k in FRAME_KEYS if k in have])
        from semtalk.features.semantic import token_means

        out["sem_token"] = token_means(out["sem"], self.token_frames)
        g = generation_windows(n, self.window, self.seed_frames)
        if "clip_text_gen" in have:
            out["clip_text"] = torch.from_numpy(np.array(self.files.rows(idx, "clip_text_gen", 0, g)))
        out["clip_id"], out["length"] = self.clip_ids[idx], n
        out["generated_length"] = generated_length(n, self.window, self.seed_frames)
        return out
