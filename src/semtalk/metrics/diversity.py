"""Diversity (L1div): mean over frames of the summed absolute deviation of joint positions from their
per-sequence mean.

    DIV = sum_files sum_t sum_165 |x_t - mean_t(x)|  /  sum_files n_frames

on `(n, 165)` joint positions in metres (55 SMPL-X joints; global orientation kept, no translation, GT
shape). Only generated motion is scored. EMAGE's published value is about 13.07.
"""

from __future__ import annotations

import numpy as np


def l1_deviation(joints: np.ndarray) -> np.ndarray:
    """`|x - mean_t(x)|` per coordinate, same shape and dtype as `joints` `(T, ...)`; the input is not
    modified."""
    x = np.asarray(joints)
    return np.abs(x - x.mean(axis=0, keepdims=True))


def diversity_sums(joints: np.ndarray) -> tuple[float, int]:
    """One sequence `(T, 165)` or `(T, 55, 3)` -> (sum of absolute deviations, T), for accumulation."""
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"diversity needs a (T, ...) array with T >= 1, got shape {x.shape}")
    return float(l1_deviation(x).sum()), int(x.shape[0])


def diversity(sequences: list[np.ndarray]) -> float:
    """L1div over several sequences, each `(T_i, 165)` or `(T_i, 55, 3)`."""
    if not sequences:
        raise ValueError("diversity needs at least one sequence")
    total, frames = 0.0, 0
    for seq in sequences:
        s, n = diversity_sums(seq)
        total += s
        frames += n
    return total / frames
