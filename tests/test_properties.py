"""Property tests (hypothesis): rotation conversions, part split/merge, and the readers against the project's writers.

Complements `test_rotations.py` (axis-angle -> rot6d -> axis-angle, rot6d -> matrix is a rotation): here the
matrix, quaternion and geodesic properties, the part layout, and that whatever the writers produce reads back
equal while arbitrary bytes give a `DataError` that names the file.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from semtalk.body.joints import EYE_JOINTS, NUM_JOINTS
from semtalk.body.parts import (
    PART_DIMS,
    PART_JOINTS,
    SMPLXParams,
    eye_poses,
    latent_all,
    merge_parts,
    parts_to_latent_all,
    split_parts,
)
from semtalk.body.rotations import (
    axis_angle_to_matrix,
    geodesic_angle,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    quaternion_to_axis_angle,
    rot6d_to_matrix,
)
from semtalk.data import DataError, load_audio, load_motion, load_sem, load_split, load_textgrid

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
floats = st.floats(-6.0, 6.0, allow_nan=False, width=64)
aa_batch = arrays(np.float64, st.tuples(st.integers(1, 6), st.just(3)), elements=floats)


def _rotations(aa: np.ndarray) -> torch.Tensor:
    return axis_angle_to_matrix(torch.from_numpy(aa))


def _eye(m: torch.Tensor) -> torch.Tensor:
    return torch.eye(3, dtype=m.dtype).expand_as(m)


# --------------------------------------------------------------------------------------------- rotations
@FAST
@given(aa_batch)
def test_axis_angle_gives_proper_rotations(aa):
    m = _rotations(aa)
    assert torch.allclose(m @ m.transpose(-1, -2), _eye(m), atol=1e-12)
    assert torch.allclose(torch.linalg.det(m), torch.ones(len(m), dtype=m.dtype), atol=1e-12)


@FAST
@given(aa_batch)
def test_matrix_axis_angle_round_trip(aa):
    m = _rotations(aa)
    back = matrix_to_axis_angle(m)
    assert (back.norm(dim=-1) <= math.pi + 1e-9).all()  # the canonical angle lies in [0, pi]
    assert torch.allclose(axis_angle_to_matrix(back), m, atol=1e-9)


@FAST
@given(aa_batch)
def test_quaternions_are_unit_and_agree_with_axis_angle(aa):
    m = _rotations(aa)
    q = matrix_to_quaternion(m)
    assert torch.allclose(q.norm(dim=-1), torch.ones(len(q), dtype=q.dtype), atol=1e-12)
    # q and -q are the same rotation
    for sign in (1.0, -1.0):
        assert torch.allclose(axis_angle_to_matrix(quaternion_to_axis_angle(sign * q)), m, atol=1e-9)


@FAST
@given(aa_batch, st.floats(0.1, 10.0), st.floats(0.1, 10.0))
def test_rot6d_round_trip_and_scale_invariance(aa, s1, s2):
    m = _rotations(aa)
    d6 = matrix_to_rot6d(m)
    assert torch.allclose(rot6d_to_matrix(d6), m, atol=1e-12)
    # Gram-Schmidt ignores the lengths of the two stored rows
    scaled = torch.cat((d6[..., :3] * s1, d6[..., 3:] * s2), dim=-1)
    assert torch.allclose(rot6d_to_matrix(scaled), m, atol=1e-9)


@FAST
@given(aa_batch, aa_batch, aa_batch)
def test_geodesic_angle_is_a_metric(a, b, c):
    n = min(len(a), len(b), len(c))
    ra, rb, rc = _rotations(a[:n]), _rotations(b[:n]), _rotations(c[:n])
    dab, dba = geodesic_angle(ra, rb), geodesic_angle(rb, ra)
    assert torch.allclose(dab, dba, atol=1e-9)
    assert ((dab >= 0) & (dab <= math.pi + 1e-9)).all()
    assert torch.allclose(geodesic_angle(ra, ra), torch.zeros(n, dtype=ra.dtype), atol=1e-6)
    assert (geodesic_angle(ra, rc) <= dab + geodesic_angle(rb, rc) + 1e-6).all()
    # left-invariant: rotating both by the same rotation keeps the distance
    assert torch.allclose(geodesic_angle(rc @ ra, rc @ rb), dab, atol=1e-6)


@FAST
@given(arrays(np.float64, 3, elements=st.floats(-1, 1)), st.floats(-3.0, 3.0), st.floats(-3.0, 3.0))
def test_rotations_about_one_axis_compose_by_adding_angles(axis, a, b):
    assume(np.linalg.norm(axis) > 1e-3)
    n = torch.from_numpy(axis / np.linalg.norm(axis))
    lhs = axis_angle_to_matrix(n * a) @ axis_angle_to_matrix(n * b)
    assert torch.allclose(lhs, axis_angle_to_matrix(n * (a + b)), atol=1e-9)


# --------------------------------------------------------------------------------------------- parts
def _params(data, t: int) -> SMPLXParams:
    """Random SMPL-X parameters of `t` frames (float64); rotation angles below pi so vectors compare exactly."""
    poses = data.draw(arrays(np.float64, (t, NUM_JOINTS, 3), elements=st.floats(-1.7, 1.7, width=64)))
    expr = data.draw(arrays(np.float64, (t, 100), elements=st.floats(-5, 5, width=64)))
    trans = data.draw(arrays(np.float64, (t, 3), elements=st.floats(-3, 3, width=64)))
    contact = data.draw(arrays(np.float64, (t, 4), elements=st.sampled_from([0.0, 1.0])))
    return SMPLXParams(
        poses=torch.from_numpy(poses.reshape(t, -1)),
        expressions=torch.from_numpy(expr),
        trans=torch.from_numpy(trans),
        contact=torch.from_numpy(contact),
    )


def test_parts_partition_the_modelled_joints():
    joints = [j for p in PART_JOINTS.values() for j in p]
    assert len(joints) == len(set(joints)) == NUM_JOINTS - len(EYE_JOINTS)
    assert set(joints) | set(EYE_JOINTS) == set(range(NUM_JOINTS))


@FAST
@given(st.data(), st.integers(1, 5))
def test_merge_of_split_is_the_identity(data, t):
    p = _params(data, t)
    parts = split_parts(p)
    assert {k: v.shape for k, v in parts.items()} == {k: (t, d) for k, d in PART_DIMS.items()}
    back = merge_parts(parts, eyes=eye_poses(p.poses))
    norms = p.poses.reshape(t, NUM_JOINTS, 3).norm(dim=-1)
    assume(bool((norms < math.pi - 1e-3).all()))
    assert torch.allclose(back.poses, p.poses, atol=1e-9)
    assert torch.equal(back.expressions, p.expressions) and torch.equal(back.trans, p.trans)
    assert torch.equal(back.contact, p.contact)


@FAST
@given(st.data(), st.integers(1, 5))
def test_split_of_merge_is_the_identity_on_part_features(data, t):
    parts = split_parts(_params(data, t))  # valid part features: orthonormal rot6d rows
    again = split_parts(merge_parts(parts))
    for name, x in parts.items():
        assert torch.allclose(again[name], x, atol=1e-9), name


@FAST
@given(st.data(), st.integers(1, 5))
def test_latent_all_from_parts_matches_latent_all_from_params(data, t):
    p = _params(data, t)
    p.poses.view(t, NUM_JOINTS, 3)[:, list(EYE_JOINTS)] = 0.0  # the parts hold no eyes: identity
    assert torch.allclose(parts_to_latent_all(split_parts(p)), latent_all(p), atol=1e-9)


# --------------------------------------------------------------------------------------------- readers
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="semtalk-prop-"))


@FAST
@given(
    t=st.integers(1, 40),
    n_betas=st.integers(1, 300),
    n_expr=st.integers(1, 100),
    data=st.data(),
)
def test_any_motion_the_writer_writes_reads_back_equal(t, n_betas, n_expr, data):
    from semtalk.synth.files import write_npz

    finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)
    poses = data.draw(arrays(np.float32, (t, 165), elements=finite))
    trans = data.draw(arrays(np.float64, (t, 3), elements=finite))
    betas = data.draw(arrays(np.float32, n_betas, elements=finite))
    expr = data.draw(arrays(np.float64, (t, n_expr), elements=finite))
    path = _workdir() / "2_a_0_1_1.npz"
    write_npz(path, {"poses": poses, "trans": trans, "betas": betas, "expressions": expr,
                     "mocap_frame_rate": np.array(30, np.int32)})  # fmt: skip
    m = load_motion(path)
    np.testing.assert_array_equal(m.poses, poses)
    np.testing.assert_array_equal(m.trans, trans.astype(np.float32))
    np.testing.assert_array_equal(m.betas[:n_betas], betas)
    assert m.betas.shape == (300,) and not m.betas[n_betas:].any()
    np.testing.assert_array_equal(m.expressions[:, :n_expr], expr.astype(np.float32))
    assert m.expressions.shape == (t, 100) and not m.expressions[:, n_expr:].any()


@FAST
@given(arrays(np.float32, st.integers(1, 4000), elements=st.floats(-1, 1, width=32)))
def test_any_16k_wav_the_writer_writes_reads_back_equal(audio):
    from semtalk.synth.files import write_wav

    path = _workdir() / "a.wav"
    write_wav(path, audio, 16000)
    np.testing.assert_array_equal(load_audio(path), audio)


words_strategy = st.lists(
    st.tuples(st.integers(1, 40), st.sampled_from(["", "hello", "big", "idea", "it's", "ünïcode"])), max_size=12
)


@FAST
@given(words_strategy)
def test_any_textgrid_the_writer_writes_reads_back_equal(spans):
    from semtalk.synth.annotation import write_textgrid
    from semtalk.synth.speech import TimedUnit

    units, t = [], 0.0
    for length, label in spans:  # contiguous words of 0.05 s steps
        units.append(TimedUnit(label, round(t, 4), round(t + 0.05 * length, 4)))
        t += 0.05 * length
    duration = round(t + 0.5, 4)
    path = _workdir() / "a.TextGrid"
    write_textgrid(units, [], duration, path)
    spoken = [(w.start, w.end, w.word) for w in load_textgrid(path, duration=duration) if w.word]
    assert spoken == [(u.start, u.end, u.label) for u in units if u.label]


@FAST
@given(st.lists(st.tuples(st.sampled_from(["01_beat_align", "05_iconic_h", "07_metaphoric_l"]),
                          st.integers(0, 5000), st.integers(1, 500), st.integers(0, 10),
                          st.sampled_from(["", "big", "two words"])), max_size=8))  # fmt: skip
def test_any_sem_file_the_writer_writes_reads_back_equal(rows):
    from semtalk.synth.annotation import SemRow, format_sem

    sem = [SemRow(n, s / 100, (s + d) / 100, level / 10, k) for n, s, d, level, k in rows]
    path = _workdir() / "s.txt"
    path.write_text(format_sem(sem) if sem else "")
    back = load_sem(path)
    assert [(r.name, r.start, r.end, r.score, r.keywords) for r in back] == [
        (r.name, pytest.approx(r.start), pytest.approx(r.end), pytest.approx(r.score), r.keywords) for r in sem
    ]


@FAST
@given(st.dictionaries(st.from_regex(r"[1-9]_[a-z]{1,6}_0_[1-9]_[1-9]", fullmatch=True),
                       st.sampled_from(["train", "val", "test", "additional"]), max_size=10))  # fmt: skip
def test_any_split_table_reads_back_equal(table):
    path = _workdir() / "train_test_split.csv"
    path.write_text("id,type\n" + "".join(f"{k},{v}\n" for k, v in table.items()))
    assert load_split(path) == table


READERS = {
    "motion.npz": load_motion,
    "audio.wav": load_audio,
    "words.TextGrid": load_textgrid,
    "train_test_split.csv": load_split,
}


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(READERS)), st.binary(min_size=0, max_size=512))
def test_arbitrary_bytes_are_a_data_error_naming_the_file(name, blob):
    path = _workdir() / name
    path.write_bytes(blob)
    try:
        READERS[name](path)
    except DataError as exc:
        assert str(path) in str(exc) and "Fix:" in str(exc)
    else:  # a few byte strings are valid files (e.g. an empty or one-column-free CSV); then they must parse
        assert name in ("words.TextGrid", "train_test_split.csv"), blob
