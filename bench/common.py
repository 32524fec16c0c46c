"""What the benchmarks share: command-line options, timing with warm-up and repeats, peak memory, a description of
the machine, markdown tables and JSON-lines output.

Every benchmark takes `--size tiny|demo|paper` (tiny: a few seconds, for the tests), `--device cpu|cuda|auto`,
`--precision 32|bf16` (one or both), `--warmup`, `--repeats`, `--threads` and `--out FILE` (rows appended as
JSON lines, each with the machine description and the date).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
SIZES: tuple[str, ...] = ("tiny", "demo", "paper")
PRECISIONS: tuple[str, ...] = ("32", "bf16")


# ============================================================================================== options
def base_parser(description: str, precisions: Sequence[str] = ("32",)) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=SIZES, default="demo", help="model sizes: configs/*.yaml (demo), "
                   "configs/paper/*.yaml layered over them (paper), or test-size (tiny)")  # fmt: skip
    p.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto", help="where to run (auto: cuda if any)")
    p.add_argument("--precision", choices=PRECISIONS, nargs="+", default=list(precisions),
                   help="32: float32; bf16: bfloat16 autocast (bf16-mixed)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--repeats", type=int, default=3, help="timed runs")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="append the rows to this file as JSON lines")
    return p


def setup(args: argparse.Namespace) -> torch.device:
    """Apply `--threads` and `--seed`; return the device `--device` names."""
    if args.threads:
        torch.set_num_threads(int(args.threads))
    torch.manual_seed(args.seed)
    if args.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch (use --device cpu or auto)")
    return torch.device(args.device)


def autocast(device: torch.device, precision: str):
    """bfloat16 autocast for `bf16`, nothing for `32`."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ============================================================================================== timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Wall seconds of the timed runs."""

    seconds: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    def quantile(self, q: float) -> float:
        """Linear-interpolated quantile (q in [0, 1])."""
        xs = sorted(self.seconds)
        if len(xs) == 1:
            return xs[0]
        pos = q * (len(xs) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def measure(fn: Callable[[], Any], device: torch.device, warmup: int = 1, repeats: int = 3) -> Timing:
    """Run `fn` `warmup` times untimed, then `repeats` times timed (device synchronised around each run)."""
    for _ in range(max(0, warmup)):
        fn()
    synchronize(device)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return Timing(times)


# ============================================================================================== memory
def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak memory of a block of work, in MiB.

    On CUDA: `torch.cuda.max_memory_allocated` after a reset. On the CPU: the resident-set high-water mark of the
    process (Linux `VmHWM`, reset at the start when `/proc/self/clear_refs` allows it; otherwise
    `resource.getrusage`'s `ru_maxrss`, which covers the whole process so far: `reset` then says False).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset_ok = False

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.reset_ok = True
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM (Linux >= 4.0)
                self.reset_ok = True
            except OSError:
                self.reset_ok = False
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @property
    def mib(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        hwm = _status_kib("VmHWM") if self.reset_ok else None
        if hwm is not None:
            return hwm / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    @property
    def kind(self) -> str:
        if self.device.type == "cuda":
            return "cuda max allocated"
        return "RSS high-water" + ("" if self.reset_ok else " (whole process)")


# ============================================================================================== machine
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device.type,
        "load_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_line(info: dict[str, Any]) -> str:
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ", no GPU used"
    return (f"{info['cpu']}, {info['cores']} cores ({info['torch_threads']} torch threads, load {info['load_1min']})"
            f"{gpu}; torch {info['torch']}, Python {info['python']}")  # fmt: skip


# ============================================================================================== output
def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        a = abs(value)
        if a == 0:
            return "0"
        if a >= 1000:
            return f"{value:,.0f}"
        if a >= 100:
            return f"{value:.1f}"
        if a >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as a markdown table with the given columns (missing values empty)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def parse_markdown_table(text: str) -> tuple[list[str], list[list[str]]]:
    """The header and the cells of the first markdown table in `text` (for checks)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("|")]
    if len(lines) < 2:
        raise ValueError("no markdown table found")
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return cells[0], cells[2:]


def report(
    benchmark: str,
    rows: list[dict[str, Any]],
    columns: Sequence[str],
    info: dict[str, Any],
    out: Path | None,
    notes: Sequence[str] = (),
) -> str:
    """Print the markdown table (with the machine line and notes) and append the rows to `out` as JSON lines."""
    stamp = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    text = "\n".join([f"### {benchmark} ({stamp})", "", f"Machine: {machine_line(info)}", "",
                      markdown_table(rows, columns), *(["", *notes] if notes else [])])  # fmt: skip
    print(text, flush=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({"benchmark": benchmark, "date": stamp, "machine": info, **r}, default=str) + "\n")
    return text


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Silence Lightning's warnings about logging outside a Trainer while stages run standalone."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*self\.log.*")
        warnings.filterwarnings("ignore", message=r".*trainer.*reference is not registered.*")
        yield
