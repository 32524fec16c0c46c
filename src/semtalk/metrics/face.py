"""Face metrics on SMPL-X vertices: MSE and LVD.

Both compare meshes built from the jaw pose and expressions only (every other pose zero, zero
translation, ground-truth shape; see `semtalk.metrics.smplx_outputs.face_vertices`), flattened over the
whole mesh (10,475 vertices x 3 = 31,425 values per frame), so the static body dilutes the averages.

* MSE = sum (pred - gt)^2 / (n * 31,425) per file; across files the per-file means are weighted by n,
  which equals the global sum over the global count.
* LVD `semtalk2024` = mean |pred[t] - gt[t]| over frames 1..n-1 (the published code subtracted gt[t-1]
  from both sides of an L1 loss, leaving a position error); across files the per-file means are weighted
  by n.
* LVD `corrected` = sum |(pred[t] - pred[t-1]) - (gt[t] - gt[t-1])| / ((n-1) * 31,425): a true vertex
  velocity difference; across files, global sum over global count.

Paper tables print MSE x 1e8 and LVD x 1e5.
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def _flat_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape:
        raise ValueError(f"predicted and ground-truth vertices differ in shape: {p.shape} vs {g.shape}")
    if p.ndim < 2:
        raise ValueError(f"vertices must be (T, V, 3) or (T, V*3), got shape {p.shape}")
    return p.reshape(p.shape[0], -1), g.reshape(g.shape[0], -1)


def face_mse_sums(pred: np.ndarray, gt: np.ndarray) -> tuple[float, int]:
    """One sequence -> (sum of squared errors, number of values). Vertices `(T, V, 3)` or `(T, V*3)`."""
    p, g = _flat_pair(pred, gt)
    return float(np.square(p - g).sum()), int(p.size)


def face_mse(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean squared vertex error of one sequence (m^2)."""
    s, c = face_mse_sums(pred, gt)
    return s / c


def lvd_sums(
    pred: np.ndarray, gt: np.ndarray, variant: Literal["semtalk2024", "corrected"] | str = "corrected"
) -> tuple[float, float]:
    """One sequence -> (numerator, denominator) that accumulate across files into LVD.

    `semtalk2024`: (per-file mean position error over frames 1..n-1) * n, and n.
    `corrected`: sum of |velocity differences|, and (n-1) * values-per-frame.
    """
    p, g = _flat_pair(pred, gt)
    n = p.shape[0]
    if n < 2:
        raise ValueError(f"LVD needs at least 2 frames, got {n}")
    if variant == "semtalk2024":
        return float(np.abs(p[1:] - g[1:]).mean()) * n, float(n)
    if variant == "corrected":
        diff = np.abs(np.diff(p, axis=0) - np.diff(g, axis=0))
        return float(diff.sum()), float(diff.size)
    raise ValueError(f"unknown LVD variant {variant!r}; choose 'semtalk2024' or 'corrected'")


def lvd(pred: np.ndarray, gt: np.ndarray, variant: Literal["semtalk2024", "corrected"] | str = "corrected") -> float:
    """LVD of one sequence (m). See the module docstring for the two variants."""
    num, den = lvd_sums(pred, gt, variant)
    return num / den
