"""Autoregressive whole-sequence generation over 64-frame windows advancing by 60 frames.

Window k covers frames `[60 k, 60 k + 64)`; its first 4 frames (one token) are seed motion: ground truth or a
default pose for k = 0, the previous window's decoded output afterwards. All tokens of window 0 and tokens
1..15 of later windows are kept, so K windows give `4 + 60 K` frames. Any length works: the frame features
are edge-padded to whole windows and the motion is cut back to the requested length.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from semtalk.body.parts import SMPLXParams, parts_to_latent_all
from semtalk.codec import MotionCodec

#: window_fn(frame features sliced to the window, latent_all (B,W,337), mask (B,W,337), window index)
#:   -> (codes: part -> (B, W/4, Q) int64, psi (B, W/4) or None)
WindowFn = Callable[
    [dict[str, torch.Tensor], torch.Tensor, torch.Tensor, int],
    tuple[dict[str, torch.Tensor], torch.Tensor | None],
]


def num_windows(frames: int, window: int = 64, seed_frames: int = 4) -> int:
    """Windows needed to cover `frames` frames (at least one)."""
    return max(1, math.ceil((frames - seed_frames) / (window - seed_frames)))


def pad_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Edge-pad `(B, T, ...)` along time to `frames` frames (or cut)."""
    if x.shape[1] >= frames:
        return x[:, :frames]
    pad = x[:, -1:].expand(x.shape[0], frames - x.shape[1], *x.shape[2:])
    return torch.cat((x, pad), dim=1)


@torch.no_grad()
def generate_codes_autoregressive(
    window_fn: WindowFn,
    frame_features: dict[str, torch.Tensor],
    seed_latent: torch.Tensor,
    codec: MotionCodec,
    frames: int,
    window: int = 64,
    seed_frames: int = 4,
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Codes of a whole sequence.

    Args:
        window_fn: the generator of one window (see `WindowFn`).
        frame_features: name -> `(B, n, ...)` per-frame inputs (hubert, beat, words, emotion, ...).
        seed_latent: `(B, seed_frames, 337)` seed motion of the first window.
        codec: the frozen tokenizers (decodes each window to seed the next).
        frames: frames to generate (n).

    Returns:
        part -> `(B, T', Q)` codes with `4 T' >= frames`, and psi `(B, T')` when `window_fn` gives one.
    """
    step = window - seed_frames
    k_windows = num_windows(frames, window, seed_frames)
    total = seed_frames + step * k_windows
    feats = {k: pad_frames(v, total) for k, v in frame_features.items()}
    b = seed_latent.shape[0]
    latent_dim = seed_latent.shape[-1]
    seed = seed_latent
    codes: dict[str, list[torch.Tensor]] = {}
    psis: list[torch.Tensor] = []
    skip = seed_frames // codec.downsample  # tokens of a later window that repeat the previous one
    for k in range(k_windows):
        s = k * step
        window_feats = {name: v[:, s : s + window] for name, v in feats.items()}
        latent = seed.new_zeros(b, window, latent_dim)
        latent[:, :seed_frames] = seed
        mask = torch.ones_like(latent)
        mask[:, :seed_frames] = 0
        window_codes, psi = window_fn(window_feats, latent, mask, k)
        first = 0 if k == 0 else skip
        for p, c in window_codes.items():
            codes.setdefault(p, []).append(c[:, first:])
        if psi is not None:
            psis.append(psi[:, first:])
        if k + 1 < k_windows:
            decoded = codec.decode(window_codes)
            seed = parts_to_latent_all(decoded)[:, -seed_frames:]
    out = {p: torch.cat(v, dim=1) for p, v in codes.items()}
    return out, (torch.cat(psis, dim=1) if psis else None)


@dataclass
class GeneratedMotion:
    """A generated sequence of n frames.

    Attributes:
        params: SMPL-X parameters, `poses (B, n, 165)`, `expressions (B, n, 100)`, `trans (B, n, 3)`, `contact`.
        parts: part -> `(B, n, D)` decoded part features.
        codes: part -> `(B, T', Q)` the generated codes (T' tokens cover at least n frames).
        psi: `(B, n)` per-frame semantic score (sparse generation) or None.
    """

    params: SMPLXParams
    parts: dict[str, torch.Tensor]
    codes: dict[str, torch.Tensor]
    psi: torch.Tensor | None = None


@torch.no_grad()
def decode_generated(
    codec: MotionCodec,
    codes: dict[str, torch.Tensor],
    psi_tokens: torch.Tensor | None,
    start_trans: torch.Tensor,
    frames: int,
) -> GeneratedMotion:
    """Decode whole-sequence codes to part features and SMPL-X parameters, cut to `frames`."""
    parts = codec.decode(codes)
    params = codec.to_smplx(parts, start_trans)
    for name in ("poses", "expressions", "trans", "contact"):
        setattr(params, name, getattr(params, name)[:, :frames])
    parts = {p: x[:, :frames] for p, x in parts.items()}
    psi = None
    if psi_tokens is not None:
        psi = psi_tokens.repeat_interleave(codec.downsample, dim=1)[:, :frames]
    return GeneratedMotion(params, parts, codes, psi)
