"""Feature-cache throughput: seconds of audio per second of each extractor (hubert, beat, words, clip_text,
emotion, semantic, motion), with the tiny encoders (`--size demo`, configs/data/tiny.yaml) or random encoders of
the pretrained sizes (`--size paper`: HuBERT-large, CLIP ViT-B/32, emotion2vec+ large).

    python bench/cache.py --size demo --device cpu
    python bench/cache.py --size paper --device cuda --seconds 60

A small BEAT2-format dataset is generated with the embedded synthesiser (espeak-ng speech, word and semantic
annotations, SMPL-X motion; the synthetic body model as `semtalk make-smplx` writes it) into a temporary folder;
its clips are read with the cache's reader (`Beat2Root.load_clip`, one read per clip) and each extractor is built
through the cache's registry (`plan_extractors`) and timed on whole clips, as `semtalk cache` runs them.
`--dataset DIR` times the first training clip of an existing BEAT2-format folder instead (real BEAT2, or
`data/embedded`); where the folder has no SMPL-X model, the synthetic one is written to a temporary folder.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PeakMemory, base_parser, machine, measure, report, setup  # noqa: E402
from encoders import extractor_config  # noqa: E402

COLUMNS = ("extractor", "size", "encoder", "params_M", "build_s", "clip_audio_s", "seconds_per_clip",
           "audio_s_per_s", "peak_mem_MiB")  # fmt: skip
ORDER: tuple[str, ...] = ("motion", "hubert", "beat", "words", "semantic", "clip_text", "emotion")


def parameter_count(extractor) -> float | None:
    """Millions of parameters of an extractor's network (None for those without one)."""
    net = getattr(extractor, "net", None)
    if isinstance(net, torch.nn.Module):
        return sum(p.numel() for p in net.parameters()) / 1e6
    return None


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = base_parser(__doc__, precisions=("32",))
    p.set_defaults(repeats=2)
    p.add_argument("--seconds", type=float, default=20.0, help="mean length of the generated clips")
    p.add_argument("--dataset", type=Path, default=None, help="an existing BEAT2-format folder to read a clip from")
    p.add_argument("--extractors", nargs="+", choices=ORDER, default=list(ORDER), help="extractors to time")
    args = p.parse_args(argv)
    device = setup(args)
    from semtalk.body.synthetic_model import write_synthetic_smplx
    from semtalk.data.beat2 import load_split
    from semtalk.data.root import Beat2Root
    from semtalk.data.weights import smplx_root_of
    from semtalk.features.base import ClipInput, common_frames
    from semtalk.features.registry import plan_extractors, resolve_vocab, with_windows

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="semtalk-bench-") as tmp:
        if args.dataset is None:
            from semtalk.synth.dataset import make_dataset

            data = Path(tmp) / "embedded"
            make_dataset(data, num_speakers=1, clips_per_speaker=3, clip_seconds=max(args.seconds, 3.0),
                         seed=args.seed, progress=False)  # fmt: skip
        else:
            data = args.dataset
        body_root = smplx_root_of(data)
        if not (body_root / "smplx" / "SMPLX_NEUTRAL_2020.npz").is_file():
            body_root = Path(tmp) / "smplx_models"
            write_synthetic_smplx(body_root / "smplx" / "SMPLX_NEUTRAL_2020.npz", seed=0)
        root = Beat2Root(data)
        cid = sorted(c for c, split in load_split(root.split_path).items() if split == "train")[0]
        t0 = time.perf_counter()
        clip = root.load_clip(cid)
        load_s = time.perf_counter() - t0
        item = ClipInput(clip, common_frames(clip))
        audio_s = len(clip.audio) / clip.sample_rate
        config = with_windows(extractor_config(args.size), 64, 20, 4)
        config = {k: v for k, v in config.items() if k in args.extractors or k == "motion"}
        config["motion"] = {**(config.get("motion") or {}), "body_model_root": str(body_root)}
        vocab = resolve_vocab(root, "textgrids") if "words" in config else None
        plans = plan_extractors(config, root, vocab=vocab)
        rows.append({"extractor": "read clip", "size": args.size, "encoder": "-", "clip_audio_s": audio_s,
                     "seconds_per_clip": load_s, "audio_s_per_s": audio_s / load_s})  # fmt: skip
        for name in ORDER:
            if name not in plans or name not in args.extractors:
                continue
            t0 = time.perf_counter()
            extractor = plans[name].build(str(device))
            build_s = time.perf_counter() - t0
            with PeakMemory(device) as mem:
                timing = measure(lambda ex=extractor: ex(item), device, args.warmup, args.repeats)
            kwargs = dict(config.get(name) or {})
            kind = "tiny random" if "tiny" in kwargs else ("SMPL-X (synthetic)" if name == "motion" else "-")
            if args.size == "paper" and "tiny" in kwargs:
                kind = "random, pretrained size"
            rows.append({
                "extractor": name, "size": args.size, "encoder": kind, "params_M": parameter_count(extractor),
                "build_s": build_s, "clip_audio_s": audio_s, "seconds_per_clip": timing.median,
                "audio_s_per_s": audio_s / timing.median, "peak_mem_MiB": mem.mib, "memory_kind": mem.kind,
                "repeats": args.repeats,
            })  # fmt: skip
            print(f"  {name}: {timing.median:.3f} s per {audio_s:.1f} s clip", file=sys.stderr, flush=True)
            del extractor
            gc.collect()
        timed = [r for r in rows if r["extractor"] != "read clip"]
        total = sum(r["seconds_per_clip"] for r in rows)
        rows.append({"extractor": "all (one clip)", "size": args.size, "encoder": "-", "clip_audio_s": audio_s,
                     "seconds_per_clip": total, "audio_s_per_s": audio_s / total,
                     "build_s": sum(r.get("build_s") or 0.0 for r in timed)})  # fmt: skip
    notes = [
        f"one {audio_s:.1f} s clip ({cid} of {data.name if args.dataset else 'the embedded synthesiser'}); "
        f"median of {args.repeats} after {args.warmup} warm-up; "
        "audio_s_per_s = seconds of audio per wall second (the motion, words and semantic extractors read the "
        "clip's motion and annotations of the same length); build_s (loading the encoder) is not in the rate.",
    ]
    report("cache", rows, COLUMNS, machine(device), args.out, notes)
    return rows


if __name__ == "__main__":
    main()
