"""The Makefile's pipeline targets are files: once built they re-run as no-ops, an edited configuration rebuilds only
what depends on it, and an interrupted stage resumes from its `last.ckpt`.

The real Makefile runs (`make -n` / `make -q`, nothing executes) in a temporary project holding copies of its
source files (configs, pyproject.toml, constraints.txt) and every target file, each newer than its prerequisites.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = ("face", "upper", "hands", "lower")
#: every file target of `make demo`, in build order
TARGETS = (
    ".venv/.installed",
    "data/embedded/.complete",
    "data/cache/embedded/manifest.json",
    *(f"checkpoints/vq_{p}.ckpt" for p in PARTS),
    "checkpoints/global_motion.ckpt",
    "checkpoints/base.ckpt",
    "checkpoints/sparse.ckpt",
)


def make(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(["make", "--no-print-directory", "-f", str(REPO / "Makefile"), *args], cwd=project,
                          env=env, capture_output=True, text=True, timeout=60)  # fmt: skip


def touch(path: Path, when: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path, (when, when))


@pytest.fixture
def built(tmp_path) -> Path:
    """A project whose every target is built: sources an hour old, targets newer, in build order."""
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    for name in ("pyproject.toml", "constraints.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    start = time.time() - 3600
    for p in tmp_path.rglob("*"):
        if p.is_file():
            os.utime(p, (start, start))
    for i, target in enumerate(TARGETS, start=1):
        touch(tmp_path / target, start + 60 * i)
    return tmp_path


def test_finished_targets_are_no_ops(built):
    q = make(built, "-q", *TARGETS[1:])
    assert q.returncode == 0, q.stdout + q.stderr  # -q: 0 means up to date
    n = make(built, "-n", *TARGETS[1:])
    assert n.returncode == 0, n.stderr
    lines = n.stdout.strip().splitlines()
    assert len(lines) == len(TARGETS) - 1 and all(line.endswith("is up to date.") for line in lines), n.stdout


def test_an_edited_config_rebuilds_only_its_stage_and_downstream(built):
    touch(built / "configs" / "base.yaml", time.time())
    assert make(built, "-q", "checkpoints/sparse.ckpt").returncode == 1
    plan = make(built, "-n", "checkpoints/sparse.ckpt").stdout
    fits = [line for line in plan.splitlines() if " fit " in line]
    assert len(fits) == 2, plan
    assert "--export checkpoints/base.ckpt" in fits[0] and "--export checkpoints/sparse.ckpt" in fits[1]
    assert "vq_" not in plan and "manifest.json" not in plan
    assert make(built, "-q", *(f"checkpoints/vq_{p}.ckpt" for p in PARTS)).returncode == 0


def test_an_interrupted_stage_resumes_from_its_last_checkpoint(built):
    """A stage whose export is missing but whose run left `runs/<stage>/checkpoints/last.ckpt` restarts from it."""
    (built / "checkpoints" / "vq_hands.ckpt").unlink()
    plan = make(built, "-n", "checkpoints/vq_hands.ckpt").stdout
    assert "--ckpt_path" not in plan and "--export checkpoints/vq_hands.ckpt" in plan
    touch(built / "runs" / "vq_hands" / "checkpoints" / "last.ckpt", time.time())
    plan = make(built, "-n", "checkpoints/vq_hands.ckpt").stdout
    assert "-c configs/vq/hands.yaml" in plan
    assert "--ckpt_path runs/vq_hands/checkpoints/last.ckpt" in plan, plan


def test_run_outputs_stay_out_of_the_tree_and_only_publish_report_writes_docs(built):
    """`make report` and `make aggregate` write under the ignored `outputs/`; `docs/results/` (the committed copy)
    is written by `make publish-report` alone, so a clone stays clean after `make demo`."""
    touch(built / "checkpoints" / "fgd.pt", time.time())
    report = make(built, "-n", "report").stdout
    assert "--out outputs/demo/demo.md" in report, report
    assert "--out outputs/seed1/demo.md" in make(built, "-n", "report", "SEED=1").stdout
    aggregate = make(built, "-n", "aggregate").stdout
    assert "--out outputs/seeds.md" in aggregate, aggregate
    assert "docs/" not in report + aggregate
    assert "docs/results" in make(built, "-n", "publish-report").stdout
    ignored = subprocess.run(["git", "check-ignore", "-q", "outputs/demo/demo.md"], cwd=REPO, timeout=30)
    assert ignored.returncode == 0, "outputs/ must be ignored by git"
