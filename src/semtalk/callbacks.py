"""Lightning callbacks shared by the stages."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import lightning as L


class ExportCheckpoint(L.Callback):
    """At the end of `fit`, copy the best checkpoint (or the last, when nothing was monitored) to a stable path,
    atomically, so that Make targets and downstream stages can depend on it.

    Args:
        path: where the stage's checkpoint goes, e.g. `checkpoints/vq_face.ckpt`.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        source = None
        cb = trainer.checkpoint_callback
        if cb is not None:
            source = cb.best_model_path or cb.last_model_path
        if not source or not Path(source).is_file():
            source = Path(trainer.default_root_dir) / "export.tmp.ckpt"
            trainer.save_checkpoint(source)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".ckpt.tmp")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        print(f"exported {source} -> {self.path}")
