"""Helpers the stages' command line uses around Lightning's loop."""

from __future__ import annotations

import shutil
from pathlib import Path

import lightning as L

from semtalk.atomic import atomic_path


def export_checkpoint(trainer: L.Trainer, path: str | Path) -> Path | None:
    """Copy the best checkpoint of a finished fit (or the last one when nothing was monitored) to a stable
    path, atomically, so Make targets and downstream stages can depend on it. Only rank 0 writes."""
    path = Path(path)
    if not trainer.is_global_zero:
        return None
    cb = trainer.checkpoint_callback
    source = (cb.best_model_path or cb.last_model_path) if cb is not None else ""
    if not source or not Path(source).is_file():
        source = str(Path(trainer.default_root_dir) / "export.tmp.ckpt")
        trainer.save_checkpoint(source)
    with atomic_path(path, ".ckpt.tmp") as tmp:
        shutil.copyfile(source, tmp)
    print(f"exported {source} -> {path}")
    return path
