"""Score a trained base or sparse checkpoint on the val (or test) clips of a dataset.

For every clip: generate from its own speech (seeded with its first 4 frames, cut to its generated length), then
report the mean joint position error against the ground truth and against the mean pose of the scored clips, beat
consistency (BC, corrected profile) of the generated motion with its own audio and with another clip's audio, and
for a sparse checkpoint the Sem-gate accuracy. Clip loading, batched generation and the gate counts are those of
the results report (`stages.report`); `make report` gives the full tables.

    python scripts/check_generation.py checkpoints/base.ckpt [--split val] [--config configs/data/embedded.yaml]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from semtalk.body.model import BodyModel
from semtalk.data.beat2 import load_audio
from semtalk.data.root import Beat2Root
from semtalk.metrics.beat_consistency import file_beat_consistency, prepare_bc_audio
from semtalk.metrics.motion_inputs import body_joints
from stages.report import datamodule_from_config, gate_stats, generate_clips, load_split_clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--config", default="configs/data/embedded.yaml")
    args = ap.parse_args()

    dm = datamodule_from_config(args.config)
    clips = load_split_clips(dm, args.split)
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    if "semtalk_sparse" in ckpt:
        from stages.sparse import SparseStage

        stage = SparseStage.load_from_checkpoint(args.checkpoint, map_location="cpu", weights_only=True).eval()
    else:
        from stages.base import BaseStage

        stage = BaseStage.load_from_checkpoint(args.checkpoint, map_location="cpu", weights_only=True).eval()
    motions = generate_clips(stage, clips)
    body = BodyModel(dm.spec["smplx_root"])
    root = Beat2Root(dm.root)
    mean_vel = np.load(root.weights_dir / "mean_vel_smplxflame_30.npy")
    gen = [body_joints(body, m.poses, c.betas) for m, c in zip(motions, clips)]
    gt = [body_joints(body, c.poses, c.betas) for c in clips]
    mean_pose = np.concatenate(gt).mean(0)
    rows = []
    for i, c in enumerate(clips):
        own = prepare_bc_audio(load_audio(root.audio_path(c.clip_id)), "corrected")
        other = prepare_bc_audio(load_audio(root.audio_path(clips[(i + 1) % len(clips)].clip_id)), "corrected")
        other = np.resize(other, max(len(other), len(own)))  # loop the other clip's audio to cover this one
        rows.append(
            {
                "clip": c.clip_id,
                "joint_error_m": float(np.linalg.norm(gen[i] - gt[i], axis=-1).mean()),
                "mean_pose_error_m": float(np.linalg.norm(mean_pose[None] - gt[i], axis=-1).mean()),
                "bc_own_audio": file_beat_consistency(gen[i], own, mean_vel, "corrected")[0],
                "bc_other_audio": file_beat_consistency(gen[i], other, mean_vel, "corrected")[0],
                "bc_ground_truth": file_beat_consistency(gt[i], own, mean_vel, "corrected")[0],
                "frames": c.frames,
            }
        )
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "clip"}
    if motions[0].psi is not None:
        summary["gate_accuracy"] = gate_stats([m.psi for m in motions], clips, float(stage.hparams.beta)).accuracy
    print(
        json.dumps({"checkpoint": args.checkpoint, "split": args.split, "clips": len(rows), "mean": summary}, indent=2)
    )


if __name__ == "__main__":
    main()
