"""Sem-gate accuracy: does the gate open (psi > beta) exactly on the tokens with semantic frames?

The target of token k is `mean(sem[4k : 4k + 4]) > 0`, with `sem` the per-frame semantic score (scores
<= 0.1 already zeroed by the data pipeline). At test time the gate is `psi > 0.5` (argmax of the two
gate logits, ties going to the base model).
"""

from __future__ import annotations

import torch

FRAMES_PER_TOKEN = 4


def gate_targets(sem: torch.Tensor, frames_per_token: int = FRAMES_PER_TOKEN) -> torch.Tensor:
    """`(B, 4N)` per-frame semantic scores -> `(B, N)` bool token targets `mean_4(sem) > 0`."""
    if sem.ndim != 2 or sem.shape[-1] % frames_per_token:
        raise ValueError(
            f"semantic scores must be (B, T) with T a multiple of {frames_per_token}, got {tuple(sem.shape)}"
        )
    return sem.reshape(sem.shape[0], -1, frames_per_token).float().mean(-1) > 0


def gate_correct(
    psi: torch.Tensor, sem: torch.Tensor, beta: float = 0.5, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts for gate accuracy: (correct tokens, scored tokens), both 0-d int64 tensors.

    Args:
        psi: `(B, N)` gate probability of the semantic branch.
        sem: `(B, 4N)` per-frame semantic scores.
        beta: gate threshold.
        mask: optional `(B, N)` bool, True for tokens to score (e.g. not padding).
    """
    target = gate_targets(sem)
    if psi.shape != target.shape:
        raise ValueError(f"psi {tuple(psi.shape)} does not match the {tuple(target.shape)} tokens of sem")
    hit = (psi > beta) == target
    if mask is None:
        return hit.sum(), torch.tensor(hit.numel(), device=hit.device)
    mask = mask.to(torch.bool)
    return (hit & mask).sum(), mask.sum()


def gate_accuracy(psi: torch.Tensor, sem: torch.Tensor, beta: float = 0.5, mask: torch.Tensor | None = None) -> float:
    """Fraction of tokens where `psi > beta` agrees with `mean_4(sem) > 0`."""
    correct, total = gate_correct(psi, sem, beta, mask)
    if int(total) == 0:
        raise ValueError("gate accuracy over zero tokens is undefined")
    return float(correct) / float(total)
