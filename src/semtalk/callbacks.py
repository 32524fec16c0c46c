"""Helpers the stages' command line uses around Lightning's loop."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import lightning as L


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".ckpt.tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"exported {source} -> {path}")
    return path
