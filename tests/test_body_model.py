"""The synthetic SMPL-X file, the BodyModel wrapper and the kinematics helpers."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.body.face_mesh import FaceMeshBody
from semtalk.body.joints import FOOT_JOINTS, JOINT_NAMES, NUM_EXPRESSIONS, PARENTS
from semtalk.body.kinematics import foot_contact, joint_velocity, mean_joint_speed
from semtalk.body.model import BodyModel
from semtalk.body.rotations import axis_angle_to_matrix
from semtalk.body.synthetic_model import (
    MODEL_FILENAME,
    NUM_FACES,
    NUM_VERTICES,
    ROOT_PARENT_CODE,
    build_synthetic_smplx,
    rest_joints,
)
from semtalk.metrics.motion_inputs import face_vertices

CLIP = "2_scott_0_1_1.npz"


@pytest.fixture(scope="module")
def model_arrays(smplx_root: Path) -> dict[str, np.ndarray]:
    with np.load(smplx_root / "smplx" / MODEL_FILENAME) as f:
        return {k: f[k] for k in f.files}


def _random_inputs(n: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    poses = 0.5 * torch.randn(n, 165, generator=g)
    betas = torch.randn(300, generator=g)
    trans = torch.randn(n, 3, generator=g)
    expressions = torch.randn(n, NUM_EXPRESSIONS, generator=g)
    return poses, betas, trans, expressions


def _clip(beat2_sample: Path, step: int = 1) -> dict[str, torch.Tensor]:
    with np.load(beat2_sample / CLIP) as d:
        return {
            "poses": torch.from_numpy(d["poses"][::step]),
            "betas": torch.from_numpy(d["betas"]),
            "trans": torch.from_numpy(d["trans"][::step]).float(),
            "expressions": torch.from_numpy(d["expressions"][::step]).float(),
        }


# ------------------------------------------------------------------------------------------ the model file
def test_file_layout_and_smplx_loads_it(smplx_root: Path, model_arrays: dict[str, np.ndarray]) -> None:
    import smplx

    a = model_arrays
    assert a["v_template"].shape == (NUM_VERTICES, 3) and a["v_template"].dtype == np.float32
    assert a["f"].shape == (NUM_FACES, 3) and a["f"].min() == 0 and a["f"].max() == NUM_VERTICES - 1
    assert a["shapedirs"].shape == (NUM_VERTICES, 3, 400) and a["posedirs"].shape == (NUM_VERTICES, 3, 486)
    assert a["J_regressor"].shape == (55, NUM_VERTICES) and a["weights"].shape == (NUM_VERTICES, 55)
    np.testing.assert_allclose(a["weights"].sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a["J_regressor"].sum(1), 1.0, atol=1e-5)
    assert a["kintree_table"][0, 0] == ROOT_PARENT_CODE
    assert a["kintree_table"][0, 1:].tolist() == list(PARENTS[1:])
    assert a["lmk_faces_idx"].shape == (51,) and a["lmk_bary_coords"].shape == (51, 3)
    np.testing.assert_allclose(a["lmk_bary_coords"].sum(1), 1.0, atol=1e-5)
    assert np.abs(a["hands_meanl"]).max() > 0.05 and np.abs(a["posedirs"]).max() < 0.01
    # written atomically: nothing but the model file is left next to it
    assert [p.name for p in (smplx_root / "smplx").iterdir()] == [MODEL_FILENAME]
    umask = os.umask(0)
    os.umask(umask)
    assert (smplx_root / "smplx" / MODEL_FILENAME).stat().st_mode & 0o777 == 0o666 & ~umask  # a normal file

    layer = smplx.create(
        str(smplx_root), model_type="smplx", gender="NEUTRAL_2020", use_face_contour=False, num_betas=300,
        num_expression_coeffs=100, ext="npz", use_pca=False, batch_size=2,
    )  # fmt: skip
    poses, betas, _, expr = _random_inputs(2)
    out = layer(
        betas=betas.expand(2, 300), expression=expr, global_orient=poses[:, :3], body_pose=poses[:, 3:66],
        jaw_pose=poses[:, 66:69], leye_pose=poses[:, 69:72], reye_pose=poses[:, 72:75],
        left_hand_pose=poses[:, 75:120], right_hand_pose=poses[:, 120:165],
    )  # fmt: skip
    assert out.vertices.shape == (2, NUM_VERTICES, 3) and out.joints.shape == (2, 127, 3)
    assert layer.parents.tolist() == list(PARENTS)
    assert torch.isfinite(out.vertices).all()


def test_mesh_is_a_closed_oriented_surface(model_arrays: dict[str, np.ndarray]) -> None:
    """Ten closed pieces, consistently oriented, with two small openings (6 boundary edges)."""
    f = model_arrays["f"].astype(np.int64)
    directed = Counter(zip(np.r_[f[:, 0], f[:, 1], f[:, 2]].tolist(), np.r_[f[:, 1], f[:, 2], f[:, 0]].tolist()))
    assert max(directed.values()) == 1  # no edge used twice in the same direction
    unpaired = [e for e in directed if (e[1], e[0]) not in directed]
    assert len(unpaired) == 6
    n_edges = (len(directed) - len(unpaired)) // 2 + len(unpaired)
    assert NUM_VERTICES - n_edges + NUM_FACES == 18  # Euler characteristic: 9 spheres + 1 with 2 holes
    assert len(np.unique(f)) == NUM_VERTICES
    v = model_arrays["v_template"].astype(np.float64)
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    assert area.min() > 1e-8
    # outward orientation: the enclosed volume is positive (about 70 litres)
    volume = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
    assert 0.04 < volume < 0.12


def test_rest_skeleton_is_a_plausible_person(model_arrays: dict[str, np.ndarray]) -> None:
    v = model_arrays["v_template"].astype(np.float64)
    joints = model_arrays["J_regressor"].astype(np.float64) @ v
    np.testing.assert_allclose(joints, rest_joints(), atol=1e-5)
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.5 < height < 2.0
    span = v[:, 0].max() - v[:, 0].min()  # T-pose: finger tip to finger tip
    assert abs(span - height) < 0.15 * height
    assert abs(joints[0, 1] + 0.35) < 0.05 and abs(joints[0, 0]) < 0.01  # pelvis like the real template
    for j, name in enumerate(JOINT_NAMES):
        if name.startswith("left"):
            assert joints[j, 0] > 0.02, name
        if name.startswith("right"):
            assert joints[j, 0] < -0.02, name
    names = {n: i for i, n in enumerate(JOINT_NAMES)}
    y = {n: joints[i, 1] for n, i in names.items()}
    assert y["left_foot"] < y["left_knee"] < y["left_hip"] < y["pelvis"] < y["spine3"] < y["neck"] < y["head"]
    assert v[:, 1].max() - y["pelvis"] > 0.6 and y["pelvis"] - v[:, 1].min() > 0.8
    assert abs(y["left_wrist"] - y["left_shoulder"]) < 0.1  # arms out
    assert joints[names["left_foot"], 2] > joints[names["left_ankle"], 2]  # toes point forward (+z)
    assert y["jaw"] < y["left_eye_smplhf"] and joints[names["left_eye_smplhf"], 2] > joints[names["head"], 2]
    thumb_tip_side = joints[names["left_thumb3"], 2] - joints[names["left_wrist"], 2]
    assert thumb_tip_side > 0.03  # the thumb is on the front (+z) side of the palm-down hand
    mirrored = v * (-1, 1, 1)
    from scipy.spatial import cKDTree

    assert cKDTree(v).query(mirrored)[0].max() < 1e-5  # left/right symmetric


def test_vertex_keypoints_sit_where_smplx_expects_them(body_model: BodyModel) -> None:
    out = body_model.layer(
        betas=torch.zeros(1, 300), expression=torch.zeros(1, 100), global_orient=torch.zeros(1, 3),
        body_pose=torch.zeros(1, 63), jaw_pose=torch.zeros(1, 3), leye_pose=torch.zeros(1, 3),
        reye_pose=torch.zeros(1, 3), left_hand_pose=torch.zeros(1, 45), right_hand_pose=torch.zeros(1, 45),
    )  # fmt: skip
    j = out.joints[0].numpy()
    nose, reye, leye, rear, lear = j[55:60]
    assert nose[2] > leye[2] - 0.01 and abs(nose[0]) < 0.01
    assert reye[0] < 0 < leye[0] and rear[0] < -0.07 and lear[0] > 0.07
    l_big, l_small, l_heel = j[60:63]
    assert l_heel[2] < j[7, 2] < l_big[2] and l_big[0] < l_small[0]  # big toe on the inside
    assert max(l_big[1], l_heel[1]) < j[7, 1] - 0.05  # on the sole, below the ankle
    l_tips = j[66:71]  # thumb, index, middle, ring, pinky
    assert (l_tips[:, 0] > j[20, 0] + 0.08).all() and (j[71:76, 0] < j[21, 0] - 0.08).all()
    landmarks = j[76:]
    assert landmarks.shape == (51, 3) and (landmarks[:, 2] > 0.05).all()  # on the front of the face
    assert landmarks[:, 1].min() > 0.2 and landmarks[:, 1].max() < 0.4


def test_expressions_move_only_the_face_jaw_most(model_arrays: dict[str, np.ndarray]) -> None:
    v = model_arrays["v_template"]
    expr = np.linalg.norm(model_arrays["shapedirs"][:, :, 300:], axis=1).max(axis=1)  # (V,)
    weights = model_arrays["weights"]
    owner = weights.argmax(1)
    head = np.isin(owner, [15, 22])
    assert expr.max() > 1e-3
    assert expr[~head].max() == 0.0  # neck, body, eyes: untouched
    assert expr[v[:, 1] < 0.2].max() == 0.0
    assert expr[owner == 22].mean() > 2 * expr[owner == 15].mean()  # the jaw region moves most
    assert expr[(owner == 15) & (v[:, 2] < 0)].max() == 0.0  # not the back of the head
    joint_dirs = np.einsum("jv,vcl->jcl", model_arrays["J_regressor"], model_arrays["shapedirs"][:, :, 300:])
    assert np.abs(joint_dirs).max() == 0.0  # expressions never move the skeleton


def test_seed_changes_random_parts_only(model_arrays: dict[str, np.ndarray]) -> None:
    a, b = model_arrays, build_synthetic_smplx(seed=1)
    np.testing.assert_array_equal(a["v_template"], b["v_template"])
    np.testing.assert_array_equal(a["J_regressor"], b["J_regressor"])
    np.testing.assert_array_equal(a["shapedirs"][..., :10], b["shapedirs"][..., :10])
    assert not np.allclose(a["shapedirs"][..., 10:300], b["shapedirs"][..., 10:300])


# ------------------------------------------------------------------------------------------ BodyModel
def test_body_model_shapes_and_buffers(body_model: BodyModel) -> None:
    poses, betas, trans, expr = _random_inputs(6)
    out = body_model(poses, betas, trans, expr)
    assert out.vertices.shape == (6, NUM_VERTICES, 3) and out.joints.shape == (6, 55, 3)
    same = body_model(poses, betas.expand(6, 300), trans, expr)
    torch.testing.assert_close(same.vertices, out.vertices)
    batched = body_model(poses.reshape(2, 3, 165), betas, trans.reshape(2, 3, 3), expr.reshape(2, 3, 100))
    assert batched.vertices.shape == (2, 3, NUM_VERTICES, 3)
    torch.testing.assert_close(batched.joints.reshape(6, 55, 3), out.joints)
    moved = body_model(poses, betas, trans + 1.0, expr)
    torch.testing.assert_close(moved.joints, out.joints + 1.0)
    assert body_model.faces.shape == (NUM_FACES, 3) and body_model.faces.dtype == torch.long
    assert body_model.parents.tolist() == list(PARENTS)
    assert list(body_model.parameters()) == [] and body_model.state_dict() == {}  # never in checkpoints
    with pytest.raises(ValueError, match="betas"):
        body_model(poses, torch.zeros(10))
    with pytest.raises(ValueError, match="expressions"):
        body_model(poses, betas, trans, expr[:5])


def test_body_model_follows_dtype_and_chunking(smplx_root: Path) -> None:
    poses, betas, trans, expr = _random_inputs(5, seed=3)
    small = BodyModel(smplx_root, chunk_size=2)
    ref = small(poses, betas, trans, expr)
    double = BodyModel(smplx_root, chunk_size=64).double()
    assert double.faces.dtype == torch.long and double.rest_joints.dtype == torch.float64
    out = double(poses, betas, trans, expr)
    assert out.vertices.dtype == torch.float64
    torch.testing.assert_close(out.vertices.float(), ref.vertices, atol=1e-5, rtol=0)


def test_fast_joints_equal_smplx_joints(body_model: BodyModel) -> None:
    poses, betas, trans, expr = _random_inputs(40, seed=1)
    ref = body_model(poses, betas, trans, expr).joints
    fast = body_model.joints(poses, betas, trans, expr)
    assert (fast - ref).abs().max() <= 1e-5
    no_expr = body_model.joints(poses, betas, trans)
    assert (no_expr - body_model(poses, betas, trans).joints).abs().max() <= 1e-5
    per_frame = body_model.joints(poses, betas.expand(40, 300))
    assert (per_frame - body_model(poses, betas).joints).abs().max() <= 1e-5
    mats = body_model.joints_from_matrices(axis_angle_to_matrix(poses.reshape(40, 55, 3)), betas, trans, expr)
    assert (mats - ref).abs().max() <= 1e-5
    # gradients flow through the fast path
    p = poses.clone().requires_grad_(True)
    body_model.joints(p, betas).sum().backward()
    assert p.grad is not None and p.grad[:, 75:].abs().sum() > 0


def test_hand_mean_is_added_to_the_finger_poses(
    body_model: BodyModel, model_arrays: dict[str, np.ndarray], tmp_path: Path
) -> None:
    arrays = dict(model_arrays)
    arrays["hands_meanl"] = arrays["hands_meanl"] + np.tile(np.float32([0.0, 0.0, -0.4]), 15)
    (tmp_path / "smplx").mkdir()
    np.savez(tmp_path / "smplx" / MODEL_FILENAME, **arrays)
    other = BodyModel(tmp_path)
    poses, betas, _, _ = _random_inputs(4, seed=2)
    a, b = body_model(poses, betas).joints, other(poses, betas).joints
    left_fingers = [j for j in range(25, 40) if PARENTS[j] != 20]  # joints 2 and 3 of each finger
    knuckles = [j for j in range(55) if j not in left_fingers]  # body, knuckles and the right hand
    assert (a[:, left_fingers] - b[:, left_fingers]).norm(dim=-1).min() > 1e-3
    torch.testing.assert_close(a[:, knuckles], b[:, knuckles])
    fast_a, fast_b = body_model.joints(poses, betas), other.joints(poses, betas)
    assert (fast_b - b).abs().max() <= 1e-5 and (fast_a - fast_b)[:, left_fingers].abs().max() > 1e-3
    # at zero pose the fingers are curled by the file's own mean: they differ from the flat rest skeleton
    zero = body_model.joints(torch.zeros(1, 165), torch.zeros(300))[0]
    assert (zero[left_fingers] - body_model.rest_joints[left_fingers]).norm(dim=-1).max() > 5e-3


def test_missing_model_file_names_path_and_fixes(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        BodyModel(tmp_path / "nowhere")
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "smplx" / MODEL_FILENAME) in message
    assert "https://smpl-x.is.tue.mpg.de" in message and "semtalk make-smplx" in message


# ------------------------------------------------------------------------------------------ kinematics
def test_foot_contact_known_answer() -> None:
    steps = torch.tensor(
        [
            [0.0, 0.02, 0.005, 0.0],  # frame 0 -> 1
            [0.0, 0.02, 0.02, 0.009],  # frame 1 -> 2
            [0.0, 0.0, 0.005, 0.011],  # frame 2 -> 3
        ]
    )
    directions = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]]), dim=-1)
    feet = torch.zeros(4, 4, 3)
    feet[1:] = torch.cumsum(steps[:, :, None] * directions[None], dim=0)
    feet += torch.tensor([0.1, -1.2, 0.0])
    expected = torch.tensor([[1, 0, 1, 1], [1, 0, 0, 1], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.float32)
    torch.testing.assert_close(foot_contact(feet), expected)
    full = torch.randn(2, 4, 55, 3)  # all joints, batched: only 7, 8, 10, 11 matter
    full[:, :, list(FOOT_JOINTS)] = feet
    torch.testing.assert_close(foot_contact(full), expected.expand(2, 4, 4))
    torch.testing.assert_close(foot_contact(feet, threshold=0.03), torch.ones(4, 4))
    with pytest.raises(ValueError, match="55"):
        foot_contact(torch.zeros(4, 22, 3))


def test_joint_velocity_stencils() -> None:
    t = torch.arange(10, dtype=torch.float64)
    rate = torch.tensor([0.3, -0.1, 0.05], dtype=torch.float64)
    linear = (0.5 + t[:, None, None] / 30.0 * rate).expand(10, 2, 3)
    torch.testing.assert_close(joint_velocity(linear, fps=30), rate.expand(10, 2, 3))
    square = (t**2)[:, None, None].expand(10, 1, 3)  # x = t^2 frames: exact central difference 2t inside
    vel = joint_velocity(square, fps=2)[:, 0, 0]
    expected = torch.cat([torch.tensor([1.0]), 2 * t[1:-1], torch.tensor([2 * 10 - 3.0])]).double() * 2
    torch.testing.assert_close(vel, expected)
    batched = joint_velocity(linear.expand(3, 10, 2, 3), fps=30)
    assert batched.shape == (3, 10, 2, 3)
    with pytest.raises(ValueError, match="2 frames"):
        joint_velocity(torch.zeros(1, 55, 3))


def test_mean_joint_speed_weights_frames() -> None:
    t = torch.arange(30, dtype=torch.float32)[:, None, None]
    fast = torch.cat([t * 0.1 * torch.tensor([1.0, 0, 0]), t * 0.0 * torch.ones(3)], dim=1)  # (30, 2, 3)
    slow = torch.cat([t[:10] * 0.05 * torch.tensor([0, 1.0, 0]), t[:10] * 0.02 * torch.tensor([0, 0, 1.0])], dim=1)
    speed = mean_joint_speed([fast, slow], fps=30)
    expected = torch.tensor([(30 * 3.0 + 10 * 1.5) / 40, (10 * 0.6) / 40])
    torch.testing.assert_close(speed, expected)
    with pytest.raises(ValueError):
        mean_joint_speed([])


# ------------------------------------------------------------------------------------------ the real clip
def test_real_clip_fast_joints_match(body_model: BodyModel, beat2_sample: Path) -> None:
    clip = _clip(beat2_sample, step=15)  # 128 frames spread over the clip
    ref = body_model(**clip).joints
    fast = body_model.joints(**clip)
    assert (fast - ref).abs().max() <= 1e-5
    # standing on the floor: BEAT2's translation puts the synthetic feet near y = 0
    feet_y = ref[:, list(FOOT_JOINTS), 1]
    assert -0.1 < feet_y.min() < 0.15 and 0.8 < ref[:, 0, 1].mean() < 1.1


def test_real_clip_contacts_and_mean_speed(body_model: BodyModel, beat2_sample: Path) -> None:
    clip = _clip(beat2_sample)
    joints = body_model.joints(clip["poses"], clip["betas"], clip["trans"])
    contact = foot_contact(joints)
    assert contact.shape == (joints.shape[0], 4)
    assert set(contact.unique().tolist()) == {0.0, 1.0}
    speed = mean_joint_speed([joints, joints[:300]])
    assert speed.shape == (55,) and torch.isfinite(speed).all() and (speed > 0).all()
    assert speed[20] > speed[0] and speed[21] > speed[0]  # wrists move more than the pelvis
    assert speed[25:].mean() > speed[20:22].mean()  # finger joints more than wrists


def test_face_mesh_body_matches_the_smplx_layer(body_model):
    fast = FaceMeshBody(body_model)
    g = torch.Generator().manual_seed(3)
    n = 40
    poses = torch.randn(n, 165, generator=g) * 0.4
    expressions = torch.randn(n, 100, generator=g)
    betas = torch.randn(300, generator=g) * 0.5
    ref = face_vertices(body_model, poses, expressions, betas)
    got = face_vertices(fast, poses, expressions, betas)
    assert np.abs(ref).max() > 0.1 and np.abs(got - ref).max() < 1e-5
    jaw_only = torch.zeros(n, 165)
    jaw_only[:, 66:69] = poses[:, 66:69]
    out, want = fast(jaw_only, betas, None, expressions), body_model(jaw_only, betas, None, expressions)
    assert torch.allclose(out.joints, want.joints, atol=1e-5)
    # any other input goes through the SMPL-X layer
    general = fast(poses[:3], betas, torch.ones(3, 3), expressions[:3])
    assert torch.equal(general.vertices, body_model(poses[:3], betas, torch.ones(3, 3), expressions[:3]).vertices)
    assert torch.equal(fast.joints(poses[:3], betas), body_model.joints(poses[:3], betas))
