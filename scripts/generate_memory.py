"""Peak memory of `semtalk generate` against the input's length.

Makes speech inputs of the given lengths at 44.1 kHz stereo (the embedded dataset's clips back to back, resampled,
or espeak-ng sentences when there is no dataset), runs `semtalk generate` on each in a fresh process (npz, ψ JSON,
BVH and the video, with the transcript spread over the voiced audio) and prints a table: input minutes, frames,
wall seconds, peak RSS of the generating process (its own `ru_maxrss`) and of the process tree with the ffmpeg
encoder it starts (the sum of the processes' RSS, polled every 0.2 s), in MiB.

    python scripts/generate_memory.py [--minutes 1 5 10] [--checkpoints checkpoints] [--cache data/cache/embedded]
        [--video auto|mp4|gif|none] [--source auto|dataset|espeak] [--work /tmp/semtalk-memory]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RATE = 44100


def _dataset_pieces(root: Path):
    """(16 kHz mono audio, words) of the dataset's clips, in order, forever."""
    from semtalk.data.beat2 import load_audio, load_textgrid

    wavs = sorted((root / "wave16k").glob("*.wav"))
    if not wavs:
        raise FileNotFoundError(f"{root / 'wave16k'}: no wav files (make the dataset or use --source espeak)")
    while True:
        for wav in wavs:
            tg = root / "textgrid" / f"{wav.stem}.TextGrid"
            words = [w for w in load_textgrid(tg) if w.word.strip()] if tg.is_file() else []
            yield load_audio(wav), 16000, words


def _espeak_pieces():
    """(audio, rate, words) of espeak-ng sentences, repeated forever (words without timings)."""
    from semtalk.data.beat2 import WordInterval
    from semtalk.synth.speech import Voice, synthesize_batch

    sentences = [
        "honestly the big red balloon floated over the river",
        "I think this is a really important idea for all of us",
        "we walked to the market and bought fresh bread and apples",
        "then she pointed at the mountain and said look over there",
        "nobody expected the small team to win the final game",
    ]
    spoken = synthesize_batch([(s, Voice(v)) for s in sentences for v in ("en-us", "en-gb+f2")])
    texts = [s for s in sentences for _ in range(2)]
    while True:
        for utt, text in zip(spoken, texts):
            yield utt.audio.astype(np.float32), utt.sample_rate, [WordInterval(0, 0, w) for w in text.split()]


def make_input(path: Path, minutes: float, source: str, dataset: Path) -> str:
    """Write `minutes` of speech to `path` (44.1 kHz stereo, block by block); return its transcript."""
    import soundfile as sf
    import soxr

    pieces = _dataset_pieces(dataset) if source == "dataset" else _espeak_pieces()
    want = int(minutes * 60 * RATE)
    done, words = 0, []
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=2, subtype="PCM_16") as f:
        while done < want:
            audio, rate, piece_words = next(pieces)
            mono = soxr.resample(audio, rate, RATE).astype(np.float32)[: want - done]
            f.write(np.stack((mono, 0.6 * mono), axis=1))
            seconds = len(mono) / RATE
            words += [w.word for w in piece_words if w.start < seconds]
            done += len(mono)
    return " ".join(words)


def _child(argv: list[str]) -> None:
    """Run `semtalk generate` in this process, then print its peak RSS (KiB on Linux)."""
    from semtalk.generate_cli import main

    records = main(argv)
    usage = {
        "frames": records[0]["frames"],
        "files": records[0]["files"],
        "self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print("MEMORY " + json.dumps(usage))


def _tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and all its descendants (KiB), from /proc; 0 when it is gone."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")), 0)
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def _run_polled(cmd: list[str], every: float = 0.2) -> tuple[int, str, str, int]:
    """Run `cmd`; return its exit code, stdout, stderr and the peak RSS of its process tree (KiB)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss_kib(proc.pid))
            time.sleep(every)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10])
    ap.add_argument("--checkpoints", default="checkpoints")
    ap.add_argument("--cache", default=None, help="the feature cache the checkpoints were trained on")
    ap.add_argument("--video", default="auto", choices=("auto", "mp4", "gif", "none"))
    ap.add_argument("--source", default="auto", choices=("auto", "dataset", "espeak"))
    ap.add_argument("--dataset", default="data/embedded", help="BEAT2-format root whose clips make the speech")
    ap.add_argument("--work", default=None, help="folder for the inputs and outputs (default: a temporary one)")
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        _child(args.child)
        return
    source = args.source
    if source == "auto":
        source = "dataset" if (Path(args.dataset) / "wave16k").is_dir() else "espeak"
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="semtalk-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for minutes in args.minutes:
            wav = work / f"speech_{minutes:g}min.wav"
            transcript = make_input(wav, minutes, source, Path(args.dataset))
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(wav), "--checkpoints",
                   args.checkpoints, "--out", str(work / "out"), "--video", args.video, "--quiet"]  # fmt: skip
            if transcript:
                cmd += ["--transcript", transcript]
            if args.cache:
                cmd += ["--cache", args.cache]
            t0 = time.perf_counter()
            code, stdout, stderr, tree_kib = _run_polled(cmd)
            wall = time.perf_counter() - t0
            line = next((x for x in stdout.splitlines() if x.startswith("MEMORY ")), None)
            if code != 0 or line is None:
                raise SystemExit(f"semtalk generate failed on {wav}:\n{stderr[-3000:]}")
            usage = json.loads(line[len("MEMORY ") :])
            rows.append((minutes, usage["frames"], wall, usage["self_kib"] / 1024, tree_kib / 1024,
                         sorted(usage["files"])))  # fmt: skip
            print(f"{minutes:g} min done: {wall:.0f} s, peak RSS {usage['self_kib'] / 1024:.0f} MiB", file=sys.stderr)
            shutil.rmtree(work / "out", ignore_errors=True)
            wav.unlink()
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"source: {source} speech, 44.1 kHz stereo; outputs: {', '.join(rows[0][5]) if rows else '-'}")
    print("| input minutes | frames | wall s | peak RSS MiB | peak RSS MiB with ffmpeg (polled) |")
    print("|---:|---:|---:|---:|---:|")
    for minutes, frames, wall, rss, tree, _ in rows:
        print(f"| {minutes:g} | {frames} | {wall:.0f} | {rss:.0f} | {tree:.0f} |")


if __name__ == "__main__":
    main()
