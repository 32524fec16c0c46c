"""Stage 1b: the global-motion network (root velocity and height from lower-body rotations)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from semtalk.losses import time_diff
from semtalk.nn.global_motion import GlobalMotionNet, integrate_translation, root_velocity
from semtalk.schedules import check_schedule, lightning_optimizer

GLOBAL_MOTION_KEY = "semtalk_global_motion"
DEFAULT_WEIGHTS: dict[str, float] = {
    "velocity": 1.0,  # L1 of (vx, vz) in m/s
    "height": 1.0,  # L1 of y
    "velocity_smooth": 5.0,  # L1 of the first and second time differences of the velocities
    "trajectory": 1.0,  # L1 of the integrated translation
    "trajectory_smooth": 5.0,  # L1 of the first and second differences of the integrated translation
    "contact": 1.0,  # MSE of the foot contacts
}


class GlobalMotionStage(L.LightningModule):
    """Trains `GlobalMotionNet` on `batch["lower"]` `(B, T, 61)` (rotations, absolute translation, contacts).

    Args:
        width, layers, use_contacts: network settings (see `GlobalMotionNet`).
        loss_weights: overrides of `DEFAULT_WEIGHTS`.
        lr, adam_betas: Adam settings.
            lr_schedule: `constant` (the reference), or `cosine` (per-step warm-up over `warmup` of the run, then
            cosine decay; short runs). fps: frame rate of the data. spec: sizes from the datamodule (unused).
    """

    def __init__(
        self,
        width: int = 256,
        layers: int = 4,
        use_contacts: bool = True,
        loss_weights: dict[str, float] | None = None,
        lr: float = 1.5e-4,
        adam_betas: tuple[float, float] = (0.5, 0.999),
        lr_schedule: str = "constant",
        warmup: float = 0.05,
        fps: int = 30,
        spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_schedule(lr_schedule)
        self.net = GlobalMotionNet(width, layers, use_contacts)
        self.weights = {**DEFAULT_WEIGHTS, **(loss_weights or {})}
        self.val_error = MeanMetric()

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = torch.optim.Adam(self.net.parameters(), lr=hp.lr, betas=tuple(hp.adam_betas))
        return lightning_optimizer(opt, hp.lr_schedule, self.trainer.estimated_stepping_batches, hp.warmup)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[GLOBAL_MOTION_KEY] = {"fps": self.hparams.fps, "use_contacts": self.hparams.use_contacts}

    def translation(self, lower: torch.Tensor, start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`lower` `(B, T, 61)`, `start` `(B, 3)` -> translation `(B, T, 3)` and predicted contact `(B, T, 4)`."""
        out = self.net(lower)
        return integrate_translation(out[..., :3], start, self.hparams.fps), out[..., 3:]

    def _losses(self, lower: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        fps = self.hparams.fps
        trans = lower[..., 54:57]
        target = root_velocity(trans, fps)
        out = self.net(lower)
        vel = out[..., :3]
        pred_trans = integrate_translation(vel, trans[:, 0], fps)
        losses = {
            "velocity": F.l1_loss(vel[:, 1:, [0, 2]], target[:, 1:, [0, 2]]),
            "height": F.l1_loss(vel[..., 1], target[..., 1]),
            "velocity_smooth": F.l1_loss(time_diff(vel, 1), time_diff(target, 1))
            + F.l1_loss(time_diff(vel, 2), time_diff(target, 2)),
            "trajectory": F.l1_loss(pred_trans, trans),
            "trajectory_smooth": F.l1_loss(time_diff(pred_trans, 1), time_diff(trans, 1))
            + F.l1_loss(time_diff(pred_trans, 2), time_diff(trans, 2)),
            "contact": F.mse_loss(out[..., 3:], lower[..., 57:61]),
        }
        return losses, pred_trans

    def _step(self, batch: dict[str, torch.Tensor], split: str) -> tuple[torch.Tensor, torch.Tensor]:
        lower = batch["lower"].float()
        losses, pred_trans = self._losses(lower)
        loss = sum(self.weights[k] * v for k, v in losses.items())
        bs = lower.shape[0]
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=bs, sync_dist=split != "train")
        for k, v in losses.items():
            self.log(f"{split}/{k}", v, batch_size=bs, sync_dist=split != "train")
        return loss, (pred_trans - lower[..., 54:57]).norm(dim=-1).mean(dim=1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[0]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.val_error.update(self._step(batch, "val")[1])

    def on_validation_epoch_end(self) -> None:
        self.log("val/trajectory_error_m", self.val_error.compute())
        self.val_error.reset()

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)
