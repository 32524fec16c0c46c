"""What every feature extractor shares: its input (one loaded clip), its contract, and frame-rate helpers.

An extractor turns one `Clip` into named arrays at the motion frame rate (30 fps), all cut to the clip's
common length `num_frames` (motion frames, or whole audio frames if the audio is shorter). Its
`fingerprint()` is plain data that identifies its outputs: the cache rebuilds a feature when it changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from semtalk.body.joints import FPS, SAMPLE_RATE
from semtalk.data.beat2 import Clip

#: The source files of a clip that an extractor can depend on.
SOURCES: tuple[str, ...] = ("motion", "audio", "textgrid", "sem")


@dataclass
class ClipInput:
    """One clip, loaded once, plus the number of 30 fps frames every feature must have."""

    clip: Clip
    num_frames: int

    @property
    def audio(self) -> np.ndarray:
        return self.clip.audio


def common_frames(clip: Clip, fps: int = FPS) -> int:
    """Frames shared by motion and audio: `min(motion frames, floor(audio seconds * fps))`."""
    return int(min(clip.motion.num_frames, int(len(clip.audio) * fps // clip.sample_rate)))


class FeatureExtractor(Protocol):
    """The contract of an extractor (see the module docstring)."""

    #: key of the extractor in the extractor configuration
    name: ClassVar[str]
    #: source files its outputs depend on (subset of `SOURCES`)
    sources: ClassVar[tuple[str, ...]]
    #: bump when the computation changes, so caches rebuild
    version: ClassVar[int]
    #: constructor arguments that do not change the outputs (left out of the fingerprint)
    runtime_keys: ClassVar[tuple[str, ...]]

    @classmethod
    def output_dims(cls, **kwargs: Any) -> dict[str, int]:
        """Feature widths for these constructor arguments, without loading any weights."""
        ...

    def __call__(self, item: ClipInput) -> dict[str, np.ndarray]: ...


def digest(data: Any) -> str:
    """sha256 of the canonical JSON of plain data (sorted keys)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`"auto"` -> the first CUDA device when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def interpolate_frames(values: np.ndarray, times: np.ndarray, num_frames: int, fps: float = FPS) -> np.ndarray:
    """Linearly resample rows `values (N, D)` taken at `times (N,)` seconds to `(num_frames, D)` at `fps`.

    Frame i is at `i / fps` seconds; frames outside `[times[0], times[-1]]` repeat the nearest row.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[0] != len(times) or len(times) == 0:
        raise ValueError(f"values {values.shape} and times {np.shape(times)} do not match")
    target = np.arange(num_frames, dtype=np.float64) / fps
    if len(times) == 1:
        return np.repeat(values, num_frames, axis=0)
    idx = np.clip(np.searchsorted(times, target, side="right") - 1, 0, len(times) - 2)
    t0, t1 = times[idx], times[idx + 1]
    w = np.clip((target - t0) / np.maximum(t1 - t0, 1e-12), 0.0, 1.0).astype(np.float32)[:, None]
    return (values[idx] * (1.0 - w) + values[idx + 1] * w).astype(np.float32)


def stretch_frames(values: np.ndarray, num_frames: int) -> np.ndarray:
    """`np.interp` each column of `(N, D)` from N evenly spaced points onto `num_frames` (first and last rows
    kept), as BEAT2's beat features are resampled."""
    values = np.asarray(values, dtype=np.float64)
    src = np.arange(values.shape[0], dtype=np.float64)
    dst = np.linspace(0, values.shape[0] - 1, num_frames)
    return np.stack([np.interp(dst, src, values[:, d]) for d in range(values.shape[1])], axis=1).astype(np.float32)


def audio_chunks(audio: np.ndarray, chunk_samples: int) -> list[tuple[int, np.ndarray]]:
    """Split `(S,)` audio into consecutive chunks of `chunk_samples` -> `[(offset, chunk), ...]`; a last chunk
    shorter than a tenth of a chunk is merged into the previous one."""
    if len(audio) <= chunk_samples:
        return [(0, audio)]
    starts = list(range(0, len(audio), chunk_samples))
    if len(starts) > 1 and len(audio) - starts[-1] < chunk_samples // 10:
        starts.pop()
    bounds = [*starts[1:], len(audio)]
    return [(s, audio[s:e]) for s, e in zip(starts, bounds)]


def run_in_batches(chunks: list[np.ndarray], fn, batch_size: int) -> list[np.ndarray]:
    """Call `fn((B, S) float32 tensor) -> (B, N, D)` on equal-length chunks together (no padding, so batching
    never changes the result); returns one `(N, D)` array per chunk, in order."""
    out: list[np.ndarray | None] = [None] * len(chunks)
    by_len: dict[int, list[int]] = {}
    for i, c in enumerate(chunks):
        by_len.setdefault(len(c), []).append(i)
    for idxs in by_len.values():
        for b in range(0, len(idxs), max(1, batch_size)):
            group = idxs[b : b + max(1, batch_size)]
            x = torch.from_numpy(np.stack([chunks[i] for i in group]).astype(np.float32, copy=False))
            y = fn(x)
            for j, i in enumerate(group):
                out[i] = y[j]
    return [o for o in out if o is not None]


def encoder_frame_times(offset: int, num: int, hop: int, window: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Centre times (seconds) of `num` frames of a strided conv encoder (hop/receptive field in samples)
    applied to a chunk starting at sample `offset`."""
    return (offset + np.arange(num) * hop + window / 2.0) / sample_rate
