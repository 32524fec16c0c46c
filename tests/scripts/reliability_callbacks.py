"""Callbacks the reliability tests put into a real `semtalk fit` through its YAML (`class_path`):

- `PauseAtStep` holds a training run at a given step (after writing a marker file), so a test can kill it
  (SIGKILL) at a known point in the middle of an epoch;
- `RankReport` writes, per DDP rank, the finished step counts and the model's parameters and buffers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L
import torch


class PauseAtStep(L.Callback):
    """After optimizer step `step`: write `marker` (`{"global_step", "epoch", "batch_idx"}` as JSON) and wait to
    be killed. Exits by itself after `timeout` seconds so a forgotten process never lingers."""

    def __init__(self, step: int, marker: str, timeout: float = 300.0) -> None:
        self.step, self.marker, self.timeout = step, Path(marker), timeout

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step:
            return
        info = {"global_step": trainer.global_step, "epoch": trainer.current_epoch, "batch_idx": batch_idx}
        tmp = self.marker.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, self.marker)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            time.sleep(0.05)
        os._exit(3)


class RankReport(L.Callback):
    """At the end of `fit`: `rank<r>.json` (rank, world size, global step, epoch) and `rank<r>.pt`
    (`{"parameters": {name: tensor}, "buffers": {name: tensor}, "start": {name: tensor}}`, `start` being the
    parameters when training began) in `out_dir`."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.start: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = {k: v.detach().cpu().clone() for k, v in pl_module.named_parameters()}

    def on_train_end(self, trainer, pl_module) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        r = trainer.global_rank
        state = {
            "parameters": {k: v.detach().cpu().clone() for k, v in pl_module.named_parameters()},
            "buffers": {k: v.detach().cpu().clone() for k, v in pl_module.named_buffers()},
            "start": self.start,
        }
        torch.save(state, self.out_dir / f"rank{r}.pt")
        info = {"rank": r, "world_size": trainer.world_size, "global_step": trainer.global_step,
                "epoch": trainer.current_epoch}  # fmt: skip
        (self.out_dir / f"rank{r}.json").write_text(json.dumps(info))
