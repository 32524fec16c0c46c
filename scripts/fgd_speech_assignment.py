"""Does FGD respond to which speech drives which clip? FGD of generated motion on a split under several speech
assignments, next to the FGD of real motion sets of the same size.

Rows (each for the base generator alone and for the full model): every clip driven by its own speech; by clip
i+k's speech for k = 1, 2, 3 (the report's shuffled-audio row is k = 1; shorter speech is looped to length); by its
own speech rotated in time by half its length (the right speech at the wrong moments). Then FGD between the split's
ground truth and the ground truth of the other held-out split, and of random sets of training clips of the same size.

    python scripts/fgd_speech_assignment.py [--checkpoints checkpoints] [--split test] [--fgd-encoder FILE]

Run in a project after `make demo` (it reads the feature cache, `checkpoints/{base,sparse,fgd}.pt|ckpt` and the
dataset of `--data-config`).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from pathlib import Path

import numpy as np
import torch

from semtalk.data.beat2 import load_motion, load_split
from semtalk.data.root import Beat2Root
from semtalk.metrics.motion_inputs import fgd_rot6d
from semtalk.metrics.torchmetrics_impl import FGD
from stages.base import BaseStage
from stages.report import datamodule_from_config, generate_clips, keep_freed_memory, load_fgd, load_split_clips
from stages.sparse import SparseStage


def fgd(encoder, pred: list[np.ndarray], target: list[np.ndarray]) -> float:
    """FGD (corrected profile) between two lists of `(T, 165)` pose sequences, pairwise cut to the shorter."""
    metric = FGD(encoder, "corrected")
    for p, t in zip(pred, target):
        n = min(len(p), len(t))
        metric.update(fgd_rot6d(torch.from_numpy(p[:n]))[None], fgd_rot6d(torch.from_numpy(t[:n]))[None])
    return float(metric.compute())


def assignment_fgd(
    checkpoints: Path, data_config: str | Path, split: str = "test", fgd_encoder: Path | None = None, draws: int = 6
) -> dict[str, object]:
    """FGD per speech assignment and stage, and of real motion sets: `{"rows": {assignment: {stage: fgd}},
    "held_out": float, "train_draws": [float, ...], "clips": n}`."""
    keep_freed_memory()
    dm = datamodule_from_config(data_config)
    clips = load_split_clips(dm, split)
    n = len(clips)
    encoder, _ = load_fgd(fgd_encoder or checkpoints / "fgd.pt")
    gt = [c.poses for c in clips]

    def rotated(c):
        feats = {k: torch.roll(v, v.shape[1] // 2, dims=1) for k, v in c.features.items()}
        return dataclasses.replace(c, features=feats)

    stages = {
        "base only": BaseStage.load_from_checkpoint(checkpoints / "base.ckpt", map_location="cpu", weights_only=True),
        "full model": SparseStage.load_from_checkpoint(checkpoints / "sparse.ckpt", map_location="cpu",
                                                       weights_only=True),
    }  # fmt: skip
    assignments = {"its own": None, **{f"clip i+{k}'s": [(i + k) % n for i in range(n)] for k in (1, 2, 3)}}
    rows: dict[str, dict[str, float]] = {name: {} for name in [*assignments, "its own, rotated by half"]}
    for label, stage in stages.items():
        stage.eval().requires_grad_(False)
        for name, source in assignments.items():
            rows[name][label] = fgd(encoder, [m.poses for m in generate_clips(stage, clips, source)], gt)
        motions = generate_clips(stage, [rotated(c) for c in clips])
        rows["its own, rotated by half"][label] = fgd(encoder, [m.poses for m in motions], gt)

    root = Beat2Root(dm.root)
    assigned = load_split(root.split_path)
    other = "val" if split == "test" else "test"

    def poses(ids):
        return [load_motion(root.motion_path(i)).poses for i in ids]

    held_out = poses(sorted(i for i, s in assigned.items() if s == other))
    train = poses(sorted(i for i, s in assigned.items() if s == "train"))
    rng = random.Random(0)
    sets = [[train[j] for j in rng.sample(range(len(train)), min(n, len(train)))] for _ in range(draws)]
    return {"rows": rows, "held_out": fgd(encoder, held_out, gt), "train_draws": [fgd(encoder, t, gt) for t in sets],
            "clips": n, "other": other}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    ap.add_argument("--data-config", default="configs/data/embedded.yaml")
    ap.add_argument("--fgd-encoder", type=Path, default=None, help="default: <checkpoints>/fgd.pt")
    ap.add_argument("--split", choices=("test", "val"), default="test")
    ap.add_argument("--draws", type=int, default=6, help="random sets of training clips")
    args = ap.parse_args()
    res = assignment_fgd(args.checkpoints, args.data_config, args.split, args.fgd_encoder, args.draws)
    labels = list(next(iter(res["rows"].values())))
    print(f"| speech driving clip i ({args.split}, {res['clips']} clips) | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for name, values in res["rows"].items():
        print(f"| {name} | " + " | ".join(f"{values[k]:.2f}" for k in labels) + " |")
    draws = res["train_draws"]
    spread = f"{min(draws):.2f}-{max(draws):.2f} (mean {np.mean(draws):.2f})"
    print(f"\nreal motion against the {args.split} ground truth: the {res['other']} split {res['held_out']:.2f}; "
          f"{len(draws)} random sets of {res['clips']} training clips {spread}")  # fmt: skip


if __name__ == "__main__":
    main()
