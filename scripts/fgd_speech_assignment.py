"""Does FGD respond to which speech drives which clip? FGD of generated motion on a split under several speech
assignments, next to the FGD of real motion sets of the same size.

Rows (each for the base generator alone and for the full model): every clip driven by its own speech; by clip
i+k's speech for k = 1, 2, 3 (the report's shuffled-audio row is k = 1; shorter speech is looped to length); by its
own speech rotated in time by half its length (the right speech at the wrong moments). Then FGD between the split's
ground truth and the ground truth of the other held-out split, and of random sets of training clips of the same size.

    python scripts/fgd_speech_assignment.py [--checkpoints checkpoints] [--split test]

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
from semtalk.metrics.fgd_training import load_fgd_encoder_file
from semtalk.metrics.motion_inputs import fgd_rot6d
from semtalk.metrics.torchmetrics_impl import FGD
from stages.base import BaseStage
from stages.report import datamodule_from_config, generate_clips, keep_freed_memory, load_split_clips
from stages.sparse import SparseStage


def fgd(encoder, pred: list[np.ndarray], target: list[np.ndarray]) -> float:
    """FGD (corrected profile) between two lists of `(T, 165)` pose sequences, pairwise cut to the shorter."""
    metric = FGD(encoder, "corrected")
    for p, t in zip(pred, target):
        n = min(len(p), len(t))
        metric.update(fgd_rot6d(torch.from_numpy(p[:n]))[None], fgd_rot6d(torch.from_numpy(t[:n]))[None])
    return float(metric.compute())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    ap.add_argument("--data-config", default="configs/data/embedded.yaml")
    ap.add_argument("--split", choices=("test", "val"), default="test")
    ap.add_argument("--draws", type=int, default=6, help="random sets of training clips")
    args = ap.parse_args()
    keep_freed_memory()
    dm = datamodule_from_config(args.data_config)
    clips = load_split_clips(dm, args.split)
    n = len(clips)
    encoder = load_fgd_encoder_file(args.checkpoints / "fgd.pt")
    gt = [c.poses for c in clips]

    def rotated(c):
        feats = {k: torch.roll(v, v.shape[1] // 2, dims=1) for k, v in c.features.items()}
        return dataclasses.replace(c, features=feats)

    stages = {
        "base only": BaseStage.load_from_checkpoint(args.checkpoints / "base.ckpt", map_location="cpu",
                                                    weights_only=True),
        "full model": SparseStage.load_from_checkpoint(args.checkpoints / "sparse.ckpt", map_location="cpu",
                                                       weights_only=True),
    }  # fmt: skip
    print(f"| speech driving clip i ({args.split}, {n} clips) | " + " | ".join(stages) + " |")
    print("|---|" + "---:|" * len(stages))
    assignments = {"its own": None, **{f"clip i+{k}'s": [(i + k) % n for i in range(n)] for k in (1, 2, 3)}}
    results: dict[str, list[float]] = {name: [] for name in [*assignments, "its own, rotated by half"]}
    for stage in stages.values():
        stage.eval().requires_grad_(False)
        for name, source in assignments.items():
            results[name].append(fgd(encoder, [m.poses for m in generate_clips(stage, clips, source)], gt))
        motions = generate_clips(stage, [rotated(c) for c in clips])
        results["its own, rotated by half"].append(fgd(encoder, [m.poses for m in motions], gt))
    for name, values in results.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |")

    root = Beat2Root(dm.root)
    split = load_split(root.split_path)
    other = "val" if args.split == "test" else "test"

    def poses(ids):
        return [load_motion(root.motion_path(i)).poses for i in ids]

    held_out = poses(sorted(i for i, s in split.items() if s == other))
    train = poses(sorted(i for i, s in split.items() if s == "train"))
    rng = random.Random(0)
    draws = [fgd(encoder, [train[j] for j in rng.sample(range(len(train)), n)], gt) for _ in range(args.draws)]
    spread = f"{min(draws):.2f}-{max(draws):.2f} (mean {np.mean(draws):.2f})"
    print(f"\nreal motion against the {args.split} ground truth: the {other} split {fgd(encoder, held_out, gt):.2f}; "
          f"{args.draws} random sets of {n} training clips {spread}")  # fmt: skip


if __name__ == "__main__":
    main()
