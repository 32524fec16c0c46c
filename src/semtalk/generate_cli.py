"""`semtalk generate`: motion from any speech file, with exports (SMPL-X npz, ψ JSON, BVH, video) and emphasis.

    semtalk generate speech.wav [more.wav ...] [--words speech.TextGrid | --transcript "..." | --asr MODEL]
        [--checkpoints checkpoints] [--cache DIR] [--speaker 2] [--beta 0.5] [--mode full|rhythm | --no-semantic]
        [--emphasis WORD=GAIN ...] [--emphasis-range START-END=GAIN ...] [--lock-root]
        [--video auto|mp4|gif|none] [--no-bvh] [--smplx DIR] [--device auto|cpu|cuda] [--out outputs/generate]

The stages are loaded by module name (`stages.inference`), so the library does not import them. Also runnable
as `python -m semtalk.generate_cli ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def add_generate_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `generate` sub-command to an argparse sub-parser set (`parser.add_subparsers()`)."""
    p = subparsers.add_parser(
        "generate",
        help="generate motion from speech files: SMPL-X npz, psi JSON, BVH and a video per input",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("audio", nargs="+", help="speech files (any rate and channel count; wav, flac, ogg, ...)")
    words = p.add_mutually_exclusive_group()
    words.add_argument("--words", action="append", metavar="TEXTGRID",
                       help="word timings (Praat TextGrid, first tier), once per input in order; default: "
                            "<audio stem>.TextGrid next to the audio when it exists")  # fmt: skip
    words.add_argument(
        "--transcript",
        metavar="TEXT",
        help="the words spoken (one input): spread over the voiced audio, timings approximate",
    )
    words.add_argument("--asr", metavar="MODEL",
                       help="word timings from a local speech-recognition model (transformers, e.g. a wav2vec 2.0 "
                            "CTC or Whisper folder or a hub id already in the local cache)")  # fmt: skip
    p.add_argument("--checkpoints", default="checkpoints", help="folder with base.ckpt and sparse.ckpt")
    p.add_argument("--cache", default=None,
                   help="the feature cache the checkpoints were trained on (extractor settings, vocabulary); "
                        "default: <checkpoints>/frontend.json, else data/cache/embedded")  # fmt: skip
    p.add_argument("--speaker", type=int, default=None, help="BEAT2 speaker id (default: the training speaker)")
    p.add_argument("--beta", type=float, default=None, help="psi threshold of the fusion (default: the checkpoint's)")
    p.add_argument("--mode", choices=("full", "rhythm"), default="full",
                   help="full: base + semantic fusion; rhythm: the base generator only")  # fmt: skip
    p.add_argument("--no-semantic", action="store_true", help="switch the semantic branch off (= --mode rhythm)")
    p.add_argument("--emphasis", action="append", default=[], metavar="WORD=GAIN",
                   help="scale psi on the frames of a word (2: emphasise, 0: suppress); repeatable")  # fmt: skip
    p.add_argument("--emphasis-range", action="append", default=[], metavar="START-END=GAIN",
                   help="scale psi between two times in seconds, e.g. 1.5-3=2; repeatable")  # fmt: skip
    p.add_argument("--lock-root", action="store_true", help="keep the character in place (x/z translation 0)")
    p.add_argument("--video", choices=("auto", "mp4", "gif", "none"), default="auto",
                   help="auto: MP4 with sound when ffmpeg is installed, else a GIF plus a wav")  # fmt: skip
    p.add_argument("--no-bvh", action="store_true", help="do not write the BVH skeleton")
    p.add_argument("--smplx", default=None,
                   help="SMPL-X model root (holds smplx/SMPLX_NEUTRAL_2020.npz) for the BVH offsets and the video; "
                        "default: the training body model, else the synthetic stand-in")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="on a GPU, replay each generation window as a CUDA graph (same result, less launch overhead)",
    )
    p.add_argument("--precision", choices=("32", "bf16"), default="32",
                   help="bf16: bfloat16 autocast for the encoders and generators (faster on CPUs with bf16 "
                        "support, see the README's benchmarks; codes may differ from float32's where logits are "
                        "close)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice); 1 is fastest on a machine busy with other work, "
                        "see the README's benchmarks")  # fmt: skip
    p.add_argument("--out", default="outputs/generate", help="output folder")
    p.add_argument("--quiet", action="store_true", help="print only the written files")
    p.set_defaults(func=run_generate)
    return p


def _note(args: argparse.Namespace, stem: str, text: str) -> None:
    if not args.quiet:
        print(f"[{stem}] note: {text}", file=sys.stderr)


def _word_track(args, index: int, audio, frontend_vocab, notices: list[str], mode: str, device: str):
    """The WordTrack of input `index` and what kind of timings it holds."""
    from semtalk.data.beat2 import load_textgrid
    from semtalk.inference import WordTrack, asr_words, spread_transcript, voiced_regions

    path = Path(args.audio[index])
    if args.words:
        tg = Path(args.words[index])
        return WordTrack(load_textgrid(tg, duration=audio.seconds), frontend_vocab), f"TextGrid {tg}"
    if args.transcript:
        regions, duration = voiced_regions(audio.blocks())
        try:
            words = spread_transcript(args.transcript, regions, duration)
        except ValueError as exc:  # no words, or no voiced audio to lay them over
            raise ValueError(f"{path}: {exc}") from exc
        notices.append("word timings are approximate: the transcript was spread over the voiced audio "
                       f"({len(regions)} voiced stretches); give a TextGrid for exact timings")  # fmt: skip
        return WordTrack(words, frontend_vocab), "transcript"
    if args.asr:
        import numpy as np

        speech = np.concatenate(list(audio.blocks()))
        words = asr_words(speech, args.asr, device)
        notices.append(f"word timings from the speech recogniser {args.asr} (training used forced alignments)")
        return WordTrack(words, frontend_vocab), f"ASR {args.asr}"
    beside = path.with_suffix(".TextGrid")
    if beside.is_file():
        notices.append(f"using the word timings in {beside}")
        return WordTrack(load_textgrid(beside, duration=audio.seconds), frontend_vocab), f"TextGrid {beside}"
    if mode == "full":
        notices.append("no words given (--words, --transcript or --asr): every frame is an unknown word, so the "
                       "semantic branch sees audio only; use --mode rhythm for the base generator alone")  # fmt: skip
    return WordTrack((), frontend_vocab), "none"


def _body_model(args, pipeline, notices: list[str], keep: list):
    """The SMPL-X body for the BVH offsets and the video, or the synthetic stand-in with a note."""
    from semtalk.body.model import BodyModel, model_file

    candidates = []
    if args.smplx:
        if not model_file(args.smplx).is_file():
            raise FileNotFoundError(f"{model_file(args.smplx)}: SMPL-X model not found (--smplx)")
        candidates.append(Path(args.smplx))
    spec = pipeline.base.hparams.get("spec") or {}
    if spec.get("smplx_root"):
        candidates.append(Path(spec["smplx_root"]))
    motion = (pipeline.frontend.config.get("motion") or {}).get("body_model_root")
    if motion:
        candidates.append(Path(motion))
    if pipeline.root:  # paths recorded in the checkpoints are relative to the project that trained them
        candidates += [Path(pipeline.root) / c for c in candidates if not c.is_absolute()]
    for c in candidates:
        if model_file(c).is_file():
            return BodyModel(c)
    from semtalk.body.synthetic_model import write_synthetic_smplx
    from semtalk.data.weights import SMPLX_FILE

    tmp = tempfile.TemporaryDirectory(prefix="semtalk-smplx-")
    keep.append(tmp)
    write_synthetic_smplx(Path(tmp.name) / SMPLX_FILE, seed=0)
    notices.append("no SMPL-X model found (--smplx): the BVH offsets and the video use the synthetic stand-in body")
    return BodyModel(tmp.name)


@contextlib.contextmanager
def startup_gc():
    """Start-up speed: no cyclic garbage collection while the libraries are imported and the checkpoints loaded.
    Each full collection walks every object those imports create (millions); on a busy 2-core machine about ten
    of them took 2.6 s of a 6 s clip's run. One collection at the end instead, then the collector's previous
    state is restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        if was_enabled:
            gc.enable()


def freeze_before_exit() -> None:
    """For a process that ends right after the command: move the surviving objects out of the collector's reach
    (`gc.freeze`), so the interpreter's last collections at exit do not walk them (about 2 s after `generate`
    on a busy 2-core machine). Finalizers and `atexit` handlers still run."""
    gc.freeze()


def precision_context(precision: str, device, cuda_graphs: bool = False):
    """bfloat16 autocast on `device` for `"bf16"`, nothing for `"32"`. Captured CUDA graphs must not reuse
    autocast's cache of cast weights (PyTorch's rule for graphs under autocast), so it is off with `cuda_graphs`."""
    import contextlib

    import torch

    if precision == "bf16":
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, cache_enabled=not cuda_graphs)
    return contextlib.nullcontext()


def run_generate(args: argparse.Namespace) -> list[dict]:
    """The `generate` command. Returns one record per input (paths written, frames, timings)."""
    with startup_gc():
        pipeline, frontend, audios, emphasis, mode = _start(args)
    return _generate_all(args, pipeline, frontend, audios, emphasis, mode)


def _start(args: argparse.Namespace):
    """Check the arguments, read the inputs' headers, load the stages and build the encoders."""
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)

    from semtalk.inference import AudioFile, Emphasis, Frontend

    if args.words and len(args.words) != len(args.audio):
        raise ValueError(f"--words given {len(args.words)} times for {len(args.audio)} inputs: give one per input")
    if args.transcript and len(args.audio) != 1:
        raise ValueError("--transcript describes one input: run one file at a time")
    mode = "rhythm" if args.no_semantic else args.mode
    emphasis = Emphasis.parse(args.emphasis, args.emphasis_range)
    audios = [AudioFile(a) for a in args.audio]  # fail early on a missing or unreadable file
    stems = [a.path.stem for a in audios]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise ValueError(f"inputs share the file names {clash}: their outputs would overwrite each other in --out")
    Path(args.out).mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    loader = importlib.import_module("stages.inference")
    pipeline = loader.load_pipeline(args.checkpoints, mode=mode, cache=args.cache, device=args.device)
    mode = pipeline.resolve_mode(mode)
    frontend = Frontend(pipeline.frontend, pipeline.needs(mode), pipeline.device)
    frontend.build()
    load_seconds = time.perf_counter() - t0
    if not args.quiet:
        print(f"loaded {args.checkpoints} ({mode} mode) and the feature extractors in {load_seconds:.1f} s",
              file=sys.stderr)  # fmt: skip
    if emphasis and mode == "rhythm":
        pipeline.notices.append("emphasis has no effect in rhythm mode (no semantic branch)")
    return pipeline, frontend, audios, emphasis, mode


def _generate_all(args, pipeline, frontend, audios, emphasis, mode: str) -> list[dict]:
    import numpy as np

    from semtalk.export import (
        body_joints_fn,
        ffmpeg_binary,
        lock_root,
        render_video,
        save_psi_json,
        save_smplx_npz,
        write_bvh,
    )
    from semtalk.inference import SILENCE_DB, VoicedLevels, generate_audio

    out = Path(args.out)
    records = []
    keep: list = []
    body = None
    try:
        for i, audio in enumerate(audios):
            stem = audio.path.stem
            notices = list(pipeline.notices)
            track, words_kind = _word_track(args, i, audio, frontend.vocab, notices, mode, pipeline.device)
            unknown = track.unknown_words()
            if unknown:
                shown = ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else "")
                notices.append(f"{len(unknown)} distinct words are not in the training vocabulary (UNK): {shown}")
            missing = emphasis.unmatched(track) if emphasis.words else []
            if missing:
                notices.append(f"--emphasis words not spoken in {stem}: {', '.join(missing)}")
            if audio.sample_rate != 16000 or audio.channels != 1:
                notices.append(f"converted {audio.sample_rate} Hz x {audio.channels} channels to 16 kHz mono")
            video = args.video
            if video == "auto":
                video = "mp4" if ffmpeg_binary() else "gif"
            wav_copy = None
            if video == "gif":  # a GIF has no sound track: keep the 16 kHz speech next to it
                import soundfile as sf

                wav_copy = sf.SoundFile(str(out / f"{stem}.wav"), "w", samplerate=16000, channels=1,
                                        subtype="PCM_16")  # fmt: skip
            levels = VoicedLevels()

            def on_block(block, levels=levels, wav_copy=wav_copy):
                levels.push(block)
                if wav_copy is not None:
                    wav_copy.write(block)

            try:
                with precision_context(args.precision, pipeline.device, args.cuda_graphs):
                    result = generate_audio(pipeline, audio.blocks(), track, speaker=args.speaker, mode=mode,
                                            beta=args.beta, emphasis=emphasis, frontend=frontend,
                                            on_block=on_block, cuda_graphs=args.cuda_graphs)  # fmt: skip
            finally:
                if wav_copy is not None:
                    wav_copy.close()
            voiced = sum(b - a for a, b in levels.regions())
            if not voiced:  # a transcript was refused earlier: it has nowhere to go
                notices.append(f"the audio has no voiced part (every 20 ms frame below {SILENCE_DB:g} dBFS, e.g. "
                               "digital silence): the motion is generated from silence")  # fmt: skip
            notices += [n for n in result.notices if n not in notices]
            trans = lock_root(result.trans) if args.lock_root else result.trans
            betas = pipeline.frontend.shape_of(result.speaker)
            written = {"npz": save_smplx_npz(out / f"{stem}.npz", result.poses, trans, result.expressions, betas)}
            if (not args.no_bvh or video != "none") and body is None:
                body = _body_model(args, pipeline, notices, keep)
            if not args.no_bvh:
                import torch

                rest = body.shaped_rest_joints(torch.from_numpy(betas)).cpu().numpy()
                mean = body.pose_mean.cpu().numpy().reshape(55, 3)
                written["bvh"] = write_bvh(out / f"{stem}.bvh", result.poses, trans, rest, mean)
            if video != "none":
                rendered = render_video(out / stem, body_joints_fn(body, result.poses, trans, betas), result.frames,
                                        psi=result.psi, gate=result.gate, audio_path=audio.path,
                                        prefer=video)  # fmt: skip
                notices += rendered.notes
                written[rendered.kind] = rendered.path
                if wav_copy is not None:
                    written["wav"] = out / f"{stem}.wav"
            elif wav_copy is not None:
                (out / f"{stem}.wav").unlink(missing_ok=True)
            extra = {"speaker": result.speaker, "words_from": words_kind, "audio": str(audio.path),
                     "seconds_audio": round(audio.seconds, 3), "seconds_voiced": round(voiced, 3),
                     "seconds_generation": round(result.seconds, 3),
                     "lock_root": bool(args.lock_root), "precision": args.precision,
                     "emphasis": {"words": emphasis.words, "ranges": [list(r) for r in emphasis.ranges]}}  # fmt: skip
            written["psi"] = save_psi_json(out / f"{stem}_psi.json", psi=result.psi, gate=result.gate,
                                           gain=result.gain, beta=result.beta if mode == "full" else None, mode=mode,
                                           words=track.summary(emphasis.words), notices=notices,
                                           extra=extra)  # fmt: skip
            for n in notices:
                _note(args, stem, n)
            semantic = "" if result.gate is None else f", semantic frames {np.mean(result.gate):.1%}"
            print(f"{audio.path}: {result.frames} frames ({result.frames / 30:.1f} s) in {result.seconds:.1f} s"
                  f"{semantic} -> " + ", ".join(str(p) for p in written.values()))  # fmt: skip
            records.append({"input": str(audio.path), "frames": result.frames, "seconds": result.seconds,
                            "files": {k: str(v) for k, v in written.items()}, "notices": notices})  # fmt: skip
    finally:
        for k in keep:
            k.cleanup()
    return records


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """Run `generate` alone: `python -m semtalk.generate_cli speech.wav ...`."""
    parser = argparse.ArgumentParser(prog="semtalk")
    add_generate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["generate", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from semtalk.data.errors import DataError

    try:
        records = args.func(args)
    except (DataError, FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"semtalk generate: {exc}") from exc
    if argv is None:  # run as the program, which ends now
        freeze_before_exit()
    return records


if __name__ == "__main__":
    main()
