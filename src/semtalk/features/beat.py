"""Beat features (librosa): amplitude envelope, short-time energy and onset impulses at 30 fps.

On a hop-512 grid at 16 kHz (31.25 Hz), three channels:

1. amplitude envelope: max |y| over the 1024 samples starting at each hop;
2. short-time energy: sum of y^2 over the same 1024 samples;
3. onset impulses: 1 at the hops `librosa.onset.onset_detect(hop_length=512)` picks, else 0.

Each channel is stretched with `np.interp` onto `int(audio seconds * 30)` frames (then cut to the clip's
frame count). No normalisation. `amplitude="reference"` reproduces the reference code's envelope, which
keeps the first N values of the per-sample envelope and so covers only the first ~0.2 s of the audio.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from semtalk.body.joints import FPS, SAMPLE_RATE
from semtalk.features.base import ClipInput, stretch_frames

HOP = 512
FRAME = 1024


def _frames(y: np.ndarray, num_hops: int) -> np.ndarray:
    """`(num_hops, FRAME)` windows starting at every hop, zero-padded past the end."""
    padded = np.zeros(num_hops * HOP + FRAME, dtype=np.float32)
    padded[: len(y)] = y
    return np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::HOP][:num_hops]


def amplitude_per_hop(y: np.ndarray, num_hops: int) -> np.ndarray:
    return np.abs(_frames(y, num_hops)).max(axis=1)


def amplitude_reference(y: np.ndarray, num_hops: int) -> np.ndarray:
    """The reference's quirk: the per-sample forward max over 1024 samples (edge-padded), first `num_hops`
    values only."""
    a = np.abs(y)
    padded = np.concatenate([a, np.full(FRAME - 1, a[-1], dtype=a.dtype)])
    env = np.lib.stride_tricks.sliding_window_view(padded[: num_hops + FRAME - 1], FRAME).max(axis=1)
    return env[:num_hops]


def short_time_energy(y: np.ndarray, num_hops: int) -> np.ndarray:
    f = _frames(y, num_hops).astype(np.float64)
    return (f * f).sum(axis=1)


def onset_impulses(y: np.ndarray, num_hops: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    import librosa

    onsets = librosa.onset.onset_detect(y=y, sr=sample_rate, hop_length=HOP, units="frames")
    out = np.zeros(num_hops, dtype=np.float32)
    out[onsets[onsets < num_hops]] = 1.0
    return out


class BeatFeatures:
    """`beat`: `(T, 3)` float32 [amplitude, energy, onset] at 30 fps.

    Args:
        amplitude: `"per_hop"` (one envelope value per hop) or `"reference"` (the reference code's quirk).
    """

    name: ClassVar[str] = "beat"
    sources: ClassVar[tuple[str, ...]] = ("audio",)
    version: ClassVar[int] = 1
    runtime_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, amplitude: Literal["per_hop", "reference"] = "per_hop") -> None:
        if amplitude not in ("per_hop", "reference"):
            raise ValueError(f"beat.amplitude must be 'per_hop' or 'reference', not {amplitude!r}")
        self.amplitude = amplitude

    @classmethod
    def output_dims(cls, **kwargs: Any) -> dict[str, int]:
        return {"beat": 3}

    def features(self, y: np.ndarray, num_frames: int) -> np.ndarray:
        """`(S,)` 16 kHz audio -> `(num_frames, 3)`."""
        y = np.asarray(y, dtype=np.float32)
        num_hops = 1 + len(y) // HOP
        amp = amplitude_per_hop(y, num_hops) if self.amplitude == "per_hop" else amplitude_reference(y, num_hops)
        hops = np.stack([amp, short_time_energy(y, num_hops), onset_impulses(y, num_hops)], axis=1)
        full = int(len(y) / SAMPLE_RATE * FPS)
        return stretch_frames(hops, max(full, num_frames))[:num_frames]

    def __call__(self, item: ClipInput) -> dict[str, np.ndarray]:
        return {"beat": self.features(item.audio, item.num_frames)}
