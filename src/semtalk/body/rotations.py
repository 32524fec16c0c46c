"""Rotation conversions: axis-angle <-> rotation matrix <-> rot6d.

rot6d is the first two **rows** of the rotation matrix (the convention of SemTalk/EMAGE), mapped back by
Gram-Schmidt. All functions work on any leading batch shape, keep the input dtype and device, and are
differentiable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from semtalk.body.joints import EYE_JOINTS, NUM_JOINTS


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula. `(..., 3)` axis-angle (radians) -> `(..., 3, 3)`."""
    angle = torch.linalg.vector_norm(aa, dim=-1, keepdim=True)  # (..., 1)
    small = angle < 1e-6
    safe = torch.where(small, torch.ones_like(angle), angle)
    axis = aa / safe
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(*aa.shape[:-1], 3, 3)
    s = torch.sin(angle)[..., None]
    c = torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(k)
    rot = eye + s * k + (1 - c) * (k @ k)
    # first-order expansion near zero keeps gradients finite: R ~ I + [aa]_x
    ax, ay, az = aa.unbind(-1)
    k_small = torch.stack((zero, -az, ay, az, zero, -ax, -ay, ax, zero), dim=-1).reshape_as(k)
    return torch.where(small[..., None], eye + k_small, rot)


def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """`(..., 3, 3)` -> `(..., 4)` unit quaternion (w, x, y, z) with w >= 0, numerically robust."""
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # four candidate solutions, each well conditioned when its leading term is large
    t = torch.stack((1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22), dim=-1)
    r = torch.sqrt(torch.clamp(t, min=0.0))
    cand = torch.stack(
        (
            torch.stack((r[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01), dim=-1),
            torch.stack((m21 - m12, r[..., 1] ** 2, m10 + m01, m02 + m20), dim=-1),
            torch.stack((m02 - m20, m10 + m01, r[..., 2] ** 2, m12 + m21), dim=-1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, r[..., 3] ** 2), dim=-1),
        ),
        dim=-2,
    )  # (..., 4, 4)
    denom = 2.0 * torch.clamp(r, min=0.1)[..., None]
    cand = cand / denom
    best = t.argmax(dim=-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """`(..., 4)` (w, x, y, z) -> `(..., 3)` axis-angle with angle in [0, pi]."""
    q = torch.where(q[..., :1] < 0, -q, q)
    vec = q[..., 1:]
    sin_half = torch.linalg.vector_norm(vec, dim=-1, keepdim=True)
    half = torch.atan2(sin_half, q[..., :1])
    angle = 2.0 * half
    small = sin_half < 1e-6
    # angle / sin(angle/2) -> 2 (1 + angle^2/24) for small angles
    factor = torch.where(small, 2.0 + angle**2 / 12.0, angle / torch.where(small, torch.ones_like(sin_half), sin_half))
    return vec * factor


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """`(..., 3, 3)` -> `(..., 3)` axis-angle."""
    return quaternion_to_axis_angle(matrix_to_quaternion(m))


def matrix_to_rot6d(m: torch.Tensor) -> torch.Tensor:
    """`(..., 3, 3)` -> `(..., 6)`: the first two rows, concatenated."""
    return m[..., :2, :].reshape(*m.shape[:-2], 6)


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """`(..., 6)` -> `(..., 3, 3)` by Gram-Schmidt on the two rows (any 6-vector maps to a rotation)."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-2)


def axis_angle_to_rot6d(aa: torch.Tensor) -> torch.Tensor:
    """`(..., 3)` -> `(..., 6)`."""
    return matrix_to_rot6d(axis_angle_to_matrix(aa))


def rot6d_to_axis_angle(d6: torch.Tensor) -> torch.Tensor:
    """`(..., 6)` -> `(..., 3)`."""
    return matrix_to_axis_angle(rot6d_to_matrix(d6))


def geodesic_angle(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Angle (radians) of the relative rotation between `(..., 3, 3)` matrices -> `(...)`.

    Uses atan2(|sin|, cos) of the relative rotation, which stays accurate near 0 and pi (acos does not).
    """
    rel = r1 @ r2.transpose(-1, -2)
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    skew = torch.stack(
        (rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0], rel[..., 1, 0] - rel[..., 0, 1]), -1
    )
    sin = torch.linalg.vector_norm(skew, dim=-1) / 2.0
    return torch.atan2(sin, cos)


def joint_rotation_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean geodesic angle (radians) over the modelled joints (the eyes excluded) between `(..., 55, 3, 3)`
    rotation matrices -> `(...)`."""
    keep = [j for j in range(NUM_JOINTS) if j not in EYE_JOINTS]
    return geodesic_angle(pred[..., keep, :, :], gt[..., keep, :, :]).mean(-1)
