"""Score a trained base or sparse checkpoint on the val (or test) clips of a dataset.

For every clip: generate from its own speech (seeded with its first 4 frames), then report the mean joint position
error against the ground truth and against the training mean pose, beat consistency (BC, corrected profile) of the
generated motion with its own audio and with another clip's audio, and for a sparse checkpoint the Sem-gate accuracy.

    python scripts/check_generation.py checkpoints/base.ckpt [--split val] [--config configs/data/embedded.yaml]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import yaml

from semtalk.body.model import BodyModel
from semtalk.data.beat2 import load_audio
from semtalk.data.datamodule import Beat2DataModule
from semtalk.data.root import Beat2Root
from semtalk.metrics.beat_consistency import file_beat_consistency, prepare_bc_audio
from semtalk.metrics.motion_inputs import body_joints


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--config", default="configs/data/embedded.yaml")
    args = ap.parse_args()

    with open(args.config) as f:
        cfg = yaml.safe_load(f)["data"]["init_args"]
    dm = Beat2DataModule(**{**cfg, "progress": False})
    dm.setup("validate" if args.split == "val" else "test")
    loader = dm.val_dataloader() if args.split == "val" else dm.test_dataloader()
    ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    if "semtalk_sparse" in ckpt:
        from stages.sparse import SparseStage, token_scores

        stage = SparseStage.load_from_checkpoint(args.checkpoint, map_location="cpu").eval()
    else:
        from stages.base import BaseStage

        stage = BaseStage.load_from_checkpoint(args.checkpoint, map_location="cpu").eval()
    body = BodyModel(dm.spec["smplx_root"])
    mean_vel = np.load(Beat2Root(cfg["root"]).weights_dir / "mean_vel_smplxflame_30.npy")
    root = Beat2Root(cfg["root"])
    clips = []
    with torch.no_grad():
        for batch in loader:
            n = int(batch["hubert"].shape[1]) // 4 * 4
            seed = batch["latent_all"][:, :4].float()
            start = batch["trans"][:, 0].float()
            if "semtalk_sparse" in ckpt:
                feats = {k: batch[k][:, :n] for k in ("hubert", "beat", "words", "emotion") if k in batch}
                res = stage.generate(feats, batch["clip_text"], batch["speaker"].long(), n, seed, start)
                target = token_scores(batch["sem"][:, :n].float()) > 0
                gate = ((res.psi[:, ::4][:, : target.shape[1]] > stage.hparams.beta) == target).float().mean().item()
            else:
                res = stage.generate(
                    batch["hubert"][:, :n], batch["beat"][:, :n], batch["speaker"].long(), n, seed, start
                )
                gate = None
            betas = batch["betas"][0].float()
            gen = body_joints(body, res.params.poses[0], betas)
            gt = body_joints(body, batch["poses"][0, :n].float(), betas)
            clips.append({"id": batch["clip_id"][0], "gen": gen, "gt": gt, "gate": gate})
    mean_pose = np.concatenate([c["gt"] for c in clips]).mean(0)
    rows = []
    for i, c in enumerate(clips):
        own = prepare_bc_audio(load_audio(root.audio_path(c["id"])), "corrected")
        other_id = clips[(i + 1) % len(clips)]["id"]
        other = prepare_bc_audio(load_audio(root.audio_path(other_id)), "corrected")
        n = len(c["gen"])
        other = np.resize(other, max(len(other), len(own)))  # loop the other clip's audio to cover this one
        rows.append(
            {
                "clip": c["id"],
                "joint_error_m": float(np.linalg.norm(c["gen"] - c["gt"], axis=-1).mean()),
                "mean_pose_error_m": float(np.linalg.norm(mean_pose[None] - c["gt"], axis=-1).mean()),
                "bc_own_audio": file_beat_consistency(c["gen"], own, mean_vel, "corrected")[0],
                "bc_other_audio": file_beat_consistency(c["gen"], other, mean_vel, "corrected")[0],
                "bc_ground_truth": file_beat_consistency(c["gt"], own, mean_vel, "corrected")[0],
                "gate_accuracy": c["gate"],
                "frames": n,
            }
        )
    summary = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("clip", "gate_accuracy")}
    if rows[0]["gate_accuracy"] is not None:
        w = np.array([r["frames"] for r in rows], float)
        summary["gate_accuracy"] = float(np.average([r["gate_accuracy"] for r in rows], weights=w))
    print(
        json.dumps({"checkpoint": args.checkpoint, "split": args.split, "clips": len(rows), "mean": summary}, indent=2)
    )


if __name__ == "__main__":
    main()
