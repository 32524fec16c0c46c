"""Generation speed: real-time factor end to end (features -> base -> sparse -> decode -> npz) with the encoders'
share reported separately, and the streaming API's per-chunk latency.

    python bench/generation.py --size demo --device cpu --seconds 30
    python bench/generation.py --size paper --device cuda --seconds 60 --chunk-seconds 0.1

Stages at the chosen size with random weights (tokenizers, global-motion net, base and sparse checkpoints written
to a temporary folder and loaded back, as `semtalk generate` does), the front end of the size (`demo`: the tiny
encoders of configs/data/tiny.yaml; `paper`: HuBERT-large, CLIP ViT-B/32 and emotion2vec+ large architectures
with random weights), speech from the embedded synthesiser with its word timings, or from `--audio` (a wav) with
its `--textgrid` (repeated to `--seconds`).

Rows: `offline` runs the engine of `semtalk.inference.generate_audio` (the offline block plan, the whole speech
in one push) and writes the SMPL-X npz;
`streaming` pushes the audio in chunks of `--chunk-seconds` through `StreamingGenerator` (the low-latency plan)
and reports the wall time of each push. `x_realtime` is audio seconds per wall second (>= 1: faster than real
time); `x_realtime_gen` leaves out the pretrained-encoder time (HuBERT, emotion2vec, CLIP).
"""

from __future__ import annotations

import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PeakMemory, Timing, base_parser, machine, quiet_logs, report, setup  # noqa: E402
from encoders import extractor_config  # noqa: E402
from stage_models import FEATURE_DIMS, SEED_FRAMES, make_spec, stage_config, upstream_stage1, write_base  # noqa: E402

COLUMNS = ("mode", "size", "precision", "audio_s", "wall_s", "x_realtime", "encoders_s", "generators_s", "decode_s",
           "npz_s", "x_realtime_gen", "ms_per_window", "kops_per_window", "chunk_ms_mean", "chunk_ms_p95",
           "peak_mem_MiB")  # fmt: skip


class Timed:
    """Wraps a callable and adds up its wall time (device synchronised)."""

    def __init__(self, fn, device: torch.device) -> None:
        self.fn, self.device, self.seconds, self.calls = fn, device, 0.0, 0

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self.fn(*args, **kwargs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return out


def speech(seconds: float, seed: int):
    """Synthetic speech of about `seconds` (embedded synthesiser: espeak-ng) -> 16 kHz audio, word intervals."""
    from semtalk.data.beat2 import WordInterval
    from semtalk.synth.clip import make_clip
    from semtalk.synth.style import speaker_style

    audio, words = np.zeros(0, np.float32), []
    k = 1
    while len(audio) < seconds * 16000:  # clips vary +-20 % around the asked length: add until long enough
        clip = make_clip(speaker_style(2, seed), k, seed, min(max(seconds, 4.0), 60.0))
        offset = len(audio) / 16000
        words += [WordInterval(w.start + offset, w.end + offset, w.label) for w in clip.words]
        audio = np.concatenate((audio, clip.audio))
        k += 1
    n = int(seconds * 16000) // 1600 * 1600
    return audio[:n], [w for w in words if w.start < n / 16000]


def speech_from_files(audio_path: Path, textgrid: Path | None, seconds: float):
    """Speech read from a wav (and its TextGrid's words), repeated back to back to `seconds` -> audio, words."""
    from semtalk.data.beat2 import WordInterval, load_audio, load_textgrid

    clip = load_audio(audio_path)
    clip_words = load_textgrid(textgrid, duration=len(clip) / 16000) if textgrid else []
    audio, words = np.zeros(0, np.float32), []
    while len(audio) < seconds * 16000:
        offset = len(audio) / 16000
        words += [WordInterval(w.start + offset, w.end + offset, w.word) for w in clip_words]
        audio = np.concatenate((audio, clip))
    n = int(seconds * 16000) // 1600 * 1600
    return audio[:n], [w for w in words if w.start < n / 16000]


def vocabulary(words, size: int) -> list[str]:
    """A vocabulary of exactly `size` entries that knows the spoken words (the trained one's size)."""
    from semtalk.features.vocab import SPECIALS

    known = list(dict.fromkeys(["", *sorted({w.word for w in words})]))
    table = [*SPECIALS, *known][:size]
    table += [f"word{i}" for i in range(size - len(table))]
    return table


def build_pipeline(size: str, folder: Path, device: torch.device, words):
    """Random-weight stages at `size`, written and loaded back, with the front end of that size."""
    from semtalk.features.registry import EXTRACTORS
    from semtalk.inference import FrontendSpec, Pipeline
    from stages.sparse import SparseStage

    spec = make_spec(size)
    stage1 = upstream_stage1(folder, size)
    base_path = write_base(folder, size, stage1, spec)
    sparse = SparseStage(base_path, spec=spec, **stage_config("sparse", size)["model"])
    sparse.eval().to(device)
    sparse.freeze()
    config = extractor_config(size)
    dims = {"beat": 3, "vocab_size": FEATURE_DIMS[size]["vocab_size"]}
    for name in ("hubert", "clip_text", "emotion"):
        dims.update(EXTRACTORS[name].output_dims(**config[name]))
    expected = {k: FEATURE_DIMS[size][k] for k in ("hubert", "clip_text", "emotion")}
    if any(dims[k] != v for k, v in expected.items()):
        raise RuntimeError(f"extractor widths {dims} differ from the stage widths {expected}")
    frontend = FrontendSpec(config, vocabulary(words, dims["vocab_size"]), dims, {}, 2, "benchmark")
    return Pipeline(base=sparse.base, sparse=sparse, frontend=frontend, beta=float(sparse.hparams.beta),
                    device=str(device), num_speakers=int(sparse.base.generator.num_speakers))  # fmt: skip


def run_stream(
    pipeline, frontend, audio, words, device, precision: str, plan, push_samples: int, cuda_graphs: bool = False
) -> dict[str, Any]:
    """Push the speech through `StreamingGenerator` in pieces of `push_samples` (the whole speech at once is what
    `semtalk.inference.generate_audio` does with the offline plan); seconds by part and per push."""
    from semtalk.generate_cli import precision_context
    from semtalk.streaming import StreamingGenerator

    feats = Timed(frontend.audio_features, device)
    sents = Timed(frontend.sentence_features, device)
    frontend.audio_features, frontend.sentence_features = feats, sents
    try:
        gen = StreamingGenerator(pipeline, words=words, frontend=frontend, plan=plan, cuda_graphs=cuda_graphs)
        pushes: list[float] = []
        chunks = []
        t0 = time.perf_counter()
        with precision_context(precision, device, cuda_graphs):
            for i in range(0, len(audio), push_samples):
                c0 = time.perf_counter()
                chunks.append(gen.push(audio[i : i + push_samples]))
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                pushes.append(time.perf_counter() - c0)
            chunks.append(gen.finish())
        wall = time.perf_counter() - t0
    finally:
        del frontend.audio_features, frontend.sentence_features
    poses = np.concatenate([c.poses for c in chunks])
    if not np.isfinite(poses).all() or len(poses) != len(audio) * 30 // 16000:
        raise RuntimeError(f"generation gave {len(poses)} frames / non-finite poses")
    t = gen.engine.timings
    # the CLIP sentence features are computed inside the windows: counted with the encoders, not the generators
    return {"wall": wall, "encoders": feats.seconds + sents.seconds, "windows": t["windows"] - sents.seconds,
            "decode": t["decode"], "pushes": pushes, "chunks": chunks, "window_calls": gen.engine.k,
            "delay_s": gen.stats.summary().get("mean_delay_seconds")}  # fmt: skip


def offline_run(
    pipeline, frontend, audio, words, device, precision: str, out_dir: Path, cuda_graphs: bool = False
) -> dict[str, Any]:
    """The offline generation of the whole speech (`generate_audio`'s engine and plan) plus the npz export."""
    from semtalk.export import save_smplx_npz
    from semtalk.streaming import offline_plan

    plan = offline_plan(pipeline.frontend)
    r = run_stream(pipeline, frontend, audio, words, device, precision, plan, len(audio), cuda_graphs)
    t0 = time.perf_counter()
    cat = {k: np.concatenate([getattr(c, k) for c in r["chunks"]]) for k in ("poses", "trans", "expressions")}
    save_smplx_npz(out_dir / "motion.npz", cat["poses"], cat["trans"], cat["expressions"], np.zeros(300))
    r["npz"] = time.perf_counter() - t0
    r["wall"] += r["npz"]
    return r


def window_ops(pipeline, frontend, audio, words, device, precision: str, out_dir: Path) -> float:
    """ATen operator calls (nested calls included, counted by the profiler) per generation window of an offline
    run of `audio`: each costs host time on a GPU, so a window of many small operations is bound by the host."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from semtalk.streaming import MotionEngine

    original = MotionEngine._window

    def window(self, *args):
        with record_function("bench::window"):
            return original(self, *args)

    def aten_calls(event) -> int:
        return sum(c.name.startswith("aten::") + aten_calls(c) for c in event.cpu_children)

    MotionEngine._window = window
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            offline_run(pipeline, frontend, audio, words, device, precision, out_dir)
    finally:
        MotionEngine._window = original
    windows = [e for e in prof.events() if e.name == "bench::window"]
    return sum(aten_calls(w) for w in windows) / max(len(windows), 1)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = base_parser(__doc__, precisions=("32",))
    p.set_defaults(repeats=1)
    p.add_argument("--seconds", type=float, default=30.0, help="length of the speech")
    p.add_argument("--chunk-seconds", type=float, default=0.1, help="audio per streaming push")
    p.add_argument("--plan", choices=("low-latency", "offline"), default="low-latency",
                   help="the streaming run's feature block plan")  # fmt: skip
    p.add_argument("--no-streaming", action="store_true", help="offline rows only")
    p.add_argument("--cuda-graphs", action="store_true", help="on CUDA, replay the windows as CUDA graphs")
    p.add_argument(
        "--eager-too",
        action="store_true",
        help="with --cuda-graphs, add an offline run without them and the largest pose difference",
    )
    p.add_argument("--audio", type=Path, default=None, help="speech from this wav instead of the synthesiser")
    p.add_argument("--textgrid", type=Path, default=None, help="the words of --audio (Praat TextGrid)")
    p.add_argument("--ops", action="store_true", help="count the ATen operator calls of a window (kops_per_window)")
    args = p.parse_args(argv)
    device = setup(args)
    from semtalk.inference import Frontend
    from semtalk.streaming import LOW_LATENCY_PLAN, offline_plan

    if args.audio is not None:
        audio, words = speech_from_files(args.audio, args.textgrid, args.seconds)
    else:
        audio, words = speech(args.seconds, args.seed)
    seconds = len(audio) / 16000
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="semtalk-bench-") as tmp, quiet_logs():
        pipeline = build_pipeline(args.size, Path(tmp), device, words)
        t0 = time.perf_counter()
        frontend = Frontend(pipeline.frontend, pipeline.needs("full"), str(device))
        frontend.build()
        load_s = time.perf_counter() - t0
        warm_audio = audio[: min(len(audio), 16000 * 3)]
        for _ in range(max(0, args.warmup)):
            offline_run(pipeline, frontend, warm_audio, words, device, args.precision[0], Path(tmp), args.cuda_graphs)
        for precision in args.precision:
            runs = []
            with PeakMemory(device) as mem:
                for _ in range(max(1, args.repeats)):
                    runs.append(
                        offline_run(pipeline, frontend, audio, words, device, precision, Path(tmp), args.cuda_graphs)
                    )
            r = min(runs, key=lambda x: x["wall"])
            ops = window_ops(pipeline, frontend, warm_audio, words, device, precision, Path(tmp)) if args.ops else None
            gen_s = r["wall"] - r["encoders"]
            graphs = device.type == "cuda" and args.cuda_graphs
            rows.append({
                "mode": "offline" + (" (CUDA graphs)" if graphs else ""), "size": args.size, "precision": precision,
                "audio_s": seconds,
                "wall_s": r["wall"], "x_realtime": seconds / r["wall"], "encoders_s": r["encoders"],
                "generators_s": r["windows"], "decode_s": r["decode"], "npz_s": r["npz"],
                "x_realtime_gen": seconds / gen_s, "ms_per_window": 1e3 * r["windows"] / max(r["window_calls"], 1),
                "kops_per_window": ops / 1e3 if ops is not None else None,
                "peak_mem_MiB": mem.mib, "memory_kind": mem.kind, "encoder_load_s": load_s,
                "windows": r["window_calls"], "repeats": len(runs),
            })  # fmt: skip
            if graphs and args.eager_too:
                e = offline_run(pipeline, frontend, audio, words, device, precision, Path(tmp), False)
                diff = max(float(np.abs(a.poses - b.poses).max()) for a, b in zip(r["chunks"], e["chunks"]))
                rows[-1]["max_pose_diff_to_eager"] = diff
                rows.append({
                    "mode": "offline (eager)", "size": args.size, "precision": precision, "audio_s": seconds,
                    "wall_s": e["wall"], "x_realtime": seconds / e["wall"], "encoders_s": e["encoders"],
                    "generators_s": e["windows"], "decode_s": e["decode"], "npz_s": e["npz"],
                    "x_realtime_gen": seconds / (e["wall"] - e["encoders"]),
                    "ms_per_window": 1e3 * e["windows"] / max(e["window_calls"], 1), "windows": e["window_calls"],
                })  # fmt: skip
                print(f"  {precision}: CUDA graphs vs eager, largest pose difference {diff:.2e} rad", file=sys.stderr)
            if args.no_streaming:
                continue
            plan = LOW_LATENCY_PLAN if args.plan == "low-latency" else offline_plan(pipeline.frontend)
            with PeakMemory(device) as mem:
                step = max(1, int(round(args.chunk_seconds * 16000)))
                s = run_stream(pipeline, frontend, audio, words, device, precision, plan, step, args.cuda_graphs)
            pushes = Timing(s["pushes"])
            gen_s = s["wall"] - s["encoders"]
            rows.append({
                "mode": f"streaming {args.chunk_seconds:g} s", "size": args.size, "precision": precision,
                "audio_s": seconds, "wall_s": s["wall"], "x_realtime": seconds / s["wall"],
                "encoders_s": s["encoders"], "generators_s": s["windows"], "decode_s": s["decode"],
                "x_realtime_gen": seconds / gen_s, "ms_per_window": 1e3 * s["windows"] / max(s["window_calls"], 1),
                "chunk_ms_mean": 1e3 * statistics.fmean(pushes.seconds), "chunk_ms_p95": 1e3 * pushes.quantile(0.95),
                "chunk_ms_max": 1e3 * max(pushes.seconds), "mean_delay_s": s["delay_s"], "peak_mem_MiB": mem.mib,
                "memory_kind": mem.kind, "windows": s["window_calls"], "plan": str(plan),
                "offline_over_streaming": rows[-1]["wall_s"] / s["wall"],
            })  # fmt: skip
        del pipeline, frontend
        gc.collect()
    kind = "random weights at the pretrained sizes" if args.size == "paper" else "tiny random encoders"
    source = f"speech from {args.audio.name}" if args.audio else "synthetic speech"
    notes = [
        f"{seconds:.1f} s of {source}; encoders = HuBERT + emotion2vec + CLIP text ({kind}; built once in "
        f"{load_s:.1f} s, not counted); generators = base + sparse windows (with each window's seed decode); "
        "decode = tokenizer decoders + global-motion net of the emitted frames; x_realtime_gen = audio seconds / "
        "(wall - encoders).",
        f"seed frames {SEED_FRAMES}, windows of 64 frames advancing by 60.",
    ]
    report("generation", rows, COLUMNS, machine(device), args.out, notes)
    return rows


if __name__ == "__main__":
    main()
