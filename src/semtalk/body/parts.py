"""The four motion parts and their feature vectors, split from and merged back into SMPL-X parameters.

| part  | content                                                   | dims |
|-------|-----------------------------------------------------------|------|
| face  | jaw rot6d (6) + 100 FLAME expressions                     | 106  |
| upper | 13 joints x rot6d                                         | 78   |
| hands | 30 finger joints x rot6d                                  | 180  |
| lower | 9 joints x rot6d (pelvis first) + trans (3) + contact (4) | 61   |

`latent_all` (337) is all 55 joints in rot6d (330) + translation (3) + foot contact (4).
Features are joint-major: joint k of a part occupies dims `6k:6k+6`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semtalk.body.joints import (
    EYE_JOINTS,
    HANDS_JOINTS,
    JAW_JOINT,
    LOWER_JOINTS,
    NUM_EXPRESSIONS,
    NUM_JOINTS,
    UPPER_JOINTS,
)
from semtalk.body.rotations import axis_angle_to_rot6d, rot6d_to_axis_angle

PART_NAMES: tuple[str, ...] = ("face", "upper", "hands", "lower")
PART_DIMS: dict[str, int] = {"face": 106, "upper": 78, "hands": 180, "lower": 61}
PART_JOINTS: dict[str, tuple[int, ...]] = {
    "face": (JAW_JOINT,),
    "upper": UPPER_JOINTS,
    "hands": HANDS_JOINTS,
    "lower": LOWER_JOINTS,
}
LATENT_ALL_DIM = NUM_JOINTS * 6 + 3 + 4  # 337


@dataclass
class SMPLXParams:
    """A motion as SMPL-X parameters (channel-last, any leading batch shape `...`).

    Attributes:
        poses: `(..., T, 165)` axis-angle of the 55 joints, radians.
        expressions: `(..., T, 100)` FLAME expression coefficients.
        trans: `(..., T, 3)` root translation, metres, y up.
        contact: `(..., T, 4)` foot contact of joints 7, 8, 10, 11 in {0, 1}; zeros when unknown.
    """

    poses: torch.Tensor
    expressions: torch.Tensor
    trans: torch.Tensor
    contact: torch.Tensor


def _rot6d_of(poses: torch.Tensor, joints: tuple[int, ...]) -> torch.Tensor:
    aa = poses.reshape(*poses.shape[:-1], NUM_JOINTS, 3)[..., list(joints), :]
    return axis_angle_to_rot6d(aa).flatten(-2)


def split_parts(params: SMPLXParams) -> dict[str, torch.Tensor]:
    """SMPL-X parameters -> `{"face": (..., T, 106), "upper": (..., T, 78), "hands": (..., T, 180),
    "lower": (..., T, 61)}`. The eye joints belong to no part."""
    p = params.poses
    return {
        "face": torch.cat((_rot6d_of(p, (JAW_JOINT,)), params.expressions.to(p.dtype)), dim=-1),
        "upper": _rot6d_of(p, UPPER_JOINTS),
        "hands": _rot6d_of(p, HANDS_JOINTS),
        "lower": torch.cat((_rot6d_of(p, LOWER_JOINTS), params.trans.to(p.dtype), params.contact.to(p.dtype)), dim=-1),
    }


def merge_parts(parts: dict[str, torch.Tensor], eyes: torch.Tensor | None = None) -> SMPLXParams:
    """Inverse of `split_parts`. `eyes` `(..., T, 6)` is the axis-angle of joints 23 and 24 (the parts
    do not model them); zeros when omitted, which is what generated motion has."""
    face, lower = parts["face"], parts["lower"]
    lead = face.shape[:-1]
    aa = face.new_zeros(*lead, NUM_JOINTS, 3)
    aa[..., JAW_JOINT, :] = rot6d_to_axis_angle(face[..., :6])
    for name in ("upper", "hands"):
        x = parts[name]
        aa[..., list(PART_JOINTS[name]), :] = rot6d_to_axis_angle(x.reshape(*lead, -1, 6))
    aa[..., list(LOWER_JOINTS), :] = rot6d_to_axis_angle(lower[..., :54].reshape(*lead, -1, 6))
    if eyes is not None:
        aa[..., list(EYE_JOINTS), :] = eyes.reshape(*lead, 2, 3).to(aa.dtype)
    return SMPLXParams(
        poses=aa.flatten(-2),
        expressions=face[..., 6 : 6 + NUM_EXPRESSIONS],
        trans=lower[..., 54:57],
        contact=lower[..., 57:61],
    )


def latent_all(params: SMPLXParams) -> torch.Tensor:
    """`(..., T, 337)`: all 55 joints in rot6d, then translation, then foot contact."""
    rot = _rot6d_of(params.poses, tuple(range(NUM_JOINTS)))
    p = params.poses
    return torch.cat((rot, params.trans.to(p.dtype), params.contact.to(p.dtype)), dim=-1)


def eye_poses(poses: torch.Tensor) -> torch.Tensor:
    """`(..., T, 165)` -> `(..., T, 6)` axis-angle of the two eye joints."""
    return poses[..., 3 * EYE_JOINTS[0] : 3 * EYE_JOINTS[1] + 3]


def parts_to_latent_all(parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """Part features -> `(..., T, 337)` `latent_all` without an axis-angle round trip: rot6d re-orthonormalised,
    eyes at identity, translation and contact from the lower part."""
    from semtalk.body.rotations import matrix_to_rot6d, rot6d_to_matrix

    face, lower = parts["face"], parts["lower"]
    lead = face.shape[:-1]
    identity = face.new_tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    rot = identity.expand(*lead, NUM_JOINTS, 6).clone()
    rot[..., JAW_JOINT, :] = face[..., :6]
    for name in ("upper", "hands"):
        rot[..., list(PART_JOINTS[name]), :] = parts[name].reshape(*lead, -1, 6)
    rot[..., list(LOWER_JOINTS), :] = lower[..., :54].reshape(*lead, -1, 6)
    rot = matrix_to_rot6d(rot6d_to_matrix(rot))
    return torch.cat((rot.flatten(-2), lower[..., 54:57], lower[..., 57:61]), dim=-1)
