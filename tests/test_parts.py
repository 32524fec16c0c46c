"""Part split/merge and latent_all, on random poses and on the real BEAT2 clip."""

import numpy as np
import torch

from semtalk.body.joints import EYE_JOINTS, NUM_JOINTS
from semtalk.body.parts import (
    LATENT_ALL_DIM,
    PART_DIMS,
    SMPLXParams,
    eye_poses,
    latent_all,
    merge_parts,
    split_parts,
)
from semtalk.body.rotations import axis_angle_to_matrix, axis_angle_to_rot6d, geodesic_angle
from semtalk.data import load_motion


def _random_params(t=12, batch=(), dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SMPLXParams(
        poses=torch.randn(*batch, t, 165, generator=g, dtype=dtype) * 0.8,
        expressions=torch.randn(*batch, t, 100, generator=g, dtype=dtype),
        trans=torch.randn(*batch, t, 3, generator=g, dtype=dtype),
        contact=(torch.rand(*batch, t, 4, generator=g) > 0.5).to(dtype),
    )


def _angle_error(a, b):
    a = a.reshape(*a.shape[:-1], NUM_JOINTS, 3)
    b = b.reshape(*b.shape[:-1], NUM_JOINTS, 3)
    return geodesic_angle(axis_angle_to_matrix(a), axis_angle_to_matrix(b))


def test_part_dims_and_latent_all():
    p = _random_params(batch=(2,))
    parts = split_parts(p)
    assert {k: v.shape[-1] for k, v in parts.items()} == PART_DIMS
    assert all(v.shape[:-1] == (2, 12) for v in parts.values())
    la = latent_all(p)
    assert la.shape == (2, 12, LATENT_ALL_DIM) == (2, 12, 337)
    # joint-major layout: joint j occupies 6j:6j+6, then trans, then contact
    assert torch.allclose(la[..., 6 * 22 : 6 * 23], axis_angle_to_rot6d(p.poses[..., 66:69]))
    assert torch.equal(la[..., 330:333], p.trans) and torch.equal(la[..., 333:], p.contact)


def test_split_merge_is_lossless_except_eyes():
    p = _random_params()
    merged = merge_parts(split_parts(p))
    err = _angle_error(merged.poses, p.poses)
    modelled = [j for j in range(NUM_JOINTS) if j not in EYE_JOINTS]
    assert err[..., modelled].max() < 1e-9
    assert torch.equal(merged.poses[..., 69:75], torch.zeros_like(merged.poses[..., 69:75]))
    with_eyes = merge_parts(split_parts(p), eyes=eye_poses(p.poses))
    assert _angle_error(with_eyes.poses, p.poses).max() < 1e-9
    assert torch.allclose(merged.expressions, p.expressions)
    assert torch.equal(merged.trans, p.trans) and torch.equal(merged.contact, p.contact)


def test_real_clip_round_trip(beat2_sample):
    m = load_motion(beat2_sample / "2_scott_0_1_1.npz")
    poses = torch.from_numpy(m.poses).double()
    back = merge_parts(
        split_parts(
            SMPLXParams(
                poses=poses,
                expressions=torch.from_numpy(m.expressions).double(),
                trans=torch.from_numpy(m.trans).double(),
                contact=torch.zeros(m.num_frames, 4, dtype=torch.float64),
            )
        ),
        eyes=eye_poses(poses),
    )
    err = _angle_error(back.poses, poses)
    assert err.max() < 1e-5, f"axis-angle -> rot6d -> axis-angle error {err.max():.2e} rad"
    # the vectors themselves agree wherever the angle is not near pi
    aa = poses.reshape(-1, NUM_JOINTS, 3)
    keep = aa.norm(dim=-1) < np.pi - 1e-3
    diff = (back.poses.reshape(-1, NUM_JOINTS, 3) - aa).norm(dim=-1)
    assert diff[keep].max() < 1e-5
    assert torch.allclose(back.expressions, torch.from_numpy(m.expressions).double())
