"""Semantic scores from BEAT2's `sem/<id>.txt`: one score per frame, and per-token means.

Frame i at `t = i / 30` takes the score of the first row (in file order) with `start <= t <= end`; scores
`<= threshold` (0.1: beat-only rows) become 0, and frames covered by no row are 0. A token is 4 frames;
its score is the mean of its frames, and the Sem-gate target is `token score > 0`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from semtalk.data.beat2 import SemRow
from semtalk.features.base import ClipInput
from semtalk.features.timeline import first_match


def frame_scores(rows: Sequence[SemRow], num_frames: int, threshold: float = 0.1) -> np.ndarray:
    """`(num_frames,)` float32 semantic score per frame."""
    values = np.array([r.score if r.score > threshold else 0.0 for r in rows] + [0.0], dtype=np.float32)
    return values[first_match([r.start for r in rows], [r.end for r in rows], num_frames)]


def token_means(scores: np.ndarray | torch.Tensor, token_frames: int = 4):
    """`(..., T)` per-frame scores -> `(..., T // token_frames)` mean of each group of frames."""
    n = scores.shape[-1] // token_frames
    x = scores[..., : n * token_frames]
    return x.reshape(*x.shape[:-1], n, token_frames).mean(-1)


class SemanticFeatures:
    """`sem`: `(T,)` float32 semantic score per frame.

    Args:
        threshold: scores at or below it become 0 (0.1 drops beat-only rows, as SemTalk does).
    """

    name: ClassVar[str] = "semantic"
    sources: ClassVar[tuple[str, ...]] = ("sem",)
    version: ClassVar[int] = 1
    runtime_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = float(threshold)

    @classmethod
    def output_dims(cls, **kwargs: Any) -> dict[str, int]:
        return {"sem": 1}

    def __call__(self, item: ClipInput) -> dict[str, np.ndarray]:
        return {"sem": frame_scores(item.clip.sem, item.num_frames, self.threshold)}
