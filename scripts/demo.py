"""The main job, end to end, with the wall time of every step: `make demo` runs this.

    python3 scripts/demo.py [--jobs 2]

Steps (each a Make target, so an interrupted run resumes where it stopped and a finished step is a no-op):
set-up -> embedded dataset -> feature cache -> stage 1 (the four RVQ-VAEs and the global-motion net, `--jobs`
trainings at a time, the FGD encoder beside them) -> stage 2 (base) -> stage 3 (sparse) -> generation for a speech
file the project has never seen (new espeak-ng speech, 44.1 kHz stereo) -> the results report
`outputs/demo/demo.md`. Everything it writes is ignored by git (`data/`, `checkpoints/`, `runs/`, `outputs/`), so a
clone stays clean; `make publish-report` copies the report into the committed `docs/results/`.
The per-step times go to `runs/demo_timing.json` (read by the report) and are printed at the end, with the
machine's calibration figure: the median demo-size three-pass base training step of `bench/train_step.py`, measured
on the same machine before the report step (and not counted in the total), and the machine-independent cost of the
job, total / step (machines differ by 2x or more in speed; the ratio does not).

`--seed k` (`make demo SEED=k`) trains stages 2 and 3 with seed k into `checkpoints/seed<k>/` and writes the
report to `outputs/seed<k>/demo.md`; stage 1 and the FGD encoder are shared by every seed (see the Makefile).

Only the standard library is used, so the script runs before the virtual environment exists.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMING = ROOT / "runs" / "demo_timing.json"
NEW_SPEECH = ROOT / "outputs" / "demo" / "new_speech.wav"
CALIBRATION = ROOT / "runs" / "calibration.jsonl"
SENTENCE = (
    "Thank you all for coming today. I want to tell you about a small idea that grew into something big, "
    "and why I think you should care about it too."
)


SEED_ARGS: list[str] = []


def _make(*targets: str, jobs: int = 1) -> list[str]:
    return ["make", "--no-print-directory", f"-j{jobs}", *targets, *SEED_ARGS]


def calibrate(python: str) -> float | None:
    """The median demo-size base training step (seconds) of `bench/train_step.py` on this machine, or None: the
    three-pass step of batch 16, a fixed amount of work (the demo config may train the generation pass alone)."""
    CALIBRATION.unlink(missing_ok=True)
    cmd = [python, "bench/train_step.py", "--size", "demo", "--device", "cpu", "--stages", "base", "--precision",
           "32", "--masked-passes", "on", "--out", str(CALIBRATION)]  # fmt: skip
    print(f"\n==> calibration: {' '.join(cmd[1:8])} ...", flush=True)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0 or not CALIBRATION.is_file():
        print(f"calibration failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}", file=sys.stderr)
        return None
    rows = [json.loads(line) for line in CALIBRATION.read_text().splitlines() if line.strip()]
    return float(rows[-1]["step_ms"]) / 1000.0


def write_new_speech(python: str) -> list[str]:
    """A command that synthesises `NEW_SPEECH` (espeak-ng, 44.1 kHz stereo) unless it exists."""
    code = (
        "import sys, numpy as np, soundfile as sf, librosa;"
        "from semtalk.synth.speech import synthesize;"
        "from semtalk.synth.speech import Voice;"
        "u = synthesize(sys.argv[2], Voice('en-us+m3', 165, 50, 50));"
        "y = librosa.resample(np.asarray(u.audio, dtype=np.float32), orig_sr=u.sample_rate, target_sr=44100);"
        "sf.write(sys.argv[1], np.stack([y, 0.9 * y], 1), 44100)"
    )
    return [python, "-c", code, str(NEW_SPEECH), SENTENCE]


def run_step(
    name: str, cmd: list[str], steps: list[dict], env: dict[str, str] | None = None, calibration_s: float | None = None
) -> None:
    print(f"\n==> [{len(steps) + 1}] {name}: {' '.join(cmd[:6])}{' ...' if len(cmd) > 6 else ''}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    steps.append({"name": name, "seconds": round(seconds, 1), "ok": proc.returncode == 0})
    save(steps, calibration_s)
    if proc.returncode != 0:
        print(
            f"\nstep '{name}' failed (exit {proc.returncode}) after {seconds:.0f} s; fix the error above and run "
            "`make demo` again: finished steps are not repeated.",
            file=sys.stderr,
        )
        table(steps)
        sys.exit(proc.returncode)
    print(f"==> {name}: {seconds:.1f} s", flush=True)


def save(steps: list[dict], calibration_s: float | None = None) -> None:
    TIMING.parent.mkdir(parents=True, exist_ok=True)
    total = round(sum(s["seconds"] for s in steps), 1)
    data = {
        "steps": steps,
        "total_seconds": total,
        "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if calibration_s:
        data["calibration_step_seconds"] = round(calibration_s, 4)
        data["cost_ratio"] = round(total / calibration_s, 1)
    tmp = TIMING.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(TIMING)


def table(steps: list[dict], calibration_s: float | None = None) -> None:
    total = sum(s["seconds"] for s in steps)
    print("\n| step | wall time |\n|---|---:|")
    for s in steps:
        print(f"| {s['name']} | {s['seconds'] / 60:.1f} min ({s['seconds']:.0f} s) |")
    print(f"| **total** | **{total / 60:.1f} min** |")
    if calibration_s:
        print(
            f"\nthis machine's demo-size base step (bench/train_step.py, median): {calibration_s:.3f} s; "
            f"cost of the main job = total / step = {total / calibration_s:,.0f} steps"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2, help="stage-1 trainings run at once (one thread each)")
    ap.add_argument("--seed", type=int, default=None, help="training seed of stages 2 and 3 (default: the configs')")
    ap.add_argument("--no-calibration", action="store_true", help="skip the calibration step at the end")
    args = ap.parse_args()
    global TIMING
    out_dir = "outputs/demo/generate"
    if args.seed is not None:
        SEED_ARGS.append(f"SEED={args.seed}")
        TIMING = ROOT / "runs" / f"demo_timing_seed{args.seed}.json"
        out_dir = f"outputs/seed{args.seed}/generate"
    venv_py = str(ROOT / ".venv" / "bin" / "python")
    semtalk = str(ROOT / ".venv" / "bin" / "semtalk")
    steps: list[dict] = []
    one_thread = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if args.jobs > 1 else None
    run_step("set-up (.venv, pinned stack)", _make("setup"), steps)
    run_step("embedded dataset", _make("dataset"), steps)
    run_step("feature cache", _make("cache"), steps)
    # the FGD encoder needs only the dataset: it trains beside the tokenizers
    stage1 = _make("pretrain-vq", "fgd", jobs=args.jobs)
    run_step("stage 1: RVQ-VAEs + global motion, FGD encoder", stage1, steps, one_thread)
    run_step("stage 2: base generator", _make("train-base"), steps)
    run_step("stage 3: sparse generator + Sem-gate", _make("train-sparse"), steps)
    NEW_SPEECH.parent.mkdir(parents=True, exist_ok=True)
    if not NEW_SPEECH.exists():
        run_step("new speech (espeak-ng, 44.1 kHz stereo)", write_new_speech(venv_py), steps)
    ckpt = "checkpoints" if args.seed is None else f"checkpoints/seed{args.seed}"
    gen = [semtalk, "generate", str(NEW_SPEECH), "--checkpoints", ckpt, "--out", out_dir, "--quiet"]
    run_step("generate for unseen speech", gen, steps, {"HF_HUB_OFFLINE": "1"})
    # calibrated before the report, so that the report can quote it; not counted in the total
    calibration = None if args.no_calibration else calibrate(venv_py)
    save(steps, calibration)
    run_step("report (test split)", _make("report"), steps, calibration_s=calibration)
    table(steps, calibration)
    report = "outputs/demo/demo.md" if args.seed is None else f"outputs/seed{args.seed}/demo.md"
    print(f"\nreport: {report}; generated motion: {out_dir}/; timing: {TIMING.relative_to(ROOT)}")
    print("dashboards: make tensorboard (http://localhost:6006)")


if __name__ == "__main__":
    main()
