"""Score a base (and optionally a sparse) checkpoint on one split with own and another clip's speech: the quick
measurement behind each training change (the full report is `make report`).

    python scripts/probe_generators.py --base checkpoints/base.ckpt [--sparse checkpoints/sparse.ckpt] \
        [--split val] [--fgd-encoder checkpoints/fgd.pt] [--out outputs/probe/NAME] [--name NAME]

Rows: ground truth, base only, base with another clip's speech (clip i gets clip i+1's), and with `--sparse` the
full model and the full model with another clip's speech. Each row is scored with the `corrected` profile (FGD,
BC, diversity, lip-sync z, ...) and with the keyword-gesture accuracy (classifier fitted on the ground truth's
train split). Prints one table and writes `<out>/probe.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from semtalk.atomic import write_text_atomic
from semtalk.body.face_mesh import FaceMeshBody
from semtalk.body.model import BodyModel
from semtalk.data.root import Beat2Root
from semtalk.metrics.keyword_gesture import fit_on_root, held_out_keywords, root_segments, score_motions
from stages.base import BaseStage
from stages.report import (
    Motion,
    Scorer,
    datamodule_from_config,
    derangement,
    generate_clips,
    load_fgd,
    load_split_clips,
)
from stages.sparse import SparseStage

SHOWN = ("fgd", "bc", "diversity", "lipsync_z", "keyword_accuracy", "held_out_accuracy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="stage-2 checkpoint")
    ap.add_argument("--sparse", default=None, help="stage-3 checkpoint (trained on --base)")
    ap.add_argument("--data-config", default="configs/data/embedded.yaml")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--fgd-encoder", default=None, help="FGD encoder weights (default: a random-init encoder)")
    ap.add_argument("--out", default=None, help="row motions and probe.json (default outputs/probe/NAME)")
    ap.add_argument("--name", default=None, help="a name for the run (default: the base checkpoint's folder name)")
    args = ap.parse_args()
    name = args.name or Path(args.base).resolve().parent.name
    out = Path(args.out or f"outputs/probe/{name}")
    t0 = time.perf_counter()
    torch.manual_seed(0)
    dm = datamodule_from_config(args.data_config)
    root = Beat2Root(dm.root)
    clips = load_split_clips(dm, args.split)
    base = BaseStage.load_from_checkpoint(args.base, map_location="cpu", weights_only=True).eval()
    base.requires_grad_(False)
    body = FaceMeshBody(BodyModel(dm.spec["smplx_root"]))
    fgd, _ = load_fgd(args.fgd_encoder)
    scorer = Scorer(out, clips, root.audio_path(clips[0].clip_id).parent, body, fgd, root.weights_dir
                    / "mean_vel_smplxflame_30.npy")  # fmt: skip
    classifier = fit_on_root(root, body, dm.train_splits, dm.speakers)
    segments = root_segments(root, [c.clip_id for c in clips], frames={c.clip_id: c.frames for c in clips})
    other = derangement(len(clips))
    rows = {"ground_truth": None, "base_only": lambda: generate_clips(base, clips),
            "base_shuffled": lambda: generate_clips(base, clips, other)}  # fmt: skip
    if args.sparse:
        sparse = SparseStage.load_from_checkpoint(
            args.sparse, map_location="cpu", weights_only=True, base=str(Path(args.base).resolve())
        ).eval()
        sparse.base = base
        sparse.requires_grad_(False)
        rows["full"] = lambda: generate_clips(sparse, clips)
        rows["full_shuffled"] = lambda: generate_clips(sparse, clips, other)
    results = {}
    for row, job in rows.items():
        if job is None:
            motions = {c.clip_id: (c.poses, c.betas) for c in clips}
            scorer.write(row, [Motion(c.poses, c.trans, c.expressions) for c in clips])
        else:
            generated = job()
            scorer.write(row, generated)
            motions = {c.clip_id: (m.poses, c.betas) for c, m in zip(clips, generated)}
        res = scorer.score(row)
        kw = score_motions(classifier, body, motions, segments, held_out_keywords(root))
        res["keyword_accuracy"], res["held_out_accuracy"], res["keyword"] = kw["accuracy"], kw["held_out_accuracy"], kw
        results[row] = res
    summary = {
        "name": name,
        "split": args.split,
        "base": str(args.base),
        "sparse": args.sparse,
        "hparams": {k: v for k, v in base.hparams.items() if k not in ("spec", "tokenizers")},
        "rows": results,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_text_atomic(out / "probe.json", json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    print(f"\n{name} ({args.split} split, {len(clips)} clips, {len(segments)} keyword segments)")
    print("| row | " + " | ".join(SHOWN) + " |\n|---|" + "---:|" * len(SHOWN))
    for row, res in results.items():
        print(f"| {row} | " + " | ".join(f"{res.get(k, float('nan')):.4g}" for k in SHOWN) + " |")
    gt = results["ground_truth"]
    for row in results:
        if row != "ground_truth":
            r = results[row]
            ratios = ", ".join(f"{k} {r[k] / gt[k]:.2f}x" for k in ("bc", "diversity", "lipsync_z") if gt.get(k))
            print(f"{row}: {ratios} of the ground truth")


if __name__ == "__main__":
    main()
