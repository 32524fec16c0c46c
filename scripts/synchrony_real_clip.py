"""Synchrony measures on BEAT2's `2_scott_0_1_1` (and, optionally, on a dataset in BEAT2 layout).

Reproduces the measurement behind the synchrony metrics: beat consistency (BC) of the ground-truth motion
against its own audio barely changes when the audio is shifted by seconds, while the lagged correlation of
the jaw opening with the audio RMS envelope peaks sharply at lag 0. Prints, for the real clip:

* BC at audio offsets 0, +0.25, +1, +3 and -7 s (circular; positive: audio delayed against the motion),
  the BC contrast against +-1, +-2, +-3 s and its spread;
* lip-sync (jaw opening vs RMS envelope): lag-0 correlation, the null mean +- std at 1 s <= |lag| <= 5 s, the
  z-score and the peak lag within +-0.5 s (positive: motion late); the same for expression speed vs onset
  strength; gesture sync (upper-body + hand speed vs onset strength) as z, peak and a coarse curve;
* the same measures for a copy of the motion delayed by 150 ms.

With `--dataset DIR` (a BEAT2-layout folder such as `data/embedded`), the dataset-level values of every
measure for three conditions: ground truth with its own audio, ground truth with another clip's audio, and
ground truth delayed by 150 ms with its own audio.

    python scripts/synchrony_real_clip.py [--dataset data/embedded] [--profile semtalk2024]

Joint positions come from the SMPL-X body given by `--smplx-root`; without it the synthetic stand-in (seed
0) is written to a temporary folder, so BC differs slightly from the value the licensed body gives.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import numpy as np
import torch

from semtalk.body.joints import FPS, SAMPLE_RATE
from semtalk.body.model import BodyModel
from semtalk.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from semtalk.data.beat2 import load_audio, load_motion
from semtalk.metrics import (
    BCContrast,
    BeatConsistency,
    GestureSync,
    LipSync,
    bc_at_offsets,
    bc_contrast,
    body_joints,
    evaluation_length,
    gesture_sync,
    get_profile,
    lipsync,
    prepare_bc_audio,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DEFAULT_CLIP = SHARED / "data" / "beat2-sample" / "2_scott_0_1_1"
DEFAULT_MEAN_VEL = SHARED / "data" / "beat2-weights" / "mean_vel_smplxflame_30.npy"
BC_OFFSETS_S = (0.0, 0.25, 1.0, 3.0, -7.0)
DELAY_S = 0.15


def delay_motion(poses: np.ndarray, expressions: np.ndarray, seconds: float, fps: int = FPS):
    """Motion delayed by `seconds` (any fraction of a frame): frame i shows the motion at time i / fps -
    seconds, the first frame held before the start. Rotations are interpolated on SO(3), expressions
    linearly. `(T, 165)`, `(T, 100)` -> same shapes."""
    n = poses.shape[0]
    src = np.clip(np.arange(n) - seconds * fps, 0, n - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = torch.as_tensor(src - lo, dtype=torch.float64)
    rot = axis_angle_to_matrix(torch.as_tensor(poses, dtype=torch.float64).reshape(n, -1, 3))
    rel = matrix_to_axis_angle(rot[lo].transpose(-1, -2) @ rot[hi])
    out = rot[lo] @ axis_angle_to_matrix(rel * w[:, None, None])
    new_poses = matrix_to_axis_angle(out).reshape(n, -1).numpy().astype(np.float32)
    wn = (src - lo)[:, None]
    new_expr = ((1 - wn) * expressions[lo] + wn * expressions[hi]).astype(np.float32)
    return new_poses, new_expr


def body_model(smplx_root: str | None) -> BodyModel:
    if smplx_root:
        return BodyModel(smplx_root)
    from semtalk.body.synthetic_model import write_synthetic_smplx

    with tempfile.TemporaryDirectory(prefix="smplx_") as root:  # the model is read into memory on load
        write_synthetic_smplx(root, seed=0)
        model = BodyModel(root)
    model.temporary = True
    return model


def fmt(v: float, digits: int = 3) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:+.{digits}f}"


def real_clip(clip: Path, mean_vel: np.ndarray, model: BodyModel, profile: str) -> None:
    prof = get_profile(profile)
    motion = load_motion(clip.with_suffix(".npz"))
    audio = load_audio(clip.with_suffix(".wav"))
    t = motion.num_frames
    n = evaluation_length(prof, t, t, len(audio) / SAMPLE_RATE)
    poses, expr = motion.poses[:n], motion.expressions[:n]
    y_bc = prepare_bc_audio(audio, prof)
    print(f"# {clip.name}: {t} motion frames, {len(audio) / SAMPLE_RATE:.2f} s audio, {n} frames scored")
    body = "synthetic SMPL-X stand-in (seed 0)" if getattr(model, "temporary", False) else model.model_path
    print(f"# profile {prof.name}, body model: {body}\n")

    rows = []
    for label, (p, e) in (("ground truth", (poses, expr)), ("delayed +150 ms", delay_motion(poses, expr, DELAY_S))):
        joints = body_joints(model, p, motion.betas)
        bcs, _ = bc_at_offsets(joints, y_bc, mean_vel, BC_OFFSETS_S, prof)
        con = bc_contrast(joints, y_bc, mean_vel, prof)
        lips = lipsync(audio, p, e)
        gest = gesture_sync(joints, audio)
        rows.append((label, bcs, con, lips, gest))

    print("| motion | " + " | ".join(f"BC @ {o:+g} s" for o in BC_OFFSETS_S) + " | BC contrast (spread) |")
    print("|---|" + "---:|" * (len(BC_OFFSETS_S) + 1))
    for label, bcs, con, _, _ in rows:
        vals = " | ".join(f"{v:.4f}" for v in bcs)
        print(f"| {label} | {vals} | {con.contrast:+.4f} ({con.spread:.4f}) |")
    print()
    print("| motion | curve | r(0) | null mean +- std (1-5 s) | z | peak lag (s) | peak r |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, _, _, lips, gest in rows:
        for name, c in (("jaw vs RMS", lips.jaw), ("expr speed vs onset", lips.expression), ("gesture", gest)):
            print(
                f"| {label} | {name} | {c.r0:.3f} | {c.null_mean:+.3f} +- {c.null_std:.3f} | {c.z:.2f} | "
                f"{fmt(c.peak_lag_s)} | {c.peak_corr:.3f} |"
            )
    gest = rows[0][4]
    pick = np.flatnonzero(np.isclose(np.mod(gest.lags_s + 1e-9, 0.25), 0, atol=1e-6) & (np.abs(gest.lags_s) <= 2))
    print("\ngesture-sync curve of the ground truth (lag s: r): " + ", ".join(
        f"{gest.lags_s[k]:+.2f}: {gest.corr[k]:+.3f}" for k in pick
    ))  # fmt: skip


def _split_ids(root: Path, split: str) -> list[str]:
    ids = sorted(p.stem for p in (root / "smplxflame_30").glob("*.npz"))
    table = root / "train_test_split.csv"
    if split == "all" or not table.is_file():
        return ids
    with open(table, newline="") as f:
        wanted = {row["id"] for row in csv.DictReader(f) if row["type"] == split}
    return [i for i in ids if i in wanted]


def dataset(root: Path, model: BodyModel, profile: str, split: str) -> None:
    prof = get_profile(profile)
    ids = _split_ids(root, split)
    if len(ids) < 2:
        raise SystemExit(f"{root}: need at least two clips for the other-audio control, found {len(ids)}")
    mean_vel = np.load(root / "weights" / "mean_vel_smplxflame_30.npy")
    motions = {i: load_motion(root / "smplxflame_30" / f"{i}.npz") for i in ids}
    audios = {i: load_audio(root / "wave16k" / f"{i}.wav") for i in ids}
    conditions = ("own audio", "other clip's audio", "delayed +150 ms, own audio")
    metrics = {
        c: (BeatConsistency(mean_vel, prof), BCContrast(mean_vel, prof), LipSync(), GestureSync()) for c in conditions
    }
    for k, cid in enumerate(ids):
        m = motions[cid]
        other = ids[(k + 1) % len(ids)]
        for cond in conditions:
            audio = audios[other] if cond == conditions[1] else audios[cid]
            frames = min(m.num_frames, int(len(audio) * FPS // SAMPLE_RATE))
            n = evaluation_length(prof, frames, frames, len(audio) / SAMPLE_RATE)
            poses, expr = m.poses[:n], m.expressions[:n]
            if cond == conditions[2]:
                poses, expr = delay_motion(poses, expr, DELAY_S)
            joints = torch.from_numpy(body_joints(model, poses, m.betas))[None]
            a = torch.from_numpy(audio)[None]
            bc, con, lips, gest = metrics[cond]
            bc.update(joints, a)
            con.update(joints, a)
            lips.update(torch.from_numpy(poses)[None], torch.from_numpy(expr)[None], a)
            gest.update(joints, a)
    print(f"\n# dataset {root} ({split}: {len(ids)} clips), profile {prof.name}\n")
    print("| condition | BC | BC contrast (spread) | lip-sync z | lip-sync lag (s) | expr-sync z | expr lag (s) "
          "| gesture-sync z | gesture lag (s) |")  # fmt: skip
    print("|---|" + "---:|" * 8)
    for cond in conditions:
        bc, con, lips, gest = (m.compute() for m in metrics[cond])
        print(
            f"| {cond} | {float(bc):.4f} | {float(con['bc_contrast']):+.4f} ({float(con['bc_shifted_std']):.4f}) | "
            f"{float(lips['lipsync_z']):.2f} | {fmt(float(lips['lipsync_lag_s']))} | "
            f"{float(lips['expression_sync_z']):.2f} | {fmt(float(lips['expression_sync_lag_s']))} | "
            f"{float(gest['gesture_sync_z']):.2f} | {fmt(float(gest['gesture_sync_lag_s']))} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="clip path without extension (.npz + .wav)")
    ap.add_argument("--mean-vel", type=Path, default=DEFAULT_MEAN_VEL, help="BEAT2's mean_vel_smplxflame_30.npy")
    ap.add_argument("--smplx-root", default=None, help="folder holding smplx/SMPLX_NEUTRAL_2020.npz")
    ap.add_argument("--profile", default="semtalk2024", choices=("semtalk2024", "corrected"))
    ap.add_argument("--dataset", type=Path, default=None, help="also score a BEAT2-layout dataset folder")
    ap.add_argument("--split", default="all", choices=("all", "train", "val", "test"))
    args = ap.parse_args()

    for path, what in ((args.clip.with_suffix(".npz"), "clip"), (args.mean_vel, "mean joint speeds")):
        if not path.is_file():
            raise SystemExit(f"{what} not found at {path}; pass --clip / --mean-vel")
    model = body_model(args.smplx_root)
    real_clip(args.clip, np.load(args.mean_vel), model, args.profile)
    if args.dataset is not None:
        dataset(args.dataset, model, args.profile, args.split)


if __name__ == "__main__":
    main()
