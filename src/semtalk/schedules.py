"""Learning-rate schedules shared by the stages and the FGD encoder trainer."""

from __future__ import annotations

import math
from typing import Any

import torch

SCHEDULES = ("constant", "step", "cosine")


def warmup_cosine_factor(step: int, total_steps: int, warmup: float = 0.05) -> float:
    """Linear warm-up over the first `warmup` share of `total_steps`, then cosine decay to 0."""
    ramp = max(1, round(warmup * total_steps))
    if step < ramp:
        return (step + 1) / ramp
    return 0.5 * (1.0 + math.cos(math.pi * min(step - ramp, total_steps - ramp) / max(1, total_steps - ramp)))


def check_schedule(name: str) -> None:
    if name not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {name!r}")


def lightning_optimizer(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    total_steps: int | float,
    warmup: float = 0.05,
    milestones: list[int] | None = None,
    gamma: float = 0.3,
) -> Any:
    """What a LightningModule's `configure_optimizers` returns for `schedule`:

    - `constant`: the optimizer alone (SemTalk's stage 2 and 3);
    - `step`: x`gamma` at the epochs in `milestones` (SemTalk's stage 1);
    - `cosine`: per-step linear warm-up over `warmup` of `total_steps`, then cosine decay to 0 (short runs).
    """
    check_schedule(schedule)
    if schedule == "constant" or (schedule == "step" and not milestones):
        return optimizer
    if schedule == "step":
        sched = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
        return {"optimizer": optimizer, "lr_scheduler": sched}
    if not math.isfinite(total_steps) or total_steps <= 0:
        raise ValueError("the cosine schedule needs a finite number of steps: set trainer.max_epochs or max_steps")
    total = int(total_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine_factor(s, total, warmup))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
