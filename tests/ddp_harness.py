"""Metrics on two gloo ranks, each updating with half of the data, against one process updating with all of it.

A test module defines `cases() -> [(metric factory, full inputs[, output keys])]` (keys None or absent: `compute()`
returns one number) and calls `two_rank_values(module, "cases", tmp_path)` and `metric_values(cases())`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

_SCRIPT = textwrap.dedent(
    """
    import importlib, os, sys
    import torch.distributed as dist
    import torch.multiprocessing as mp
    sys.path.insert(0, sys.argv[2])
    from ddp_harness import metric_values
    cases = getattr(importlib.import_module(sys.argv[4]), sys.argv[5])

    def rank_main(rank, port, out_dir):
        dist.init_process_group("gloo", rank=rank, world_size=2, init_method=f"tcp://127.0.0.1:{port}")
        values = metric_values(cases(), lambda a: a[2 * rank : 2 * rank + 2])  # each rank sees half of the data
        with open(os.path.join(out_dir, f"rank{rank}.txt"), "w") as f:
            f.write(" ".join(repr(v) for v in values))
        dist.destroy_process_group()

    if __name__ == "__main__":
        # fork after the imports, before any computation: the ranks share the loaded modules
        mp.start_processes(rank_main, args=(int(sys.argv[1]), sys.argv[3]), nprocs=2, start_method="fork")
    """
)


def metric_values(cases: Sequence[tuple], select: Callable = lambda a: a) -> list[float]:
    """Update each case's metric with `select(input)` of its inputs and return the computed values, flattened."""
    values: list[float] = []
    for case in cases:
        make, args, keys = case if len(case) == 3 else (*case, None)
        metric = make()
        metric.update(*[select(a) for a in args])
        out = metric.compute()
        values += [float(out)] if keys is None else [float(out[k]) for k in keys]
    return values


def two_rank_values(module: str, cases: str, tmp_path: Path) -> list[list[float]]:
    """`metric_values` of `module.cases()` on rank 0 and rank 1 of a two-process gloo group, each rank updating
    with its half (items 0-1 or 2-3) of every input."""
    script = tmp_path / "ddp_metrics.py"
    script.write_text(_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), port, str(Path(__file__).parent), str(tmp_path), module, cases],
        capture_output=True, text=True, timeout=180, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [[float(v) for v in (tmp_path / f"rank{rank}.txt").read_text().split()] for rank in (0, 1)]
