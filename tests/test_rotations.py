"""Rotation conversions: round trips, conventions and numerical edge cases."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from semtalk.body.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_rot6d,
    geodesic_angle,
    matrix_to_axis_angle,
    matrix_to_rot6d,
    rot6d_to_axis_angle,
    rot6d_to_matrix,
)

finite = st.floats(-4.0, 4.0, allow_nan=False, width=64)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, (7, 3), elements=finite))
def test_axis_angle_round_trip_through_rot6d(aa_np):
    aa = torch.from_numpy(aa_np)
    back = rot6d_to_axis_angle(axis_angle_to_rot6d(aa))
    err = geodesic_angle(axis_angle_to_matrix(aa), axis_angle_to_matrix(back))
    assert err.max() < 1e-9
    # away from pi (where the axis sign is ambiguous) the vectors themselves agree
    angle = aa.norm(dim=-1)
    keep = angle < math.pi - 1e-3
    assert torch.allclose(back[keep], aa[keep], atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, (5, 6), elements=st.floats(-3, 3, width=64)))
def test_rot6d_to_matrix_is_a_rotation(d6_np):
    d6 = torch.from_numpy(d6_np)
    a1, a2 = d6[:, :3], d6[:, 3:]
    ok = (a1.norm(dim=-1) > 1e-3) & (torch.linalg.cross(a1, a2).norm(dim=-1) > 1e-3 * a1.norm(dim=-1))
    m = rot6d_to_matrix(d6[ok])
    eye = torch.eye(3, dtype=m.dtype).expand_as(m)
    assert torch.allclose(m @ m.transpose(-1, -2), eye, atol=1e-9)
    assert torch.allclose(torch.linalg.det(m), torch.ones(len(m), dtype=m.dtype), atol=1e-9)


def test_rot6d_is_first_two_rows():
    aa = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)
    m = axis_angle_to_matrix(aa)
    d6 = matrix_to_rot6d(m)
    assert torch.equal(d6, torch.cat((m[0], m[1])))
    assert torch.allclose(rot6d_to_matrix(d6), m, atol=1e-12)


def test_rodrigues_known_rotation():
    # 90 degrees about z maps x to y
    m = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    assert torch.allclose(
        m @ torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor([0.0, 1, 0], dtype=torch.float64)
    )


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-4, math.pi - 1e-6, math.pi])
def test_edge_angles(angle):
    axis = torch.tensor([1.0, 2.0, -2.0], dtype=torch.float64) / 3.0
    aa = axis * angle
    back = matrix_to_axis_angle(axis_angle_to_matrix(aa))
    assert geodesic_angle(axis_angle_to_matrix(back), axis_angle_to_matrix(aa)) < 1e-7
    assert abs(back.norm().item() - angle) < 1e-6


def test_gradients_are_finite_at_zero():
    aa = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    rot6d_to_axis_angle(axis_angle_to_rot6d(aa)).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_geodesic_angle_is_accurate_for_small_angles():
    a = axis_angle_to_matrix(torch.tensor([0.0, 1e-6, 0.0], dtype=torch.float64))
    b = torch.eye(3, dtype=torch.float64)
    assert abs(geodesic_angle(a, b).item() - 1e-6) < 1e-12
