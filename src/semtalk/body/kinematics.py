"""Joint-position kinematics: velocities, foot contact and mean joint speed (pure torch, no body model)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from semtalk.body.joints import FOOT_JOINTS, FPS, NUM_JOINTS


def joint_velocity(joints: torch.Tensor, fps: float = FPS) -> torch.Tensor:
    """Finite-difference velocity of joint positions, as the beat-consistency metric computes it.

    Forward difference at the first frame, central differences inside, backward difference at the
    last frame.

    Args:
        joints: `(..., T, J, 3)` positions in metres, T >= 2.
        fps: frames per second.

    Returns:
        `(..., T, J, 3)` velocities in metres per second.
    """
    if joints.ndim < 3 or joints.shape[-1] != 3:
        raise ValueError(f"joints must have shape (..., T, J, 3), got {tuple(joints.shape)}")
    if joints.shape[-3] < 2:
        raise ValueError(f"joint_velocity needs at least 2 frames, got {joints.shape[-3]}")
    first = joints[..., 1:2, :, :] - joints[..., 0:1, :, :]
    middle = 0.5 * (joints[..., 2:, :, :] - joints[..., :-2, :, :])
    last = joints[..., -1:, :, :] - joints[..., -2:-1, :, :]
    return torch.cat([first, middle, last], dim=-3) * fps


def foot_contact(joints: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
    """Foot contact labels of the ankles and feet (joints 7, 8, 10, 11), BEAT2's definition.

    A joint is in contact at frame t when it moves less than `threshold` metres to frame t + 1; the
    last frame counts as no motion (contact).

    Args:
        joints: `(..., T, 55, 3)` all joints, or `(..., T, 4, 3)` the four foot joints already selected.
        threshold: metres per frame.

    Returns:
        `(..., T, 4)` float, 1.0 for contact and 0.0 otherwise.
    """
    if joints.ndim < 3 or joints.shape[-1] != 3 or joints.shape[-2] not in (NUM_JOINTS, len(FOOT_JOINTS)):
        raise ValueError(
            f"joints must have shape (..., T, {NUM_JOINTS}, 3) or (..., T, {len(FOOT_JOINTS)}, 3), "
            f"got {tuple(joints.shape)}"
        )
    feet = joints[..., list(FOOT_JOINTS), :] if joints.shape[-2] == NUM_JOINTS else joints
    step = torch.linalg.vector_norm(feet[..., 1:, :, :] - feet[..., :-1, :, :], dim=-1)  # (..., T-1, 4)
    step = torch.cat([step, torch.zeros_like(feet[..., :1, :, 0])], dim=-2)
    return (step < threshold).to(joints.dtype if joints.is_floating_point() else torch.float32)


def mean_joint_speed(joints_list: Sequence[torch.Tensor] | torch.Tensor, fps: float = FPS) -> torch.Tensor:
    """Average speed of each joint over all frames of all sequences (BEAT2's `mean_vel_smplxflame_30.npy`).

    Args:
        joints_list: sequences `(T_i, J, 3)` in metres (or one tensor `(T, J, 3)`).
        fps: frames per second.

    Returns:
        `(J,)` metres per second, frame-weighted over the sequences.
    """
    seqs = [joints_list] if torch.is_tensor(joints_list) else list(joints_list)
    if not seqs:
        raise ValueError("mean_joint_speed needs at least one sequence")
    total, frames = None, 0
    for seq in seqs:
        if seq.ndim != 3 or seq.shape[-1] != 3:
            raise ValueError(f"each sequence must have shape (T, J, 3), got {tuple(seq.shape)}")
        speed = torch.linalg.vector_norm(joint_velocity(seq.double(), fps), dim=-1)  # (T, J)
        if total is not None and speed.shape[1] != total.shape[0]:
            raise ValueError(f"sequences have different joint counts: {total.shape[0]} and {speed.shape[1]}")
        total = speed.sum(0) if total is None else total + speed.sum(0)
        frames += seq.shape[0]
    return (total / frames).to(seqs[0].dtype)
