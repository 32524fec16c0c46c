"""A synthetic SMPL-X model file: the layout of the licensed `SMPLX_NEUTRAL_2020.npz`, with a made-up body.

The real SMPL-X model is licensed from https://smpl-x.is.tue.mpg.de and cannot ship with this project.
`write_synthetic_smplx` writes a stand-in that `smplx.create(..., model_type="smplx",
gender="NEUTRAL_2020", ext="npz", num_betas=300, num_expression_coeffs=100, use_pca=False)` loads, with
the same keys, shapes and topology counts (10,475 vertices, 20,908 faces, 55 joints on the real parent
list), so that every code path (body model, FGD topology, metrics, rendering) runs without the real file.

The body is a rough person in SMPL-X's rest frame (metres, y up, facing +z, the person's left at +x,
pelvis joint at y = -0.35 and the origin in the chest like the real template, soles at y = -1.31, head
top at y = +0.45, arms in a T-pose, flat hands with palms down). Its surface is made of smooth tubes
around the bones (torso, neck and head, jaw, eyes, clavicles, arms, palms, three-segment fingers and
thumbs, legs, feet), skinned to their joints with soft blending across each joint. The real counts fix
the surface's Euler characteristic (V - F/2 = 21 for a closed triangle mesh), so the 25 tubes are joined
into ten closed pieces (head-torso, jaw, two eyes, two arms with their hands, two legs, two feet) by short
connector tubes hidden inside the body, and the neck has two one-triangle openings hidden inside the jaw;
the result is a consistently oriented surface. Every joint row of `J_regressor` averages one ring of
vertices centred exactly on the joint's rest position, and the vertices that `smplx` picks as extra
keypoints (nose, eyes, ears, finger tips, toes, heels) sit where their names say.

Blend shapes: 300 shape components (height, girth, limb and torso lengths, widths, head and hand size,
then smooth local thickness changes of decreasing size), 100 expression components that move only
the face (the jaw and mouth most), and small pose-corrective shapes around each joint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semtalk.atomic import atomic_path
from semtalk.body.joints import NUM_JOINTS, PARENTS

MODEL_FILENAME = "SMPLX_NEUTRAL_2020.npz"
NUM_VERTICES = 10475
NUM_FACES = 20908
NUM_SHAPE_COMPONENTS = 300
NUM_EXPRESSION_COMPONENTS = 100
NUM_LANDMARKS = 51
#: `kintree_table[0, 0]` of the real file: the root's parent stored as an unsigned -1.
ROOT_PARENT_CODE = 2**32 - 1

# Vertex ids that smplx 0.1.28 reads as extra keypoints (`smplx.vertex_ids.vertex_ids["smplx"]`).
_KEYPOINT_VERTEX = {
    "nose": 9120, "reye": 9929, "leye": 9448, "rear": 616, "lear": 6,
    "rthumb": 8079, "rindex": 7669, "rmiddle": 7794, "rring": 7905, "rpinky": 8022,
    "lthumb": 5361, "lindex": 4933, "lmiddle": 5058, "lring": 5169, "lpinky": 5286,
    "LBigToe": 5770, "LSmallToe": 5780, "LHeel": 8846, "RBigToe": 8463, "RSmallToe": 8474, "RHeel": 8635,
}  # fmt: skip

_LEFT_JOINTS = (1, 4, 7, 10, 13, 16, 18, 20, 23, *range(25, 40))
_RIGHT_JOINTS = (2, 5, 8, 11, 14, 17, 19, 21, 24, *range(40, 55))
#: joint index of the mirror-image joint (left <-> right)
MIRROR_JOINT = np.arange(NUM_JOINTS)
MIRROR_JOINT[list(_LEFT_JOINTS)] = _RIGHT_JOINTS
MIRROR_JOINT[list(_RIGHT_JOINTS)] = _LEFT_JOINTS

# ------------------------------------------------------------------------------------------------ skeleton
# Rest positions of the centre and left joints (right = mirror image, x -> -x).
_BODY_REST = {
    0: (0.0, -0.350, 0.010),  # pelvis
    1: (0.060, -0.450, -0.010),  # left hip
    3: (0.0, -0.240, -0.015),  # spine1
    4: (0.110, -0.820, -0.020),  # left knee
    6: (0.0, -0.110, -0.020),  # spine2
    7: (0.080, -1.225, -0.050),  # left ankle
    9: (0.0, -0.055, 0.005),  # spine3
    10: (0.120, -1.285, 0.065),  # left foot (ball)
    12: (0.0, 0.105, -0.025),  # neck
    13: (0.045, 0.025, -0.005),  # left collar
    15: (0.0, 0.265, -0.005),  # head
    16: (0.160, 0.080, -0.020),  # left shoulder
    18: (0.420, 0.030, -0.050),  # left elbow
    20: (0.670, 0.030, -0.060),  # left wrist
    22: (0.0, 0.250, 0.010),  # jaw
    23: (0.032, 0.335, 0.092),  # left eye
}

# name: (first joint, base position, direction, segment lengths to joint 2, joint 3 and the tip, radius)
_FINGERS = {
    "index": (25, (0.765, 0.026, -0.040), (1.0, 0.0, 0.06), (0.038, 0.024, 0.022), 0.0092),
    "middle": (28, (0.768, 0.027, -0.061), (1.0, 0.0, 0.0), (0.042, 0.028, 0.024), 0.0095),
    "pinky": (31, (0.752, 0.024, -0.100), (1.0, 0.0, -0.10), (0.031, 0.020, 0.020), 0.0078),
    "ring": (34, (0.763, 0.026, -0.081), (1.0, 0.0, -0.05), (0.040, 0.026, 0.023), 0.0088),
    "thumb": (37, (0.700, 0.018, -0.030), (0.70, -0.25, 0.67), (0.040, 0.032, 0.028), 0.0110),
}

# A relaxed hand (axis-angle per finger joint, left hand): fingers curl towards the palm (-y), which for
# fingers along +x is a rotation about -z; the thumb bends towards the palm a little.
_FINGER_CURL = {
    "index": ((0.0, 0.0, -0.18), (0.0, 0.0, -0.22), (0.0, 0.0, -0.12)),
    "middle": ((0.0, 0.0, -0.22), (0.0, 0.0, -0.26), (0.0, 0.0, -0.14)),
    "pinky": ((0.0, 0.0, -0.30), (0.0, 0.0, -0.30), (0.0, 0.0, -0.16)),
    "ring": ((0.0, 0.0, -0.26), (0.0, 0.0, -0.28), (0.0, 0.0, -0.15)),
    "thumb": ((0.10, 0.08, -0.06), (0.0, 0.10, -0.08), (0.0, 0.12, -0.06)),
}

_HEAD_CENTRE = np.array([0.0, 0.345, 0.012])
_HEAD_SEMI = np.array([0.078, 0.108, 0.098])  # x, y, z semi-axes of the skull
_EYE_RADIUS = 0.0125
_NOSE_TIP = (0.0, 0.300)  # x, y of the nose bump's centre
_MOUTH = np.array([0.0, 0.257, 0.082])


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _finger_points(name: str) -> np.ndarray:
    """Joint 1, 2, 3 and tip of a left finger, `(4, 3)`."""
    _, base, direction, lengths, _ = _FINGERS[name]
    d = _normalize(np.asarray(direction, float))
    base = np.asarray(base, float)
    return np.stack([base, base + lengths[0] * d, base + sum(lengths[:2]) * d, base + sum(lengths) * d])


def rest_joints() -> np.ndarray:
    """The 55 rest joint positions `(55, 3)` in metres that the synthetic model's `J_regressor` produces."""
    joints = np.zeros((NUM_JOINTS, 3))
    for j, p in _BODY_REST.items():
        joints[j] = p
    for name, (first, *_rest) in _FINGERS.items():
        joints[first : first + 3] = _finger_points(name)[:3]
    for left, right in zip(_LEFT_JOINTS, _RIGHT_JOINTS):
        joints[right] = joints[left] * (-1.0, 1.0, 1.0)
    return joints


def hand_means() -> tuple[np.ndarray, np.ndarray]:
    """The mean finger pose `(45,)` of the left and right hand (axis-angle, SMPL-X hand joint order)."""
    left = np.zeros((15, 3))
    for name, (first, *_rest) in _FINGERS.items():
        left[first - 25 : first - 22] = _FINGER_CURL[name]
    # mirroring x -> -x maps an axis-angle (x, y, z) to (x, -y, -z)
    right = left * (1.0, -1.0, -1.0)
    return left.reshape(-1), right.reshape(-1)


# ------------------------------------------------------------------------------------------------ shapes
@dataclass
class _Shape:
    """One closed tube: rings of `segments` vertices between two pole vertices."""

    name: str
    region: str
    verts: np.ndarray  # (n, 3)
    normals: np.ndarray  # (n, 3)
    thickness: np.ndarray  # (n,) local radius
    weights: np.ndarray  # (n, 55)
    faces: np.ndarray  # (f, 3), local indices
    joint_rings: dict[int, np.ndarray] = field(default_factory=dict)  # joint -> local ring indices
    start_fan: np.ndarray | None = None  # local face ids around the first pole
    end_fan: np.ndarray | None = None
    tip: int = -1  # local index of the end pole

    def mirrored(self, name: str) -> _Shape:
        flip = np.array([-1.0, 1.0, 1.0])
        return _Shape(
            name=name,
            region=self.region,
            verts=self.verts * flip,
            normals=self.normals * flip,
            thickness=self.thickness.copy(),
            weights=self.weights[:, MIRROR_JOINT],
            faces=self.faces[:, ::-1].copy(),
            joint_rings={int(MIRROR_JOINT[j]): r for j, r in self.joint_rings.items()},
            start_fan=self.start_fan,
            end_fan=self.end_fan,
            tip=self.tip,
        )


@dataclass
class _Rings:
    """Ring centres along a path, their semi-axes, the rings that lie on joints, and the two poles."""

    centres: np.ndarray  # (r, 3)
    semi: np.ndarray  # (r, 2)
    knot_ring: list[int]  # ring index of each knot
    pole0: np.ndarray
    pole1: np.ndarray


def _spread(total: int, lengths: np.ndarray) -> list[int]:
    """Split `total` rings over segments proportionally to their lengths (largest remainder)."""
    share = total * lengths / lengths.sum()
    counts = np.floor(share).astype(int)
    for i in np.argsort(-(share - counts))[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def _chain(
    knots: list[tuple[float, float, float]],
    semi: list[tuple[float, float]],
    inner: int,
    cap0: tuple[float, int],
    cap1: tuple[float, int],
    axis: tuple[float, float, float] | None = None,
) -> _Rings:
    """Rings along a polyline: one ring on each knot, `inner` more between knots (spread by length), and
    rounded caps of (length, rings) at both ends. `axis` gives the direction of a single-knot chain."""
    p = np.asarray(knots, float)
    a = np.asarray(semi, float)
    if len(p) > 1:
        seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
        counts = _spread(inner, seg)
        t0, t1 = _normalize(p[1] - p[0]), _normalize(p[-1] - p[-2])
    else:
        counts = []
        t0 = t1 = _normalize(np.asarray(axis, float))
    centres, semis, knot_ring = [], [], []
    length0, n0 = cap0
    for j in range(n0, 0, -1):  # start cap, outermost ring first
        phi = 0.5 * np.pi * j / (n0 + 1)
        centres.append(p[0] - t0 * length0 * np.sin(phi))
        semis.append(a[0] * np.cos(phi))
    for i in range(len(p)):
        knot_ring.append(len(centres))
        centres.append(p[i])
        semis.append(a[i])
        if i < len(p) - 1:
            for k in range(1, counts[i] + 1):
                f = k / (counts[i] + 1)
                centres.append((1 - f) * p[i] + f * p[i + 1])
                semis.append((1 - f) * a[i] + f * a[i + 1])
    length1, n1 = cap1
    for j in range(1, n1 + 1):
        phi = 0.5 * np.pi * j / (n1 + 1)
        centres.append(p[-1] + t1 * length1 * np.sin(phi))
        semis.append(a[-1] * np.cos(phi))
    return _Rings(np.array(centres), np.array(semis), knot_ring, p[0] - t0 * length0, p[-1] + t1 * length1)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _ring_weights(rings: _Rings, owners: list[int], pre_owner: int, blend: float) -> np.ndarray:
    """Skinning weights `(r, 55)` of each ring: segment i belongs to the joint on knot i (-1 = keep the
    previous owner); ownership changes smoothly over +-`blend` times the local radius around each knot."""
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(rings.centres, axis=0), axis=1))])
    w = np.zeros((len(arc), NUM_JOINTS))
    w[:, pre_owner] = 1.0
    for ring, owner in zip(rings.knot_ring, owners):
        if owner < 0:
            continue
        half = max(blend * float(rings.semi[ring].mean()), 1e-4)
        alpha = _smoothstep((arc - arc[ring] + half) / (2 * half))[:, None]
        w = (1 - alpha) * w
        w[:, owner] += alpha[:, 0]
    return w


def _tube(
    name: str,
    region: str,
    rings: _Rings,
    ring_w: np.ndarray,
    segments: int,
    ref_u: tuple[float, float, float],
    joints_on_knots: dict[int, int],
    phase: float = 0.0,
) -> _Shape:
    """Mesh a ring sequence: vertices = start pole, r rings x `segments`, end pole; outward faces."""
    c, semi = rings.centres, rings.semi
    r, s = len(c), segments
    ext = np.concatenate([rings.pole0[None], c, rings.pole1[None]])
    t = _normalize(ext[2:] - ext[:-2])  # central-difference tangents (poles as end points)
    u = np.asarray(ref_u, float)[None] - (t @ np.asarray(ref_u, float))[:, None] * t
    u = _normalize(u)
    w = np.cross(t, u)
    theta = phase + 2 * np.pi * np.arange(s) / s
    cos, sin = np.cos(theta)[None, :, None], np.sin(theta)[None, :, None]
    ring_v = c[:, None] + semi[:, None, :1] * cos * u[:, None] + semi[:, None, 1:] * sin * w[:, None]
    ring_n = _normalize(cos * u[:, None] / semi[:, None, :1] + sin * w[:, None] / semi[:, None, 1:])
    verts = np.concatenate([rings.pole0[None], ring_v.reshape(-1, 3), rings.pole1[None]])
    normals = np.concatenate([-t[:1], ring_n.reshape(-1, 3), t[-1:]])
    thick = np.concatenate([semi[:1].mean(1), np.repeat(semi.mean(1), s), semi[-1:].mean(1)])
    weights = np.concatenate([ring_w[:1], np.repeat(ring_w, s, axis=0), ring_w[-1:]])

    def idx(i: int, k: np.ndarray) -> np.ndarray:
        return 1 + i * s + (k % s)

    k = np.arange(s)
    faces = [np.stack([np.zeros(s, int), idx(0, k + 1), idx(0, k)], 1)]  # start fan
    for i in range(r - 1):
        a, b, cc, d = idx(i, k), idx(i, k + 1), idx(i + 1, k + 1), idx(i + 1, k)
        faces.append(np.stack([a, b, cc], 1))
        faces.append(np.stack([a, cc, d], 1))
    last = 1 + r * s
    faces.append(np.stack([np.full(s, last), idx(r - 1, k), idx(r - 1, k + 1)], 1))  # end fan
    faces = np.concatenate(faces)
    n_f = len(faces)
    return _Shape(
        name=name,
        region=region,
        verts=verts,
        normals=normals,
        thickness=thick,
        weights=weights,
        faces=faces,
        joint_rings={j: 1 + rings.knot_ring[kn] * s + k for kn, j in joints_on_knots.items()},
        start_fan=np.arange(s),
        end_fan=np.arange(n_f - s, n_f),
        tip=last,
    )


def _torso(inner: int, segments: int) -> _Shape:
    j = _BODY_REST
    knots = [(0.0, -0.50, 0.0), j[0], j[3], j[6], j[9], (0.0, 0.030, 0.0), (0.0, 0.090, -0.020),
             (0.0, 0.125, -0.025)]  # fmt: skip
    semi = [(0.100, 0.075), (0.155, 0.105), (0.140, 0.100), (0.135, 0.100), (0.145, 0.105),
            (0.155, 0.100), (0.140, 0.080), (0.075, 0.058)]  # fmt: skip
    rings = _chain(knots, semi, inner, cap0=(0.03, 3), cap1=(0.02, 2))
    w = _ring_weights(rings, [0, 0, 3, 6, 9, -1, -1, 12], 0, 0.35)
    shape = _tube("torso", "torso", rings, w, segments, (1.0, 0.0, 0.0), {1: 0, 2: 3, 3: 6, 4: 9}, np.pi / 2)
    # shoulders follow the collars, the sides of the hips follow the thighs
    x, y = shape.verts[:, 0], shape.verts[:, 1]
    for side, collar, hip in ((1.0, 13, 1), (-1.0, 14, 2)):
        lateral = np.clip(side * x, 0.0, None)
        to_collar = 0.6 * _smoothstep((lateral - 0.07) / 0.09) * _smoothstep((y + 0.03) / 0.08)
        to_hip = 0.45 * _smoothstep((lateral - 0.05) / 0.08) * _smoothstep((-0.40 - y) / 0.08)
        for amount, joint in ((to_collar, collar), (to_hip, hip)):
            shape.weights *= (1 - amount)[:, None]
            shape.weights[:, joint] += amount
    return shape


def _neck_head(inner: int, segments: int) -> _Shape:
    j = _BODY_REST
    neck = _chain([j[12], (0.0, 0.190, -0.020), j[15]], [(0.052, 0.050), (0.050, 0.050), (0.056, 0.064)],
                  max(inner // 5, 2), cap0=(0.03, 2), cap1=(0.0, 0))  # fmt: skip
    # skull rings: latitudes of an ellipsoid from just above the head joint to the crown; below the
    # skull's widest part the back and sides narrow smoothly into the neck while the face stays in front
    n_head = inner - max(inner // 5, 2)
    lo = np.arcsin((0.275 - _HEAD_CENTRE[1]) / _HEAD_SEMI[1])
    lat = lo + (0.5 * np.pi - lo) * np.arange(n_head) / n_head
    y = _HEAD_CENTRE[1] + _HEAD_SEMI[1] * np.sin(lat)
    skull = np.where(y < _HEAD_CENTRE[1], _smoothstep((y - 0.265) / (_HEAD_CENTRE[1] - 0.265)), 1.0)
    neck_c, neck_s = neck.centres[-1], neck.semi[-1]
    front = _HEAD_CENTRE[2] + _HEAD_SEMI[2] * np.cos(lat)
    back = (1 - skull) * (neck_c[2] - neck_s[1]) + skull * (_HEAD_CENTRE[2] - _HEAD_SEMI[2] * np.cos(lat))
    head_c = np.stack([np.zeros(n_head), y, 0.5 * (front + back)], 1)
    half_width = (1 - skull) * neck_s[0] + skull * _HEAD_SEMI[0] * np.cos(lat)
    head_s = np.stack([half_width, 0.5 * (front - back)], 1)
    top = _HEAD_CENTRE + (0.0, _HEAD_SEMI[1], 0.0)
    rings = _Rings(np.concatenate([neck.centres, head_c]), np.concatenate([neck.semi, head_s]),
                   neck.knot_ring, neck.pole0, top)  # fmt: skip
    w = _ring_weights(rings, [12, -1, 15], 9, 0.5)
    shape = _tube("neck_head", "head", rings, w, segments, (1.0, 0.0, 0.0), {0: 12, 2: 15}, np.pi / 2)
    # nose and ears: compact bumps along the surface normal, away from the joint rings
    v, n = shape.verts, shape.normals
    dn = ((v[:, 0] - _NOSE_TIP[0]) / 0.018) ** 2 + ((v[:, 1] - _NOSE_TIP[1]) / 0.030) ** 2
    nose = 0.016 * np.clip(1 - dn, 0, None) ** 2 * (n[:, 2] > 0.3)
    v[:, 2] += nose
    for side in (1.0, -1.0):
        de = ((v[:, 1] - 0.335) / 0.028) ** 2 + ((v[:, 2] - 0.0) / 0.018) ** 2
        ear = 0.010 * np.clip(1 - de, 0, None) ** 2 * (side * n[:, 0] > 0.5)
        v += ear[:, None] * n
    return shape


def _jaw(inner: int, segments: int) -> _Shape:
    knots = [_BODY_REST[22], (0.0, 0.248, 0.050), (0.0, 0.240, 0.078)]
    semi = [(0.058, 0.036), (0.052, 0.036), (0.030, 0.033)]
    rings = _chain(knots, semi, inner, cap0=(0.02, 2), cap1=(0.015, 3))
    w = _ring_weights(rings, [22, -1, -1], 15, 0.4)
    return _tube("jaw", "jaw", rings, w, segments, (1.0, 0.0, 0.0), {0: 22}, np.pi / 2)


def _eye(segments: int) -> _Shape:
    rings = _chain([_BODY_REST[23]], [(_EYE_RADIUS, _EYE_RADIUS)], 0, cap0=(_EYE_RADIUS, 4),
                   cap1=(_EYE_RADIUS, 4), axis=(0.0, 0.0, 1.0))  # fmt: skip
    w = np.zeros((len(rings.centres), NUM_JOINTS))
    w[:, 23] = 1.0
    return _tube("eye_l", "eye", rings, w, segments, (1.0, 0.0, 0.0), {0: 23})


def _clavicle(inner: int, segments: int) -> _Shape:
    rings = _chain([_BODY_REST[13], _BODY_REST[16]], [(0.034, 0.030), (0.040, 0.036)], inner,
                   cap0=(0.02, 2), cap1=(0.03, 2))  # fmt: skip
    w = _ring_weights(rings, [13, 16], 9, 0.6)
    return _tube("clavicle_l", "arm", rings, w, segments, (0.0, 1.0, 0.0), {0: 13})


def _arm(inner: int, segments: int) -> _Shape:
    j = _BODY_REST
    knots = [j[16], (0.290, 0.055, -0.035), j[18], (0.480, 0.032, -0.053), j[20]]
    semi = [(0.052, 0.050), (0.045, 0.043), (0.036, 0.036), (0.037, 0.035), (0.022, 0.030)]
    rings = _chain(knots, semi, inner, cap0=(0.05, 4), cap1=(0.015, 2))
    w = _ring_weights(rings, [16, -1, 18, -1, 20], 13, 0.6)
    return _tube("arm_l", "arm", rings, w, segments, (0.0, 1.0, 0.0), {0: 16, 2: 18, 4: 20})


def _palm(inner: int, segments: int) -> _Shape:
    knots = [_BODY_REST[20], (0.715, 0.028, -0.066), (0.762, 0.026, -0.070)]
    semi = [(0.018, 0.032), (0.017, 0.043), (0.013, 0.042)]
    rings = _chain(knots, semi, inner, cap0=(0.010, 1), cap1=(0.014, 2))
    w = _ring_weights(rings, [20, -1, -1], 20, 0.5)
    return _tube("palm_l", "hand", rings, w, segments, (0.0, 1.0, 0.0), {})


def _finger(name: str, inner: int, segments: int) -> _Shape:
    first, _, _, _, radius = _FINGERS[name]
    pts = _finger_points(name)
    semi = [(radius, radius * 1.05), (radius * 0.92, radius), (radius * 0.84, radius * 0.9),
            (radius * 0.78, radius * 0.82)]  # fmt: skip
    rings = _chain(list(pts), semi, inner, cap0=(0.012, 1), cap1=(radius * 0.8, 3))
    w = _ring_weights(rings, [first, first + 1, first + 2, -1], 20, 0.6)
    ref = (0.0, 1.0, 0.0) if name != "thumb" else (0.0, 0.0, -1.0)
    return _tube(f"{name}_l", "finger", rings, w, segments, ref, {0: first, 1: first + 1, 2: first + 2})


def _leg(inner: int, segments: int) -> _Shape:
    j = _BODY_REST
    knots = [j[1], (0.085, -0.620, -0.015), j[4], (0.100, -0.950, -0.035), j[7]]
    semi = [(0.085, 0.085), (0.070, 0.072), (0.050, 0.052), (0.048, 0.050), (0.030, 0.032)]
    rings = _chain(knots, semi, inner, cap0=(0.06, 3), cap1=(0.02, 2))
    w = _ring_weights(rings, [1, -1, 4, -1, 7], 0, 0.5)
    return _tube("leg_l", "leg", rings, w, segments, (1.0, 0.0, 0.0), {0: 1, 2: 4, 4: 7})


def _foot(inner: int, segments: int) -> _Shape:
    knots = [(0.075, -1.275, -0.080), (0.085, -1.262, -0.035), (0.100, -1.275, 0.020), _BODY_REST[10],
             (0.130, -1.292, 0.120)]  # fmt: skip
    semi = [(0.028, 0.035), (0.035, 0.048), (0.042, 0.035), (0.045, 0.025), (0.040, 0.017)]
    rings = _chain(knots, semi, inner, cap0=(0.02, 2), cap1=(0.02, 3))
    w = _ring_weights(rings, [7, -1, -1, 10, -1], 7, 0.8)
    return _tube("foot_l", "foot", rings, w, segments, (1.0, 0.0, 0.0), {3: 10})


# ------------------------------------------------------------------------------------------------ assembly
# (rings between knots, segments) of the fixed-size shapes; torso and head absorb the rest of the budget
_SIZES = {"jaw": (10, 30), "eye": (None, 16), "clavicle": (4, 20), "arm": (20, 24), "palm": (5, 22),
          "finger": (8, 10), "leg": (22, 24), "foot": (10, 24)}  # fmt: skip
# (child, which fan of the child, parent): connector tubes joining the shapes into ten pieces
_BRIDGES = [("neck_head", "start", "torso")] + [
    (f"{part}_{side}", fan, f"{parent}_{side}")
    for side in ("l", "r")
    for part, fan, parent in (
        ("clavicle", "end", "arm"), ("palm", "start", "arm"), ("index", "start", "palm"),
        ("middle", "start", "palm"), ("ring", "start", "palm"), ("pinky", "start", "palm"),
        ("thumb", "start", "palm"),
    )
]  # fmt: skip


def _fixed_shapes() -> list[_Shape]:
    left = [
        _eye(_SIZES["eye"][1]),
        _clavicle(*_SIZES["clavicle"]),
        _arm(*_SIZES["arm"]),
        _palm(*_SIZES["palm"]),
        *[_finger(n, *_SIZES["finger"]) for n in ("index", "middle", "ring", "pinky", "thumb")],
        _leg(*_SIZES["leg"]),
        _foot(*_SIZES["foot"]),
    ]
    right = [s.mirrored(s.name[:-2] + "_r") for s in left]
    return [_jaw(*_SIZES["jaw"]), *left, *right]


def _budget_shapes(vertices_left: int) -> list[_Shape]:
    """Torso and neck/head sized so that the whole mesh has exactly NUM_VERTICES vertices."""
    best = None
    for s_t in range(36, 57):
        for s_h in range(40, 57):
            for n_t in range(16, 40):
                torso_v = 2 + s_t * (n_t + 8 + 5)  # 8 knots, 5 cap rings
                rest = vertices_left - torso_v - 2
                if rest <= 0 or rest % s_h:
                    continue
                n_h = rest // s_h - 3 - 2  # 3 neck knots, 2 cap rings
                if not 30 <= n_h <= 60:
                    continue
                cost = abs(s_t - 44) + abs(s_h - 48) + 0.5 * abs(n_t - 24)
                if best is None or cost < best[0]:
                    best = (cost, s_t, n_t, s_h, n_h)
    if best is None:  # pragma: no cover - the ranges above always contain solutions
        raise RuntimeError("no torso/head tessellation matches the vertex budget")
    _, s_t, n_t, s_h, n_h = best
    return [_torso(n_t, s_t), _neck_head(n_h, s_h)]


@dataclass
class _Mesh:
    verts: np.ndarray
    normals: np.ndarray
    thickness: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    region: np.ndarray  # (V,) region name per vertex
    face_shape: np.ndarray  # (F,) shape index per face, -1 for connector faces
    shapes: list[_Shape]
    offsets: list[int]
    face_offsets: list[int]
    joint_rings: dict[int, np.ndarray]

    def shape(self, name: str) -> tuple[int, _Shape]:
        for i, s in enumerate(self.shapes):
            if s.name == name:
                return i, s
        raise KeyError(name)

    def shape_vertices(self, name: str) -> np.ndarray:
        i, s = self.shape(name)
        return self.offsets[i] + np.arange(len(s.verts))


def _assemble(shapes: list[_Shape]) -> _Mesh:
    offsets = np.cumsum([0] + [len(s.verts) for s in shapes]).tolist()
    face_offsets = np.cumsum([0] + [len(s.faces) for s in shapes]).tolist()
    joint_rings: dict[int, np.ndarray] = {}
    for s, off in zip(shapes, offsets):
        for j, ring in s.joint_rings.items():
            joint_rings[j] = ring + off
    return _Mesh(
        verts=np.concatenate([s.verts for s in shapes]),
        normals=np.concatenate([s.normals for s in shapes]),
        thickness=np.concatenate([s.thickness for s in shapes]),
        weights=np.concatenate([s.weights for s in shapes]),
        faces=np.concatenate([s.faces + off for s, off in zip(shapes, offsets)]),
        region=np.concatenate([np.full(len(s.verts), s.region) for s in shapes]),
        face_shape=np.concatenate([np.full(len(s.faces), i) for i, s in enumerate(shapes)]),
        shapes=shapes,
        offsets=offsets[:-1],
        face_offsets=face_offsets[:-1],
        joint_rings=joint_rings,
    )


def _connect(mesh: _Mesh) -> None:
    """Join shapes with three-sided connector tubes (a hidden handle per pair) and open two small holes.

    Each connector removes one fan face of the child and the nearest face of the parent and links the
    two triangular holes with six faces, keeping the surface closed and consistently oriented.
    """
    removed: list[int] = []
    used_vertices: set[int] = set()
    new_faces = []
    centroids = mesh.verts[mesh.faces].mean(1)

    def free(face_ids: np.ndarray) -> np.ndarray:
        ok = [f for f in face_ids if not (set(mesh.faces[f].tolist()) & used_vertices)]
        return np.asarray(ok, int)

    for child, fan, parent in _BRIDGES:
        ci, cs = mesh.shape(child)
        pi, ps = mesh.shape(parent)
        child_faces = free(mesh.face_offsets[ci] + (cs.start_fan if fan == "start" else cs.end_fan))
        parent_faces = free(mesh.face_offsets[pi] + np.arange(len(ps.faces)))
        d = np.linalg.norm(centroids[child_faces][:, None] - centroids[parent_faces][None], axis=-1)
        a_i, b_i = np.unravel_index(np.argmin(d), d.shape)
        fa, fb = int(child_faces[a_i]), int(parent_faces[b_i])
        a, b = mesh.faces[fa], mesh.faces[fb]
        best = min(range(3), key=lambda r: sum(np.linalg.norm(mesh.verts[a[i]] - mesh.verts[b[(r - i) % 3]])
                                                for i in range(3)))  # fmt: skip
        for i in range(3):
            k = (best - i) % 3
            new_faces.append((a[i], a[(i + 1) % 3], b[k]))
            new_faces.append((a[(i + 1) % 3], b[(k - 1) % 3], b[k]))
        removed += [fa, fb]
        used_vertices |= set(a.tolist()) | set(b.tolist())
    hi, hs = mesh.shape("neck_head")
    head_faces = free(mesh.face_offsets[hi] + np.arange(len(hs.faces)))
    for side in (1.0, -1.0):  # two small openings of the throat, hidden inside the jaw
        target = np.array([side * 0.02, 0.245, 0.05])
        f = int(head_faces[np.argmin(np.linalg.norm(centroids[head_faces] - target, axis=1))])
        removed.append(f)
        used_vertices |= set(mesh.faces[f].tolist())
        head_faces = free(head_faces)
    keep = np.ones(len(mesh.faces), bool)
    keep[removed] = False
    mesh.faces = np.concatenate([mesh.faces[keep], np.asarray(new_faces, int)])
    mesh.face_shape = np.concatenate([mesh.face_shape[keep], np.full(len(new_faces), -1)])


# ------------------------------------------------------------------------------------------------ blend shapes
def _bump(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    d2 = ((points - centre) ** 2).sum(-1) / radius**2
    return np.clip(1.0 - d2, 0.0, None) ** 2


def _shape_dirs(mesh: _Mesh, rng: np.random.Generator) -> np.ndarray:
    """`(V, 3, 300)` identity shape components."""
    v, n, th, region = mesh.verts, mesh.normals, mesh.thickness, mesh.region
    x, y = v[:, 0], v[:, 1]
    sign = np.sign(x)
    dirs = np.zeros((len(v), 3, NUM_SHAPE_COMPONENTS))
    dirs[:, :, 0] = 0.03 * v  # overall size (about 5 cm of height per unit)
    dirs[:, :, 1] = 0.08 * th[:, None] * n  # girth
    dirs[:, 1, 2] = -0.02 * np.clip((-0.45 - y) / 0.86, 0, 1)  # leg length
    arms = np.isin(region, ["arm", "hand", "finger"])
    dirs[:, 0, 3] = 0.015 * sign * np.clip((np.abs(x) - 0.16) / 0.51, 0, 1) * arms  # arm length
    dirs[:, 1, 4] = 0.015 * np.clip((y + 0.24) / 0.35, 0, 1)  # torso length
    belly = (region == "torso") * _bump(v, np.array([0.0, -0.18, 0.10]), 0.16) * np.clip(n[:, 2], 0, 1)
    dirs[:, :, 5] = 0.015 * belly[:, None] * n  # belly
    dirs[:, 0, 6] = 0.01 * sign * _smoothstep((np.abs(x) - 0.04) / 0.12) * _smoothstep((y + 0.1) / 0.15)
    dirs[:, 0, 7] = 0.01 * sign * _smoothstep((np.abs(x) - 0.02) / 0.06) * _smoothstep((-0.25 - y) / 0.15)
    head = np.isin(region, ["head", "jaw", "eye"]) * _smoothstep((y - 0.2) / 0.07)
    dirs[:, :, 8] = 0.04 * head[:, None] * (v - _HEAD_CENTRE)  # head size
    for side in (1.0, -1.0):
        hand = np.isin(region, ["hand", "finger"]) & (sign == side)
        wrist = np.asarray(_BODY_REST[20]) * (side, 1.0, 1.0)
        dirs[hand, :, 9] = 0.05 * (v[hand] - wrist)  # hand size
    # smooth local thickness changes, decreasing in size
    k = NUM_SHAPE_COMPONENTS - 10
    centres = v[rng.integers(0, len(v), size=3 * k)]  # three bumps per component
    radii = rng.uniform(0.08, 0.25, size=3 * k)
    signs = rng.choice([-1.0, 1.0], size=3 * k)
    d2 = (v**2).sum(1)[:, None] + (centres**2).sum(1)[None] - 2.0 * v @ centres.T  # (V, 3k)
    bumps = signs * np.clip(1.0 - d2 / radii**2, 0.0, None) ** 2
    fields = bumps.reshape(len(v), k, 3).sum(-1) * (0.004 / (1.0 + np.arange(k) / 25.0))  # (V, k)
    dirs[:, :, 10:] = n[:, :, None] * fields[:, None, :]
    return dirs


def _expression_dirs(mesh: _Mesh, rng: np.random.Generator) -> np.ndarray:
    """`(V, 3, 100)` expression components: face vertices only, the jaw and mouth most."""
    v, n, region = mesh.verts, mesh.normals, mesh.region
    jaw = region == "jaw"
    # the joint rings of the head and jaw stay still, so expressions never move the skeleton
    face = (region == "head") & (mesh.weights[:, 15] > 0.55) & (v[:, 1] > 0.24) & (n[:, 2] > 0.0)
    mask = np.where(jaw, _smoothstep((v[:, 2] - _BODY_REST[22][2] - 0.004) / 0.03), 0.0)
    mask = np.where(face, 0.45 * _smoothstep(n[:, 2] * 2.5) * np.maximum(_bump(v, _MOUTH, 0.09), 0.3), mask)
    dirs = np.zeros((len(v), 3, NUM_EXPRESSION_COMPONENTS))
    # 0: mouth opening (jaw and lower lip down, upper lip slightly up)
    forward = np.clip((v[:, 2] - _BODY_REST[22][2]) / 0.08, 0, 1)
    dirs[:, 1, 0] = np.where(jaw, -0.006 * forward, 0.001 * _bump(v, _MOUTH, 0.03))
    dirs[:, 2, 0] = np.where(jaw, -0.002 * forward, 0.0)
    # 1: smile (mouth corners up, out and back)
    for side in (1.0, -1.0):
        corner = np.array([side * 0.026, _MOUTH[1], _MOUTH[2] - 0.012])
        dirs[:, :, 1] += _bump(v, corner, 0.03)[:, None] * np.array([side * 0.004, 0.004, -0.002])
    # 2..99: smooth local motions, centred on the jaw half of the time
    movable = np.flatnonzero(mask > 0)
    jaw_ids = np.flatnonzero(jaw)
    for k in range(2, NUM_EXPRESSION_COMPONENTS):
        pool = jaw_ids if k % 2 == 0 else movable
        centre = v[rng.choice(pool)]
        direction = _normalize(rng.normal(size=3))
        amp = 0.004 / (1.0 + (k - 2) / 15.0)
        dirs[:, :, k] = amp * _bump(v, centre, rng.uniform(0.02, 0.05))[:, None] * direction
    return dirs * mask[:, None, None]


def _pose_dirs(mesh: _Mesh, rng: np.random.Generator) -> np.ndarray:
    """`(V, 3, 486)` small pose-corrective shapes: a bulge around each joint, driven by its rotation."""
    w = mesh.weights
    parents = np.asarray(PARENTS)
    near = 4.0 * w[:, 1:] * w[:, parents[1:]]  # (V, 54): 1 where a vertex is shared half and half
    coef = rng.uniform(-1.0, 1.0, size=(NUM_JOINTS - 1, 9))
    scale = 0.003 * (near[:, :, None] * coef[None]).reshape(len(w), -1)  # (V, 486)
    return mesh.normals[:, :, None] * scale[:, None, :]


# ------------------------------------------------------------------------------------------------ landmarks
def _face_landmark_points() -> np.ndarray:
    """51 points in the order of the 68-point face annotation without the contour: eyebrows (10), nose
    (9), eyes (12), mouth (20); the subject's right side first, like the image-left of a frontal photo."""
    pts = []
    eye_y, eye_x = _BODY_REST[23][1], _BODY_REST[23][0]
    for xs in (np.linspace(-0.056, -0.012, 5), np.linspace(0.012, 0.056, 5)):  # eyebrows
        for xx in xs:
            pts.append((xx, eye_y + 0.020 + 0.006 * np.sin(np.pi * (abs(xx) - 0.012) / 0.044), 0.2))
    for yy in np.linspace(eye_y - 0.005, _NOSE_TIP[1] + 0.002, 4):  # nose bridge
        pts.append((0.0, yy, 0.2))
    for xx in np.linspace(-0.016, 0.016, 5):  # nose bottom
        pts.append((xx, _NOSE_TIP[1] - 0.016 + 0.004 * (1 - abs(xx) / 0.016), 0.2))
    for side in (-1.0, 1.0):  # eyes
        for a in np.linspace(0.0, 2 * np.pi, 6, endpoint=False):
            pts.append((side * eye_x - 0.017 * np.cos(a), eye_y + 0.007 * np.sin(a), 0.2))
    for n_pts, sx, sy in ((12, 0.027, 0.011), (8, 0.019, 0.004)):  # outer and inner lips
        for a in np.linspace(0.0, 2 * np.pi, n_pts, endpoint=False):
            pts.append((-sx * np.cos(a), _MOUTH[1] + sy * np.sin(a), 0.2))
    return np.asarray(pts)


def _landmarks(mesh: _Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Faces and barycentric coordinates of the 51 face landmarks (on the head and jaw surfaces)."""
    head, _ = mesh.shape("neck_head")
    jaw, _ = mesh.shape("jaw")
    cand = np.flatnonzero(np.isin(mesh.face_shape, [head, jaw]))
    tri = mesh.verts[mesh.faces[cand]]  # (C, 3, 3)
    cent = tri.mean(1)
    cand_front = cent[:, 2] > 0.03
    cand, tri, cent = cand[cand_front], tri[cand_front], cent[cand_front]
    idx, bary = [], []
    for p in _face_landmark_points():
        # project along z onto the front surface: the front-most face under (x, y)
        d_xy = np.linalg.norm(cent[:, :2] - p[:2], axis=1)
        near = np.flatnonzero(d_xy < d_xy.min() + 0.004)
        f = near[np.argmax(cent[near, 2])]
        a, b, c = tri[f]
        m = np.array([[a[0] - c[0], b[0] - c[0]], [a[1] - c[1], b[1] - c[1]]])
        try:
            l1, l2 = np.linalg.solve(m, p[:2] - c[:2])
        except np.linalg.LinAlgError:  # pragma: no cover - degenerate in xy
            l1 = l2 = 1 / 3
        lam = np.clip([l1, l2, 1 - l1 - l2], 0.0, None)
        idx.append(cand[f])
        bary.append(lam / lam.sum())
    return np.asarray(idx, np.int64), np.asarray(bary, np.float32)


def _keypoint_vertices(mesh: _Mesh) -> dict[str, int]:
    """Old (pre-permutation) vertex index for each smplx keypoint name."""
    out: dict[str, int] = {}

    def nearest(shape: str, target: tuple[float, float, float]) -> int:
        ids = mesh.shape_vertices(shape)
        return int(ids[np.argmin(np.linalg.norm(mesh.verts[ids] - np.asarray(target), axis=1))])

    head = mesh.shape_vertices("neck_head")
    out["nose"] = int(head[np.argmax(mesh.verts[head, 2] - 10 * np.abs(mesh.verts[head, 0]))])
    for side, s in (("l", 1.0), ("r", -1.0)):
        i, eye = mesh.shape(f"eye_{side}")
        out[f"{side}eye"] = mesh.offsets[i] + eye.tip
        out[f"{side}ear"] = nearest("neck_head", (s * 0.095, 0.335, 0.0))
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            i, fs = mesh.shape(f"{finger}_{side}")
            out[f"{side}{finger}"] = mesh.offsets[i] + fs.tip
        big, small, heel = (0.105, -1.300, 0.130), (0.155, -1.300, 0.110), (0.075, -1.310, -0.095)
        side_u = side.upper()
        out[f"{side_u}BigToe"] = nearest(f"foot_{side}", (s * big[0], *big[1:]))
        out[f"{side_u}SmallToe"] = nearest(f"foot_{side}", (s * small[0], *small[1:]))
        out[f"{side_u}Heel"] = nearest(f"foot_{side}", (s * heel[0], *heel[1:]))
    return out


# ------------------------------------------------------------------------------------------------ file
def build_synthetic_smplx(seed: int = 0) -> dict[str, np.ndarray]:
    """The arrays of a synthetic `SMPLX_NEUTRAL_2020.npz` (float32 / int), see the module docstring."""
    rng = np.random.default_rng(seed)
    fixed = _fixed_shapes()
    fixed_vertices = sum(len(s.verts) for s in fixed)
    shapes = _budget_shapes(NUM_VERTICES - fixed_vertices) + fixed
    mesh = _assemble(shapes)
    _connect(mesh)
    if mesh.verts.shape[0] != NUM_VERTICES or mesh.faces.shape[0] != NUM_FACES:  # pragma: no cover
        raise RuntimeError(f"mesh has {mesh.verts.shape[0]} vertices, {mesh.faces.shape[0]} faces")

    # put the smplx keypoint vertices at the indices smplx reads them from
    keypoints = _keypoint_vertices(mesh)
    order = np.full(NUM_VERTICES, -1)
    for name, old in keypoints.items():
        order[_KEYPOINT_VERTEX[name]] = old
    rest = np.setdiff1d(np.arange(NUM_VERTICES), list(keypoints.values()))
    order[order < 0] = rest
    new_of_old = np.empty(NUM_VERTICES, int)
    new_of_old[order] = np.arange(NUM_VERTICES)

    lmk_faces, lmk_bary = _landmarks(mesh)
    shapedirs = np.concatenate([_shape_dirs(mesh, rng), _expression_dirs(mesh, rng)], axis=2)
    posedirs = _pose_dirs(mesh, rng)

    regressor = np.zeros((NUM_JOINTS, NUM_VERTICES))
    for j in range(NUM_JOINTS):
        ring = mesh.joint_rings[j]
        regressor[j, new_of_old[ring]] = 1.0 / len(ring)
    v_template = mesh.verts[order]
    err = np.abs(regressor @ v_template - rest_joints()).max()
    if err > 1e-6:  # pragma: no cover - guards the construction
        raise RuntimeError(f"J_regressor misses the rest joints by {err:.2e} m")

    kintree = np.stack([np.asarray(PARENTS, np.int64), np.arange(NUM_JOINTS, dtype=np.int64)])
    kintree[0, 0] = ROOT_PARENT_CODE
    hand_l, hand_r = hand_means()
    comp_l = np.linalg.qr(rng.normal(size=(45, 45)))[0]
    return {
        "v_template": v_template.astype(np.float32),
        "f": new_of_old[mesh.faces].astype(np.int32),
        "shapedirs": shapedirs[order].astype(np.float32),
        "posedirs": posedirs[order].astype(np.float32),
        "J_regressor": regressor.astype(np.float32),
        "weights": mesh.weights[order].astype(np.float32),
        "kintree_table": kintree,
        "hands_componentsl": comp_l.astype(np.float32),
        "hands_componentsr": (comp_l * np.tile([1.0, -1.0, -1.0], 15)).astype(np.float32),
        "hands_meanl": hand_l.astype(np.float32),
        "hands_meanr": hand_r.astype(np.float32),
        "lmk_faces_idx": lmk_faces,
        "lmk_bary_coords": lmk_bary,
    }


def write_synthetic_smplx(out_path: str | Path, seed: int = 0) -> Path:
    """Write a synthetic SMPL-X model file and return its path.

    Args:
        out_path: the `.npz` file to write (normally `<model_root>/smplx/SMPLX_NEUTRAL_2020.npz`), or a
            folder, which is taken as the model root and receives `smplx/SMPLX_NEUTRAL_2020.npz`.
        seed: seeds the random parts (the higher shape and expression components, pose correctives and
            hand PCA basis); the body and its skeleton do not depend on it.

    The file (about 115 MB of float32, written atomically through a temporary file) loads with
    `smplx.create(model_root, model_type="smplx", gender="NEUTRAL_2020", ext="npz", num_betas=300,
    num_expression_coeffs=100, use_pca=False)` and with `semtalk.body.model.BodyModel(model_root)`.
    It stands in for the licensed model from https://smpl-x.is.tue.mpg.de; metrics computed with it are
    not comparable with published numbers.
    """
    path = Path(out_path)
    if path.suffix != ".npz":
        path = path / "smplx" / MODEL_FILENAME
    arrays = build_synthetic_smplx(seed)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path
