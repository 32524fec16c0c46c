"""An approximate SMPL-X rest skeleton, forward kinematics, and the arm / leg inverse kinematics that turn
hand and foot targets into SMPL-X joint rotations.

The rest joint positions approximate the SMPL-X neutral template (metres, y up, facing +z, left = +x,
T-pose). They are only used to design poses: to place the hands, keep the feet planted and measure joint
speeds. The right side is the exact mirror image of the left (x -> -x), so a left-arm solution becomes a
right-arm solution by mirroring its axis-angles, `(x, y, z) -> (x, -y, -z)`.

All rotations here are local (relative to the parent joint), as in SMPL-X `poses`.
"""

from __future__ import annotations

import numpy as np
import torch

from semtalk.body.joints import NUM_JOINTS, PARENTS
from semtalk.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion

_CENTRE = {
    0: (0.0, -0.350, 0.012),  # pelvis
    3: (0.0, -0.240, -0.020),  # spine1
    6: (0.0, -0.105, -0.005),  # spine2
    9: (0.0, -0.055, 0.020),  # spine3
    12: (0.0, 0.110, -0.015),  # neck
    15: (0.0, 0.270, 0.000),  # head
    22: (0.0, 0.225, 0.030),  # jaw
}
#: left-side joint -> (right-side twin, position)
_LEFT = {
    1: (2, (0.058, -0.440, -0.012)),  # hip
    4: (5, (0.105, -0.820, -0.005)),  # knee
    7: (8, (0.085, -1.220, -0.045)),  # ankle
    10: (11, (0.120, -1.280, 0.070)),  # foot (toe base)
    13: (14, (0.045, 0.030, 0.000)),  # collar
    16: (17, (0.160, 0.083, -0.017)),  # shoulder
    18: (19, (0.425, 0.030, -0.050)),  # elbow
    20: (21, (0.675, 0.037, -0.055)),  # wrist
    23: (24, (0.032, 0.310, 0.090)),  # eye
}
# finger chains (left), relative to the wrist: first joint offset, then the two segment offsets
_FINGERS = {
    25: ((0.095, -0.006, 0.030), (0.035, -0.003, 0.0), (0.024, -0.003, 0.0)),  # index
    28: ((0.100, -0.006, 0.005), (0.038, -0.003, 0.0), (0.026, -0.003, 0.0)),  # middle
    31: ((0.083, -0.012, -0.040), (0.026, -0.003, 0.0), (0.018, -0.003, 0.0)),  # pinky
    34: ((0.093, -0.008, -0.018), (0.034, -0.003, 0.0), (0.024, -0.003, 0.0)),  # ring
    37: ((0.028, -0.015, 0.025), (0.025, -0.008, 0.022), (0.020, -0.006, 0.018)),  # thumb
}


def _rest_joints() -> np.ndarray:
    j = np.zeros((NUM_JOINTS, 3))
    for k, p in _CENTRE.items():
        j[k] = p
    for k, (twin, p) in _LEFT.items():
        j[k] = p
        j[twin] = (-p[0], p[1], p[2])
    for first, offsets in _FINGERS.items():
        pos = j[20].copy()
        for s, off in enumerate(offsets):
            pos = pos + np.asarray(off)
            j[first + s] = pos
            j[first + 15 + s] = (-pos[0], pos[1], pos[2])
    return j


#: `(55, 3)` approximate SMPL-X neutral rest joint positions (metres, T-pose, y up, facing +z).
REST_JOINTS: np.ndarray = _rest_joints()
REST_JOINTS.setflags(write=False)

UPPER_ARM = float(np.linalg.norm(REST_JOINTS[18] - REST_JOINTS[16]))
FOREARM = float(np.linalg.norm(REST_JOINTS[20] - REST_JOINTS[18]))
THIGH = float(np.linalg.norm(REST_JOINTS[4] - REST_JOINTS[1]))
SHIN = float(np.linalg.norm(REST_JOINTS[7] - REST_JOINTS[4]))

_MIRROR = np.array([1.0, -1.0, -1.0])
#: share of the forearm twist carried by the elbow joint (the wrist carries the rest)
ELBOW_TWIST_SHARE = 0.5


def mirror_axis_angle(aa: np.ndarray) -> np.ndarray:
    """Axis-angle of the mirror-image joint across the body's sagittal plane: `(..., 3)` -> `(..., 3)`."""
    return aa * _MIRROR


def mirror_point(p: np.ndarray) -> np.ndarray:
    """Mirror a point or direction across the sagittal plane (x -> -x): `(..., 3)` -> `(..., 3)`."""
    return p * np.array([-1.0, 1.0, 1.0])


def aa_to_mat(aa: np.ndarray) -> np.ndarray:
    """`(..., 3)` axis-angle -> `(..., 3, 3)` rotation matrices (float64)."""
    return axis_angle_to_matrix(torch.as_tensor(np.asarray(aa, dtype=np.float64))).numpy()


def mat_to_aa(m: np.ndarray) -> np.ndarray:
    """`(..., 3, 3)` rotation matrices -> `(..., 3)` axis-angle (float64, angle in [0, pi])."""
    return matrix_to_axis_angle(torch.as_tensor(np.asarray(m, dtype=np.float64))).numpy()


def forward_kinematics(poses: np.ndarray, trans: np.ndarray | None = None) -> np.ndarray:
    """World joint positions of the rest skeleton posed by SMPL-X parameters.

    Args:
        poses: `(T, 165)` or `(T, 55, 3)` axis-angle.
        trans: `(T, 3)` root translation (zeros when omitted).

    Returns:
        `(T, 55, 3)` joint positions in metres (the root joint sits at `REST_JOINTS[0] + trans`).
    """
    aa = np.asarray(poses, dtype=np.float64).reshape(-1, NUM_JOINTS, 3)
    rot = aa_to_mat(aa)  # (T, 55, 3, 3)
    n = aa.shape[0]
    g_rot = np.zeros_like(rot)
    g_pos = np.zeros((n, NUM_JOINTS, 3))
    g_rot[:, 0] = rot[:, 0]
    g_pos[:, 0] = REST_JOINTS[0]
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        g_rot[:, j] = g_rot[:, p] @ rot[:, j]
        g_pos[:, j] = g_pos[:, p] + g_rot[:, p] @ (REST_JOINTS[j] - REST_JOINTS[p])
    if trans is not None:
        g_pos = g_pos + np.asarray(trans, dtype=np.float64)[:, None, :]
    return g_pos


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotation whose columns are a, the part of b orthogonal to a, and their cross product."""
    e1 = _normalize(a)
    e2 = _normalize(b - (e1 * b).sum(-1, keepdims=True) * e1)
    e3 = np.cross(e1, e2)
    return np.stack((e1, e2, e3), axis=-1)


def _rot_about(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    return aa_to_mat(_normalize(axis) * np.asarray(angle)[..., None])


def _soft_range(x: np.ndarray, lo: float, hi: float, knee: float = 0.06) -> np.ndarray:
    """Smoothly limit `x` to [lo, hi]: identity inside [lo + knee, hi - knee], tanh saturation beyond, so a
    target out of reach bends the arm smoothly instead of snapping it straight."""
    top, bottom = hi - knee, lo + knee
    x = np.where(x > top, top + knee * np.tanh((x - top) / knee), x)
    return np.where(x < bottom, bottom - knee * np.tanh((bottom - x) / knee), x)


def hand_rotation(fingers: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Left-hand orientation from the direction its fingers point and the direction its back faces.

    In the rest pose the left hand's fingers point along +x and its back faces +y (palm down), so the
    rotation maps +x to `fingers` and +y to `back` (made orthogonal). `(..., 3), (..., 3) -> (..., 3, 3)`.
    """
    return _frame(np.asarray(fingers, dtype=np.float64), np.asarray(back, dtype=np.float64))


def left_arm_ik(
    target: np.ndarray, swivel: np.ndarray, hand: np.ndarray | None = None, wrist: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-link inverse kinematics for the left arm, in the collar frame.

    The elbow is a hinge about its local y axis (flexion is a negative y rotation, bringing the forearm
    forward from the rest pose) followed by a twist about the forearm's own axis that takes
    `ELBOW_TWIST_SHARE` of the hand's twist (pronation/supination), the wrist taking the rest. The elbow
    plane is set by `swivel`: at 0 the hinge axis is as lateral as possible (elbow pointing back or
    down), positive values lift the elbow outwards.

    Args:
        target: `(N, 3)` wrist position relative to the shoulder joint, in the collar frame (metres).
        swivel: `(N,)` elbow swivel (radians).
        hand: `(N, 3, 3)` desired hand orientation in the collar frame (see `hand_rotation`), or None.
        wrist: `(N, 3)` hand rotation relative to the (untwisted) forearm, used when `hand` is None
            (zeros when both are None).

    Returns:
        Local axis-angles `(N, 3)` of the shoulder, elbow and wrist.
    """
    target = np.asarray(target, dtype=np.float64)
    n = target.shape[0]
    u0 = REST_JOINTS[18] - REST_JOINTS[16]
    f0 = REST_JOINTS[20] - REST_JOINTS[18]
    reach = UPPER_ARM + FOREARM
    d = _soft_range(np.linalg.norm(target, axis=-1), abs(UPPER_ARM - FOREARM) + 0.05, 0.985 * reach)
    # u0 . R_y(-phi) f0 = a cos(phi) + b sin(phi) + c
    a = u0[0] * f0[0] + u0[2] * f0[2]
    b = u0[2] * f0[0] - u0[0] * f0[2]
    c = u0[1] * f0[1]
    k = (d**2 - u0 @ u0 - f0 @ f0) / 2.0 - c
    r = np.hypot(a, b)
    phi = np.arctan2(b, a) + np.arccos(np.clip(k / r, -1.0, 1.0))
    elbow_aa = np.zeros((n, 3))
    elbow_aa[:, 1] = -phi
    r_elbow = aa_to_mat(elbow_aa)
    v = u0 + r_elbow @ f0  # shoulder -> wrist in the shoulder's local frame
    p_hat = _normalize(target)
    lateral = np.array([1.0, 0.0, 0.0]) + np.array([0.0, 0.0, 1e-3])
    n0 = _normalize(lateral - (p_hat @ lateral)[:, None] * p_hat)
    hinge = (_rot_about(p_hat, swivel) @ n0[..., None])[..., 0]
    local = _frame(v, np.broadcast_to(np.array([0.0, 1.0, 0.0]), v.shape))
    world = _frame(p_hat, hinge)
    r_shoulder = world @ np.swapaxes(local, -1, -2)
    if wrist is None:
        wrist = np.zeros((n, 3))
    r_wrist = aa_to_mat(wrist) if hand is None else np.swapaxes(r_shoulder @ r_elbow, -1, -2) @ hand
    # share the forearm twist between elbow and wrist: rotate the elbow about the forearm's own axis
    axis = f0 / np.linalg.norm(f0)
    q = matrix_to_quaternion(torch.as_tensor(r_wrist)).numpy()  # (w, x, y, z), w >= 0
    twist = 2.0 * np.arctan2(q[:, 1:] @ axis, q[:, 0])
    r_twist = _rot_about(np.broadcast_to(axis, (n, 3)), ELBOW_TWIST_SHARE * twist)
    elbow_aa = mat_to_aa(r_elbow @ r_twist)
    wrist_aa = mat_to_aa(np.swapaxes(r_twist, -1, -2) @ r_wrist)
    return mat_to_aa(r_shoulder), elbow_aa, wrist_aa


def leg_ik(hip_world: np.ndarray, pelvis_rot: np.ndarray, ankle_world: np.ndarray, left: bool) -> np.ndarray:
    """Hip and knee rotations that put an ankle at a world position, with the knee bending forward.

    Args:
        hip_world: `(N, 3)` world position of the hip joint.
        pelvis_rot: `(N, 3, 3)` world rotation of the pelvis (the hip's parent).
        ankle_world: `(N, 3)` desired world position of the ankle.
        left: which leg (the right leg's rest geometry is the mirror image).

    Returns:
        `(N, 2, 3, 3)` local rotations of the hip and the knee.
    """
    hip_j, knee_j, ankle_j = (1, 4, 7) if left else (2, 5, 8)
    t0 = REST_JOINTS[knee_j] - REST_JOINTS[hip_j]
    s0 = REST_JOINTS[ankle_j] - REST_JOINTS[knee_j]
    d_local = (np.swapaxes(pelvis_rot, -1, -2) @ (ankle_world - hip_world)[..., None])[..., 0]
    dist = np.clip(np.linalg.norm(d_local, axis=-1), 0.5 * (THIGH + SHIN), 0.997 * (THIGH + SHIN))
    # knee flexion: a positive rotation about x moves the shin backwards; solve |t0 + R_x(th) s0| = dist,
    # i.e. t0 . R_x(th) s0 = a cos(th) + b sin(th) + t0_x s0_x, taking the forward-bending root
    a = t0[1] * s0[1] + t0[2] * s0[2]
    b = t0[2] * s0[1] - t0[1] * s0[2]
    k = (dist**2 - t0 @ t0 - s0 @ s0) / 2.0 - t0[0] * s0[0]
    theta = np.arctan2(b, a) + np.arccos(np.clip(k / np.hypot(a, b), -1.0, 1.0))
    knee_aa = np.zeros(d_local.shape)
    knee_aa[:, 0] = theta
    r_knee = aa_to_mat(knee_aa)
    v = t0 + r_knee @ s0
    # hip: rotate v onto the target direction, keeping the knee pointing forward (hinge axis = local x)
    local = _frame(v, np.broadcast_to(np.array([1.0, 0.0, 0.0]), v.shape))
    world = _frame(d_local, np.broadcast_to(np.array([1.0, 0.0, 0.0]), v.shape))
    r_hip = world @ np.swapaxes(local, -1, -2)
    return np.stack((r_hip, r_knee), axis=1)
