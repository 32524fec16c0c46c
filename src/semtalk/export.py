"""Exports of generated motion: SMPL-X npz (BEAT2 keys), per-frame ψ JSON, BVH, and a stick-figure video.

- `save_smplx_npz`: `poses (n, 165)`, `trans (n, 3)`, `betas (300,)`, `expressions (n, 100)` float32,
  `model='smplx2020'`, `gender='neutral'`, `mocap_frame_rate=30` (int32), as BEAT2 stores them, so the SMPL-X
  Blender add-on and `semtalk evaluate` read the file.
- `save_psi_json`: per-frame ψ, gate decisions (ψ > β), emphasis gains, the words and run notes.
- `write_bvh` / `read_bvh`: the 55-joint SMPL-X skeleton with offsets from the shaped rest joints, root position
  plus one Euler rotation per joint (channel order `ZXY` by default; any Tait-Bryan order), centimetres by default.
  A channel list `Zrotation Xrotation Yrotation` means `R = Rz(z) @ Rx(x) @ Ry(y)` (the BVH convention Blender,
  MotionBuilder and CMU files use).
- `render_video`: a front and a side stick-figure view with the ψ strip, MP4 with the speech muxed in when an
  `ffmpeg` binary is available (on the PATH, else the static one the `imageio-ffmpeg` wheel ships), otherwise an
  animated GIF (no audio track; the speech goes to a separate wav).

Arrays are channel-last numpy, frames first. Writers work through temporary files and atomic renames.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semtalk.atomic import atomic_path
from semtalk.body.joints import FPS, JOINT_NAMES, NUM_BETAS, NUM_EXPRESSIONS, NUM_JOINTS, PARENTS

NPZ_MODEL = "smplx2020"
NPZ_GENDER = "neutral"
_AXES = {"X": 0, "Y": 1, "Z": 2}


# ------------------------------------------------------------------------------------------------ helpers
def lock_root(trans: np.ndarray) -> np.ndarray:
    """`(n, 3)` root translation with x and z held at 0 (the character stays in place; height is kept)."""
    out = np.array(trans, dtype=np.float32, copy=True)
    out[:, 0] = 0.0
    out[:, 2] = 0.0
    return out


# ------------------------------------------------------------------------------------------------ SMPL-X npz
def save_smplx_npz(
    path: str | Path,
    poses: np.ndarray,
    trans: np.ndarray,
    expressions: np.ndarray,
    betas: np.ndarray | None = None,
    fps: int = FPS,
) -> Path:
    """Write a BEAT2-format SMPL-X motion file.

    Args:
        poses: `(n, 165)` axis-angle of the 55 joints (BEAT2 convention: without the mean hand pose).
        trans: `(n, 3)` root translation, metres, y up.
        expressions: `(n, 100)` FLAME expression coefficients.
        betas: `(300,)` body shape (zeros when None); fewer components are zero-padded.
        fps: frame rate stored as `mocap_frame_rate`.
    """
    path = Path(path)
    poses = np.asarray(poses, dtype=np.float32)
    n = poses.shape[0]
    if poses.ndim != 2 or poses.shape[1] != NUM_JOINTS * 3:
        raise ValueError(f"poses must be (n, 165), got {poses.shape}")
    trans = np.asarray(trans, dtype=np.float32)
    expressions = np.asarray(expressions, dtype=np.float32)
    if trans.shape != (n, 3):
        raise ValueError(f"trans must be ({n}, 3), got {trans.shape}")
    if expressions.shape != (n, NUM_EXPRESSIONS):
        raise ValueError(f"expressions must be ({n}, {NUM_EXPRESSIONS}), got {expressions.shape}")
    b = np.zeros(NUM_BETAS, dtype=np.float32)
    if betas is not None:
        betas = np.asarray(betas, dtype=np.float32).reshape(-1)[:NUM_BETAS]
        b[: betas.shape[0]] = betas
    with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            poses=poses,
            trans=trans,
            betas=b,
            expressions=expressions,
            model=np.array(NPZ_MODEL),
            gender=np.array(NPZ_GENDER),
            mocap_frame_rate=np.array(fps, dtype=np.int32),
        )
    return path


# ------------------------------------------------------------------------------------------------ psi JSON
def save_psi_json(
    path: str | Path,
    *,
    psi: np.ndarray | None,
    gate: np.ndarray | None,
    gain: np.ndarray | None,
    beta: float | None,
    mode: str,
    words: Sequence[dict[str, Any]] = (),
    notices: Sequence[str] = (),
    fps: int = FPS,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the per-frame semantic score and gate decisions of one generated sequence.

    Keys: `fps`, `frames`, `mode`, `beta`, `psi` (n floats, null in rhythm mode), `gate` (n 0/1: the body took the
    semantic codes), `gain` (n emphasis gains on ψ), `semantic_fraction`, `words` (start, end, word, vocabulary
    status, gain), `notices`, plus `extra`.
    """
    path = Path(path)
    n = next((len(a) for a in (psi, gate, gain) if a is not None), 0)
    data: dict[str, Any] = {
        "fps": fps,
        "frames": int(n),
        "mode": mode,
        "beta": beta,
        "psi": None if psi is None else [round(float(v), 4) for v in np.asarray(psi)],
        "gate": None if gate is None else [int(v) for v in np.asarray(gate)],
        "gain": None if gain is None else [round(float(v), 4) for v in np.asarray(gain)],
        "semantic_fraction": None if gate is None or n == 0 else float(np.mean(np.asarray(gate) > 0)),
        "words": list(words),
        "notices": list(notices),
    }
    data.update(extra or {})
    with atomic_path(path, ".json") as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
    return path


# ------------------------------------------------------------------------------------------------ Euler angles
def _check_order(order: str) -> tuple[int, int, int]:
    order = order.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"Euler order must be a permutation of XYZ (e.g. ZXY), got {order!r}")
    i, j, k = (_AXES[c] for c in order)
    return i, j, k


def _elementary(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == 0:
        rows = ((one, zero, zero), (zero, c, -s), (zero, s, c))
    elif axis == 1:
        rows = ((c, zero, s), (zero, one, zero), (-s, zero, c))
    else:
        rows = ((c, -s, zero), (s, c, zero), (zero, zero, one))
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def euler_to_matrix(angles: np.ndarray, order: str = "ZXY") -> np.ndarray:
    """`(..., 3)` angles in radians, listed in `order` -> `(..., 3, 3)` = `R_order[0] @ R_order[1] @ R_order[2]`."""
    axes = _check_order(order)
    angles = np.asarray(angles, dtype=np.float64)
    m = _elementary(axes[0], angles[..., 0])
    for n, axis in enumerate(axes[1:], start=1):
        m = m @ _elementary(axis, angles[..., n])
    return m


def matrix_to_euler(m: np.ndarray, order: str = "ZXY") -> np.ndarray:
    """Inverse of `euler_to_matrix`: `(..., 3, 3)` -> `(..., 3)` radians in `order`, middle angle in
    [-pi/2, pi/2]; at gimbal lock the last angle is set to 0."""
    i, j, k = _check_order(order)
    m = np.asarray(m, dtype=np.float64)
    sign = 1.0 if (i, j, k) in ((0, 1, 2), (1, 2, 0), (2, 0, 1)) else -1.0
    sin_mid = np.clip(sign * m[..., i, k], -1.0, 1.0)
    mid = np.arcsin(sin_mid)
    locked = np.abs(sin_mid) > 1.0 - 1e-9
    first = np.arctan2(-sign * m[..., j, k], m[..., k, k])
    last = np.arctan2(-sign * m[..., i, j], m[..., i, i])
    first_locked = np.arctan2(sign * m[..., k, j], m[..., j, j])
    first = np.where(locked, first_locked, first)
    last = np.where(locked, 0.0, last)
    return np.stack((first, mid, last), axis=-1)


def _axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rodrigues in float64 numpy: `(..., 3)` -> `(..., 3, 3)`."""
    aa = np.asarray(aa, dtype=np.float64)
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    axis = aa / np.where(angle < 1e-12, 1.0, angle)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack((zero, -z, y, z, zero, -x, -y, x, zero), axis=-1).reshape(*aa.shape[:-1], 3, 3)
    s = np.sin(angle)[..., None]
    c = np.cos(angle)[..., None]
    return np.eye(3) + s * k + (1.0 - c) * (k @ k)


# ------------------------------------------------------------------------------------------------ BVH
@dataclass
class BVHMotion:
    """A parsed BVH file.

    Attributes:
        names: joint names in file order; parents: parent index per joint (-1 for the root).
        offsets: `(J, 3)` joint offsets from the parent; channels: the channel names of each joint.
        frame_time: seconds per frame; motion: `(n, C)` channel values in file order (degrees for rotations).
    """

    names: list[str]
    parents: list[int]
    offsets: np.ndarray
    channels: list[list[str]]
    frame_time: float
    motion: np.ndarray

    def joint_positions(self) -> np.ndarray:
        """Forward kinematics of the file: `(n, J, 3)` world joint positions in the file's units."""
        n, j_count = self.motion.shape[0], len(self.names)
        world_r = np.zeros((n, j_count, 3, 3))
        world_t = np.zeros((n, j_count, 3))
        col = 0
        for j in range(j_count):
            chans = self.channels[j]
            values = self.motion[:, col : col + len(chans)]
            col += len(chans)
            pos = np.zeros((n, 3))
            rot_names = [c[0].upper() for c in chans if c.lower().endswith("rotation")]
            rot_values = np.deg2rad(values[:, [c.lower().endswith("rotation") for c in chans]])
            for c, name in enumerate(chans):
                if name.lower().endswith("position"):
                    pos[:, _AXES[name[0].upper()]] = values[:, c]
            local = (
                euler_to_matrix(rot_values, "".join(rot_names)) if rot_names else np.broadcast_to(np.eye(3), (n, 3, 3))
            )
            p = self.parents[j]
            if p < 0:
                world_r[:, j] = local
                world_t[:, j] = self.offsets[j] + pos
            else:
                world_r[:, j] = world_r[:, p] @ local
                world_t[:, j] = world_t[:, p] + (world_r[:, p] @ (self.offsets[j] + pos)[..., None])[..., 0]
        return world_t


def write_bvh(
    path: str | Path,
    poses: np.ndarray,
    trans: np.ndarray,
    rest_joints: np.ndarray,
    pose_offset: np.ndarray | None = None,
    fps: int = FPS,
    order: str = "ZXY",
    scale: float = 100.0,
    chunk: int = 1024,
) -> Path:
    """Write the 55-joint SMPL-X skeleton and its motion as BVH.

    Args:
        poses: `(n, 165)` axis-angle per joint (BEAT2 `poses`).
        trans: `(n, 3)` root translation (metres).
        rest_joints: `(55, 3)` rest-pose joint positions of the body shape (`BodyModel.shaped_rest_joints`).
        pose_offset: `(55, 3)` axis-angle added to every joint before conversion (the SMPL-X model's mean hand
            pose, `BodyModel.pose_mean`, so the BVH rest pose is the flat hand and the file reproduces
            `BodyModel.joints`); zeros when None.
        fps: frame rate; order: Euler channel order of every joint; scale: units per metre (100: centimetres).
        chunk: frames converted at a time (bounds memory for long motions).
    """
    path = Path(path)
    order = order.upper()
    _check_order(order)
    poses = np.asarray(poses, dtype=np.float64)
    trans = np.asarray(trans, dtype=np.float64)
    rest = np.asarray(rest_joints, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != NUM_JOINTS * 3 or trans.shape != (poses.shape[0], 3):
        raise ValueError(f"poses (n, 165) and trans (n, 3) expected, got {poses.shape} and {trans.shape}")
    if rest.shape != (NUM_JOINTS, 3):
        raise ValueError(f"rest_joints must be (55, 3), got {rest.shape}")
    offset = np.zeros((NUM_JOINTS, 3)) if pose_offset is None else np.asarray(pose_offset, np.float64).reshape(55, 3)
    children: dict[int, list[int]] = {j: [] for j in range(NUM_JOINTS)}
    for j, p in enumerate(PARENTS):
        if p >= 0:
            children[p].append(j)
    rot_channels = " ".join(f"{c}rotation" for c in order)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        p = PARENTS[j]
        off = np.zeros(3) if p < 0 else (rest[j] - rest[p]) * scale
        lines.append(f"{pad}{'ROOT' if p < 0 else 'JOINT'} {JOINT_NAMES[j]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        if p < 0:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition {rot_channels}")
        else:
            lines.append(f"{pad}  CHANNELS 3 {rot_channels}")
        if children[j]:
            for c in children[j]:
                emit(c, depth + 1)
        else:  # an end site continuing the bone by half its length
            end = off * 0.5 if p >= 0 else np.array([0.0, 0.1 * scale, 0.0])
            lines.append(f"{pad}  End Site")
            lines.append(f"{pad}  {{")
            lines.append(f"{pad}    OFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}")
            lines.append(f"{pad}  }}")
        lines.append(f"{pad}}}")

    emit(0, 0)
    order_in_file: list[int] = []

    def walk(j: int) -> None:
        order_in_file.append(j)
        for c in children[j]:
            walk(c)

    walk(0)
    n = poses.shape[0]
    lines += ["MOTION", f"Frames: {n}", f"Frame Time: {1.0 / fps:.8f}"]
    with atomic_path(path, ".bvh") as tmp, open(tmp, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
        for s in range(0, n, chunk):
            aa = poses[s : s + chunk].reshape(-1, NUM_JOINTS, 3) + offset
            euler = np.rad2deg(matrix_to_euler(_axis_angle_to_matrix(aa), order))[:, order_in_file]  # (m, J, 3)
            root = (trans[s : s + chunk] + rest[0]) * scale
            rows = np.concatenate((root, euler.reshape(euler.shape[0], -1)), axis=1)
            np.savetxt(f, rows, fmt="%.5f")
    return path


def read_bvh(path: str | Path) -> BVHMotion:
    """Parse a BVH file (hierarchy, channels and motion) -> `BVHMotion`."""
    path = Path(path)
    tokens = path.read_text(encoding="utf-8", errors="replace").split()
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    i = 0
    last: int | None = None
    in_end_site = False
    try:
        while tokens[i] != "MOTION":
            tok = tokens[i]
            if tok in ("ROOT", "JOINT"):
                names.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                offsets.append([0.0, 0.0, 0.0])
                channels.append([])
                last = len(names) - 1
                i += 2
            elif tok == "End":
                in_end_site = True
                i += 2
            elif tok == "{":
                stack.append(-2 if in_end_site else last)  # type: ignore[arg-type]
                i += 1
            elif tok == "}":
                popped = stack.pop()
                if popped == -2:
                    in_end_site = False
                i += 1
            elif tok == "OFFSET":
                if not in_end_site:
                    offsets[stack[-1]] = [float(v) for v in tokens[i + 1 : i + 4]]
                i += 4
            elif tok == "CHANNELS":
                count = int(tokens[i + 1])
                channels[stack[-1]] = tokens[i + 2 : i + 2 + count]
                i += 2 + count
            else:
                i += 1
        frames = int(tokens[i + 2])
        frame_time = float(tokens[i + 5])
        values = np.asarray(tokens[i + 6 :], dtype=np.float64)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable BVH file ({exc})") from exc
    width = sum(len(c) for c in channels)
    if values.size != frames * width:
        raise ValueError(f"{path}: {values.size} motion values, expected {frames} frames x {width} channels")
    return BVHMotion(names, parents, np.asarray(offsets), channels, frame_time, values.reshape(frames, width))


# ------------------------------------------------------------------------------------------------ video
#: GIF palette indices of the stick-figure frames
_PALETTE = [
    (255, 255, 255),  # 0 background
    (31, 119, 180),  # 1 body
    (255, 127, 14),  # 2 hands
    (200, 200, 200),  # 3 floor and frame
    (214, 39, 40),  # 4 gate on
    (120, 120, 120),  # 5 psi trace / text
    (44, 160, 44),  # 6 psi bar
    (0, 0, 0),  # 7 text
]


@dataclass
class VideoResult:
    """What `render_video` wrote: the file, its kind (`mp4` or `gif`), frames drawn and notes."""

    path: Path
    kind: str
    frames: int
    notes: list[str]


def ffmpeg_binary() -> str | None:
    """The `ffmpeg` executable: `SEMTALK_FFMPEG`, else the one on the PATH, else the static build bundled with the
    `imageio-ffmpeg` wheel (installed with semtalk; nothing is downloaded), else None."""
    found = os.environ.get("SEMTALK_FFMPEG") or shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:  # a wheel without a binary for this platform
        return None


class StickFigureCanvas:
    """Draws one frame: front view (x, y) and side view (z, y) of the 55 joints, plus a ψ strip.

    Args:
        width, height: pixels of the whole frame (two square-ish panels above a 24-pixel strip).
        centre: `(3,)` world point drawn at the panels' centre x and the pelvis height (metres).
        metres: vertical extent of each panel.
    """

    def __init__(self, width: int = 480, height: int = 300, centre: np.ndarray | None = None, metres: float = 2.2):
        self.width, self.height = width, height
        self.strip = 24
        self.panel_w = width // 2
        self.panel_h = height - self.strip
        self.scale = self.panel_h / metres
        self.centre = np.zeros(3) if centre is None else np.asarray(centre, dtype=np.float64)

    def draw(self, joints: np.ndarray, psi: float | None, gate: bool, label: str):
        """`joints (55, 3)` metres -> PIL image in palette mode."""
        from PIL import Image, ImageDraw

        img = Image.new("P", (self.width, self.height), 0)
        img.putpalette([c for rgb in _PALETTE for c in rgb] + [0] * (768 - 3 * len(_PALETTE)))
        d = ImageDraw.Draw(img)
        floor_y = self.panel_h - 6
        for panel, axis in ((0, 0), (1, 2)):
            x0 = panel * self.panel_w
            d.line([(x0 + 4, floor_y), (x0 + self.panel_w - 4, floor_y)], fill=3, width=1)
            if panel:
                d.line([(x0, 0), (x0, self.panel_h)], fill=3, width=1)
            rel = joints - self.centre
            u = x0 + self.panel_w / 2 + rel[:, axis] * self.scale * (1 if axis == 0 else -1)
            v = self.panel_h * 0.45 - rel[:, 1] * self.scale
            for child, parent in enumerate(PARENTS):
                if parent >= 0:
                    d.line([(u[parent], v[parent]), (u[child], v[child])], fill=1 if child < 25 else 2, width=3)
        d.text((6, 4), "front", fill=5)
        d.text((self.panel_w + 6, 4), "side", fill=5)
        y0 = self.panel_h
        d.rectangle([0, y0, self.width - 1, self.height - 1], fill=0, outline=3)
        if psi is not None:
            d.rectangle([2, y0 + 6, 2 + int((self.width // 3) * float(np.clip(psi, 0, 1))), y0 + 18], fill=6)
            d.rectangle([2, y0 + 6, 2 + self.width // 3, y0 + 18], outline=3)
            if gate:
                d.rectangle([self.width // 3 + 10, y0 + 6, self.width // 3 + 22, y0 + 18], fill=4)
        d.text((self.width // 3 + 30, y0 + 6), label, fill=7)
        return img


def _frame_times(n: int, fps: int, video_fps: int, max_frames: int | None) -> np.ndarray:
    count = int(np.floor((n - 1) / fps * video_fps)) + 1 if n else 0
    if max_frames is not None:
        count = min(count, max_frames)
    return np.minimum(np.round(np.arange(count) * fps / video_fps).astype(np.int64), max(n - 1, 0))


def render_video(
    out_stem: str | Path,
    joints_fn,
    n: int,
    *,
    psi: np.ndarray | None = None,
    gate: np.ndarray | None = None,
    audio_path: str | Path | None = None,
    fps: int = FPS,
    video_fps: int = 30,
    gif_fps: int = 20,
    gif_max_seconds: float | None = 60.0,
    size: tuple[int, int] = (480, 300),
    chunk: int = 300,
    prefer: str = "auto",
) -> VideoResult:
    """Render the motion to `<out_stem>.mp4` (ffmpeg present, speech muxed in) or `<out_stem>.gif`.

    Args:
        joints_fn: `f(start, stop) -> (stop - start, 55, 3)` world joints in metres of frames `[start, stop)`
            (called chunk by chunk, so memory stays bounded for long motions).
        n: frames of the motion (at `fps`).
        psi, gate: `(n,)` per-frame ψ and gate decisions drawn in the strip (None in rhythm mode).
        audio_path: speech to mux into the MP4.
        video_fps: MP4 frame rate; gif_fps: GIF frame rate (GIF delays are in 10 ms steps, so 20 or 25).
        gif_max_seconds: a GIF keeps the whole animation in memory: longer motions are cut with a note.
        prefer: `auto` (MP4 when ffmpeg exists), `mp4` (fail without ffmpeg) or `gif`.
    """
    out_stem = Path(out_stem)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    ffmpeg = ffmpeg_binary() if prefer in ("auto", "mp4") else None
    if prefer == "mp4" and ffmpeg is None:
        raise FileNotFoundError(
            "no ffmpeg binary (none on the PATH and no imageio-ffmpeg): `pip install imageio-ffmpeg`, install ffmpeg, "
            "or render a GIF (--video gif)"
        )
    first = np.asarray(joints_fn(0, min(n, 1)))
    centre = first[0, 0] if len(first) else np.zeros(3)
    canvas = StickFigureCanvas(size[0], size[1], centre=centre)

    def frames(times: np.ndarray) -> Iterator:
        for s in range(0, len(times), chunk):
            idx = times[s : s + chunk]
            lo, hi = int(idx[0]), int(idx[-1]) + 1
            block = np.asarray(joints_fn(lo, hi))
            for f in idx:
                p = None if psi is None else float(psi[f])
                g = bool(gate[f]) if gate is not None else False
                label = f"{f / fps:6.2f} s" + ("" if p is None else f"   psi {p:.2f}" + ("  semantic" if g else ""))
                yield canvas.draw(block[f - lo], p, g, label)

    if ffmpeg is not None:
        times = _frame_times(n, fps, video_fps, None)
        path = out_stem.with_suffix(".mp4")
        with atomic_path(path, ".mp4") as tmp:
            cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                   "-s", f"{size[0]}x{size[1]}", "-r", str(video_fps), "-i", "-"]  # fmt: skip
            if audio_path is not None:
                cmd += ["-i", str(audio_path), "-c:a", "aac", "-shortest"]
            cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mp4", str(tmp)]
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            assert proc.stdin is not None
            try:
                for img in frames(times):
                    proc.stdin.write(img.convert("RGB").tobytes())
                proc.stdin.close()
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                if proc.wait() != 0:
                    raise RuntimeError(f"ffmpeg failed ({' '.join(cmd)}): {err.strip()}")
            except BaseException:
                proc.kill()
                raise
        return VideoResult(path, "mp4", len(times), notes)

    max_frames = None if gif_max_seconds is None else int(gif_max_seconds * gif_fps)
    times = _frame_times(n, fps, gif_fps, max_frames)
    if max_frames is not None and n / fps > gif_max_seconds:
        notes.append(
            f"the GIF shows the first {gif_max_seconds:g} s of {n / fps:.1f} s (install ffmpeg for a full MP4)"
        )
    notes.append("no ffmpeg binary found: wrote an animated GIF without sound; the speech is in the separate wav")
    path = out_stem.with_suffix(".gif")
    images = list(frames(times))
    if not images:
        raise ValueError("nothing to render: the motion has no frames")
    with atomic_path(path, ".gif") as tmp, open(tmp, "wb") as f:
        images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=int(round(1000 / gif_fps)),
                       loop=0, optimize=False)  # fmt: skip
    return VideoResult(path, "gif", len(images), notes)


def body_joints_fn(body_model, poses: np.ndarray, trans: np.ndarray, betas: np.ndarray) -> Callable:
    """A `joints_fn(start, stop) -> (stop - start, 55, 3)` for `render_video`, from `BodyModel.joints` on demand."""
    import torch

    betas_t = torch.as_tensor(np.asarray(betas, dtype=np.float32))

    def joints_fn(start: int, stop: int) -> np.ndarray:
        with torch.no_grad():
            p = torch.as_tensor(np.asarray(poses[start:stop], dtype=np.float32))
            t = torch.as_tensor(np.asarray(trans[start:stop], dtype=np.float32))
            return body_model.joints(p, betas_t, t).cpu().numpy()

    return joints_fn
