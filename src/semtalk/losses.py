"""Motion losses shared by the stages. Inputs are channel-last `(B, T, ...)`; time is dim 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semtalk.body.rotations import geodesic_angle, rot6d_to_matrix


def time_diff(x: torch.Tensor, order: int = 1) -> torch.Tensor:
    """Finite difference over **time** (dim 1), `order` times: `(B, T, ...)` -> `(B, T - order, ...)`."""
    for _ in range(order):
        x = x[:, 1:] - x[:, :-1]
    return x


def rot6d_matrices(x: torch.Tensor) -> torch.Tensor:
    """`(B, T, J*6)` -> `(B, T, J, 3, 3)` rotation matrices."""
    return rot6d_to_matrix(x.reshape(*x.shape[:-1], -1, 6))


def geodesic_loss(pred6d: torch.Tensor, gt6d: torch.Tensor) -> torch.Tensor:
    """Mean rotation angle (radians) between `(B, T, J*6)` rot6d sequences."""
    return geodesic_angle(rot6d_matrices(pred6d), rot6d_matrices(gt6d)).mean()


def motion_dynamics_loss(pred: torch.Tensor, gt: torch.Tensor, kind: str = "l1") -> tuple[torch.Tensor, torch.Tensor]:
    """(velocity, acceleration) losses over time between `(B, T, ...)` sequences, L1 or MSE."""
    fn = F.l1_loss if kind == "l1" else F.mse_loss
    return fn(time_diff(pred, 1), time_diff(gt, 1)), fn(time_diff(pred, 2), time_diff(gt, 2))


def foot_skate_loss(foot_joints: torch.Tensor, contact: torch.Tensor, threshold: float = 0.95) -> torch.Tensor:
    """Speed of the feet while in contact.

    Args:
        foot_joints: `(B, T, 4, 3)` positions of joints 7, 8, 10, 11 (metres).
        contact: `(B, T, 4)` contact probability of the same joints; frames above `threshold` count.
    """
    vel = time_diff(foot_joints, 1)  # (B, T-1, 4, 3)
    mask = (contact[:, :-1] > threshold).to(vel.dtype)
    return (vel.norm(dim=-1) * mask).sum() / mask.sum().clamp(min=1.0)


def weighted_mean(loss: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of a per-element loss `(B, T, ...)`, weighted by `(B, T)` weights when given."""
    if weight is None:
        return loss.mean()
    while weight.dim() < loss.dim():
        weight = weight.unsqueeze(-1)
    weight = weight.expand_as(loss)
    return (loss * weight).sum() / weight.sum().clamp(min=1e-8)
