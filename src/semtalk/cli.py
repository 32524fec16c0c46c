"""The `semtalk` command: data tools here, training stages through LightningCLI (`semtalk fit|test|predict`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _make_smplx(args: argparse.Namespace) -> None:
    from semtalk.body.synthetic_model import write_synthetic_smplx
    from semtalk.data.weights import SMPLX_FILE

    path = write_synthetic_smplx(Path(args.out) / SMPLX_FILE, seed=args.seed)
    print(
        f"wrote a synthetic SMPL-X model to {path} (a stand-in: the real model is licensed from "
        "https://smpl-x.is.tue.mpg.de)"
    )


def _make_dataset(args: argparse.Namespace) -> None:
    from semtalk.body.model import BodyModel
    from semtalk.body.synthetic_model import write_synthetic_smplx
    from semtalk.data.weights import MEAN_VEL_FILE, SMPLX_FILE, compute_mean_velocity, save_npy_atomic, smplx_root_of
    from semtalk.synth.dataset import make_dataset

    out = Path(args.out)
    t0 = time.perf_counter()
    stats = make_dataset(
        out,
        num_speakers=args.speakers,
        clips_per_speaker=args.clips,
        clip_seconds=args.seconds,
        seed=args.seed,
        progress=not args.quiet,
    )
    smplx_root = smplx_root_of(out)
    if not (smplx_root / SMPLX_FILE).is_file():
        write_synthetic_smplx(smplx_root / SMPLX_FILE, seed=args.seed)
    mean_vel = out / "weights" / MEAN_VEL_FILE
    if not mean_vel.is_file():
        save_npy_atomic(mean_vel, compute_mean_velocity(out, BodyModel(smplx_root), progress=not args.quiet))
    print(json.dumps(stats, indent=2))
    print(f"embedded dataset ready in {out} ({time.perf_counter() - t0:.1f} s)")


def _describe_dataset(args: argparse.Namespace) -> None:
    from semtalk.data import Beat2Root, load_split

    root = Beat2Root(args.root)
    table = load_split(root.split_path)
    counts: dict[str, int] = {}
    for kind in table.values():
        counts[kind] = counts.get(kind, 0) + 1
    stats_file = root.root / "dataset_stats.json"
    print(f"dataset {root.root}: {len(table)} clips, " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if stats_file.is_file():
        print(stats_file.read_text())


def _cache(args: argparse.Namespace) -> None:
    from semtalk.data.cache import build_cache

    report = build_cache(
        args.root,
        args.out,
        args.extractors,
        splits=tuple(args.splits),
        speakers=args.speakers,
        device=args.device,
        progress=not args.quiet,
    )
    print(report)


def _evaluate(args: argparse.Namespace) -> None:
    from semtalk.body.face_mesh import FaceMeshBody
    from semtalk.body.model import BodyModel
    from semtalk.metrics.evaluate import evaluate_folder
    from semtalk.metrics.fgd_training import load_fgd_encoder_file

    body = FaceMeshBody(BodyModel(args.smplx)) if args.smplx else None
    fgd = load_fgd_encoder_file(args.fgd_encoder) if args.fgd_encoder else None
    result = evaluate_folder(
        args.pred_dir,
        args.gt_dir,
        audio_dir=args.audio_dir,
        profile=args.profile,
        body_model=body,
        fgd_encoder=fgd,
        mean_vel=args.mean_vel,
        output_dir=args.out or args.pred_dir,
    )
    md = Path(args.out or args.pred_dir) / "metrics.md"
    print(md.read_text() if md.is_file() else json.dumps(result, indent=2))


def _train_fgd(args: argparse.Namespace) -> None:
    from semtalk.metrics.fgd_training import load_fgd_encoder_file, read_fgd_metadata, train_fgd_encoder

    t0 = time.perf_counter()
    path = train_fgd_encoder(
        args.root,
        args.out,
        epochs=args.epochs,
        window=args.window,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        progress=not args.quiet,
        device=args.device,
    )
    training = read_fgd_metadata(path)["training"]
    print(
        f"wrote {path}: FGD encoder '{load_fgd_encoder_file(path).identity}' trained on {training['clips']} clips "
        f"({training['frames']} frames), reconstruction loss {training['losses'][0]:.4f} -> "
        f"{training['losses'][-1]:.4f}, {time.perf_counter() - t0:.1f} s"
    )


def _lightning(argv: Sequence[str]) -> None:
    try:
        from semtalk.lightning_cli import run_cli
    except ImportError as exc:  # the stages arrive with their issues
        raise SystemExit(f"semtalk {argv[0]}: the training stages are not available ({exc})") from exc
    run_cli(list(argv))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semtalk", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the readers repair")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("make-dataset", help="generate the embedded BEAT2-format dataset (speech, words, sem, motion)")
    p.add_argument("out", help="output folder (a BEAT2 root)")
    p.add_argument("--speakers", type=int, default=4, help="number of speakers (default 4)")
    p.add_argument("--clips", type=int, default=10, help="clips per speaker (default 10)")
    p.add_argument("--seconds", type=float, default=20.0, help="mean clip length in seconds (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_make_dataset)

    p = sub.add_parser("make-smplx", help="write a synthetic SMPL-X model file (a stand-in for the licensed one)")
    p.add_argument("out", help="folder that will hold smplx/SMPLX_NEUTRAL_2020.npz")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_make_smplx)

    p = sub.add_parser("describe-dataset", help="print the clips, splits and statistics of a BEAT2 root")
    p.add_argument("root")
    p.set_defaults(func=_describe_dataset)

    p = sub.add_parser("cache", help="extract and cache the features of a BEAT2 root (resumable, a no-op when current)")
    p.add_argument("root", help="BEAT2-format dataset root")
    p.add_argument("out", help="cache folder (one file per clip + manifest.json)")
    p.add_argument(
        "--extractors",
        default="configs/data/tiny.yaml",
        help="extractor configuration: configs/data/tiny.yaml (offline, random weights) or real.yaml",
    )
    p.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    p.add_argument("--speakers", type=int, nargs="+", default=None, help="speaker ids (default: all)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cache)

    p = sub.add_parser("evaluate", help="score a folder of SMPL-X npz files against ground truth (FGD, BC, DIV, ...)")
    p.add_argument("pred_dir", help="predicted SMPL-X npz files (BEAT2 keys), matched to ground truth by name")
    p.add_argument("gt_dir", help="ground-truth npz files (e.g. a BEAT2 smplxflame_30 folder)")
    p.add_argument("--audio-dir", help="wav files by clip name, for BC (e.g. wave16k/)")
    p.add_argument(
        "--profile",
        choices=("semtalk2024", "corrected"),
        default="semtalk2024",
        help="semtalk2024 reproduces the published protocol and its quirks; corrected fixes them",
    )
    p.add_argument(
        "--smplx", help="SMPL-X model root (holds smplx/SMPLX_NEUTRAL_2020.npz); needed for BC, DIV, MSE, LVD"
    )
    p.add_argument("--mean-vel", help="mean joint speeds, e.g. weights/mean_vel_smplxflame_30.npy (for BC)")
    p.add_argument("--fgd-encoder", help="FGD encoder weights (BEAT2's AESKConv_240_100.bin or one trained here)")
    p.add_argument("--out", help="where metrics.json and metrics.md go (default: PRED_DIR)")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("train-fgd", help="train the FGD feature encoder on the train split of a BEAT2-format root")
    p.add_argument("root", help="BEAT2-format dataset root (e.g. data/embedded); only its train clips are used")
    p.add_argument("--out", default="checkpoints/fgd.pt", help="weights file to write (default checkpoints/fgd.pt)")
    p.add_argument("--epochs", type=int, default=8, help="passes over the train clips (default 8)")
    p.add_argument("--window", type=int, default=64, help="frames per training window, a multiple of 16")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_train_fgd)

    from semtalk.generate_cli import add_generate_parser

    add_generate_parser(sub)

    for name in LIGHTNING_COMMANDS:
        sub.add_parser(name, help=f"LightningCLI {name} of a stage (semtalk {name} -c CONFIG ...)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    as_program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        _lightning(argv)
        return
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from semtalk.data.errors import DataError

    try:
        args.func(args)
    except (DataError, FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"semtalk {args.command}: {exc}") from exc
    if as_program and args.command == "generate":  # the process ends now
        from semtalk.generate_cli import freeze_before_exit

        freeze_before_exit()


if __name__ == "__main__":
    main()
