"""Stage 1: RVQ-VAE pretraining of one motion part (face, upper, hands or lower), configured by YAML."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from semtalk.body.joints import FOOT_JOINTS
from semtalk.body.parts import PART_DIMS, PART_JOINTS, PART_NAMES
from semtalk.losses import foot_skate_loss, geodesic_loss, motion_dynamics_loss, rot6d_matrices
from semtalk.nn.rvqvae import RVQVAE
from semtalk.schedules import check_schedule, lightning_optimizer
from semtalk.tokenizer import TOKENIZER_KEY, tokenizer_card

DEFAULT_WEIGHTS: dict[str, float] = {
    "features": 1.0,  # smooth L1 on the part features themselves (rot6d, expressions, translation, contact)
    "geodesic": 1.0,  # rotation angle, all rotation parts
    "velocity": 1.0,  # first difference over time
    "acceleration": 1.0,  # second difference over time
    "joints": 1.0,  # SMPL-X joint positions of the part (metres, squared error)
    "expression": 1.0,  # face: expression MSE (velocity/acceleration use the same weights as above)
    "contact": 1.0,  # lower: foot-contact MSE
    "foot_skate": 20.0,  # lower: foot speed where the predicted contact > 0.95
    "translation": 1.0,  # lower: translation channels (unsupervised in the reference; 0 reproduces that)
    "commit": 1.0,  # commitment loss of the quantizer
}


class VQStage(L.LightningModule):
    """RVQ-VAE of one part. Reads `batch[part]` `(B, T, D)` and, for joint losses, `batch["betas"]` `(B, 300)`.

    Args:
        part: one of face, upper, hands, lower.
        smplx_root: folder holding `smplx/SMPLX_NEUTRAL_2020.npz`; enables the joint-position loss and the
            metre-valued validation error. `auto` takes the datamodule's (`spec["smplx_root"]`); None trains
            without a body model.
        width, code_dim, down_t, depth, growth, dropout: conv encoder/decoder sizes.
        num_quantizers, codebook_size, decay, kmeans_init, threshold_ema_dead_code, rotation_trick,
            stochastic_sample_codes, sample_codebook_temp, quantize_dropout: residual quantizer settings.
        loss_weights: overrides of `DEFAULT_WEIGHTS`.
        joint_crop: in training, the joint-position and foot-skate losses run on a random contiguous crop of this
            many frames (forward kinematics is the costliest part of a CPU step); 0 uses every frame.
        feature_loss: `raw` (the reference: smooth L1 on the features as they are) or `normalized` (on the features
            standardised by the training statistics, so that low-variance channels such as the spine rotations,
            whose errors the lever arm to the head and hands multiplies, are reconstructed too).
        lr, adam_betas: Adam settings. lr_schedule: `step` (x`lr_gamma` at the epochs `lr_milestones`, the
            reference), `constant`, or `cosine` (per-step warm-up over `warmup` of the run, then cosine decay).
        fps: frame rate of the data. spec: sizes from the datamodule, checked against the part's width.
    """

    def __init__(
        self,
        part: str,
        smplx_root: str | None = "auto",
        width: int = 256,
        code_dim: int = 256,
        down_t: int = 2,
        depth: int = 3,
        growth: int = 3,
        dropout: float = 0.2,
        num_quantizers: int = 6,
        codebook_size: int = 256,
        decay: float = 0.99,
        kmeans_init: bool = True,
        threshold_ema_dead_code: float = 1.0,
        rotation_trick: bool = False,
        stochastic_sample_codes: bool = False,
        sample_codebook_temp: float = 0.5,
        quantize_dropout: bool = False,
        loss_weights: dict[str, float] | None = None,
        joint_crop: int = 0,
        feature_loss: str = "raw",
        lr: float = 1.5e-4,
        adam_betas: tuple[float, float] = (0.5, 0.999),
        lr_milestones: list[int] | None = None,
        lr_gamma: float = 0.3,
        lr_schedule: str = "step",
        warmup: float = 0.05,
        fps: int = 30,
        spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if part not in PART_NAMES:
            raise ValueError(f"part must be one of {PART_NAMES}, got {part!r}")
        if feature_loss not in ("raw", "normalized"):
            raise ValueError(f"feature_loss must be 'raw' or 'normalized', got {feature_loss!r}")
        self.save_hyperparameters()
        check_schedule(lr_schedule)
        self.part = part
        self.dim = PART_DIMS[part]
        data_dim = (spec or {}).get("part_dims", {}).get(part)
        if data_dim is not None and data_dim != self.dim:
            raise ValueError(f"the data gives {part} features of width {data_dim}, the tokenizer expects {self.dim}")
        self.weights = {**DEFAULT_WEIGHTS, **(loss_weights or {})}
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss weights {sorted(unknown)}; known: {sorted(DEFAULT_WEIGHTS)}")
        self.model = RVQVAE(
            self.dim,
            width,
            code_dim,
            down_t,
            depth,
            growth,
            dropout,
            num_quantizers,
            codebook_size,
            decay=decay,
            kmeans_init=kmeans_init,
            threshold_ema_dead_code=threshold_ema_dead_code,
            rotation_trick=rotation_trick,
            stochastic_sample_codes=stochastic_sample_codes,
            sample_codebook_temp=sample_codebook_temp,
            quantize_dropout=quantize_dropout,
        )
        self.body = None
        if smplx_root == "auto":
            smplx_root = (spec or {}).get("smplx_root")
        if smplx_root is not None:
            from semtalk.body.model import BodyModel

            self.body = BodyModel(smplx_root)
            self.body.requires_grad_(False)
        # running mean of the training features: the "always predict the mean pose" baseline
        self.register_buffer("feature_sum", torch.zeros(self.dim, dtype=torch.float64))
        self.register_buffer("feature_count", torch.zeros((), dtype=torch.float64))
        self.val_error = MeanMetric()
        self.val_mean_pose_error = MeanMetric()
        self._val_counts: torch.Tensor | None = None

    # ------------------------------------------------------------------ set-up
    def configure_model(self) -> None:
        # decided now that the process group (if any) exists: codebooks stay identical across DDP ranks
        self.model.quantizer.build()

    def on_train_start(self) -> None:
        if not bool(self.model.statistics_set):
            self._set_statistics(self.trainer.train_dataloader)

    @torch.no_grad()
    def _set_statistics(self, loader, max_batches: int = 200) -> None:
        """Per-dimension mean/std of the part over the training data (summed over every DDP rank)."""
        s1 = torch.zeros(self.dim, dtype=torch.float64, device=self.device)
        s2 = torch.zeros_like(s1)
        n = torch.zeros((), dtype=torch.float64, device=self.device)
        for i, batch in enumerate(loader):
            if i >= max_batches:
                break
            x = batch[self.part].to(self.device, torch.float64).flatten(0, 1)
            s1 += x.sum(0)
            s2 += (x * x).sum(0)
            n += x.shape[0]
        s1, s2, n = (self.trainer.strategy.reduce(t, reduce_op="sum") for t in (s1, s2, n))
        mean = s1 / n
        std = (s2 / n - mean * mean).clamp(min=0).sqrt()
        self.model.set_statistics(mean.float(), std.float())

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = torch.optim.Adam(self.model.parameters(), lr=hp.lr, betas=tuple(hp.adam_betas))
        steps = self.trainer.estimated_stepping_batches
        return lightning_optimizer(opt, hp.lr_schedule, steps, hp.warmup, hp.lr_milestones, hp.lr_gamma)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TOKENIZER_KEY] = tokenizer_card(
            part=self.part,
            dim=self.dim,
            num_quantizers=self.hparams.num_quantizers,
            codebook_size=self.hparams.codebook_size,
            code_dim=self.hparams.code_dim,
            downsample=self.model.downsample,
            fps=self.hparams.fps,
        )

    # ---------------------------------------------------------------- losses
    def _part_joints(self, feats: torch.Tensor, betas: torch.Tensor | None) -> torch.Tensor | None:
        """Joint positions `(B, T, 55, 3)` with only this part's rotations set (translation zero)."""
        if self.body is None or self.part == "face":
            return None
        b, t, _ = feats.shape
        rot = rot6d_matrices(feats[..., : 6 * len(PART_JOINTS[self.part])])  # (B, T, J, 3, 3)
        full = torch.eye(3, dtype=feats.dtype, device=feats.device).expand(b, t, 55, 3, 3).clone()
        full[:, :, list(PART_JOINTS[self.part])] = rot
        if betas is None:
            betas = feats.new_zeros(b, 300)
        betas = betas[:, None].expand(b, t, betas.shape[-1]).reshape(b * t, -1)
        joints = self.body.joints_from_matrices(full.reshape(b * t, 55, 3, 3), betas)
        return joints.reshape(b, t, 55, 3)

    def part_losses(self, pred: torch.Tensor, gt: torch.Tensor, betas: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Reconstruction losses of this part (unweighted), `(B, T, D)` each."""
        losses: dict[str, torch.Tensor]
        if self.hparams.get("feature_loss", "raw") == "normalized":
            losses = {"features": F.smooth_l1_loss(self.model.normalize(pred), self.model.normalize(gt))}
        else:
            losses = {"features": F.smooth_l1_loss(pred, gt)}
        n_rot = 6 * len(PART_JOINTS[self.part])
        losses["geodesic"] = geodesic_loss(pred[..., :n_rot], gt[..., :n_rot])
        kind = "mse" if self.part == "face" else "l1"
        rot_p, rot_g = rot6d_matrices(pred[..., :n_rot]), rot6d_matrices(gt[..., :n_rot])
        vel, acc = motion_dynamics_loss(rot_p, rot_g, kind)
        if self.part == "face":
            expr_p, expr_g = pred[..., 6:], gt[..., 6:]
            losses["expression"] = F.mse_loss(expr_p, expr_g)
            e_vel, e_acc = motion_dynamics_loss(expr_p, expr_g, "mse")
            vel, acc = vel + e_vel, acc + e_acc
        losses["velocity"], losses["acceleration"] = vel, acc
        if self.part == "lower":
            losses["translation"] = F.l1_loss(pred[..., 54:57], gt[..., 54:57])
            losses["contact"] = F.mse_loss(pred[..., 57:61], gt[..., 57:61])
        crop = self.hparams.joint_crop
        if self.training and 0 < crop < pred.shape[1]:
            # forward kinematics on a random contiguous crop: consecutive frames keep the foot velocities valid
            start = int(torch.randint(0, pred.shape[1] - crop + 1, ()))
            pred, gt = pred[:, start : start + crop], gt[:, start : start + crop]
        joints_p = self._part_joints(pred, betas)
        if joints_p is not None:
            with torch.no_grad():
                joints_g = self._part_joints(gt, betas)
            losses["joints"] = F.mse_loss(joints_p, joints_g)
            if self.part == "lower":
                losses["foot_skate"] = foot_skate_loss(joints_p[:, :, list(FOOT_JOINTS)], pred[..., 57:61])
        return losses

    def reconstruction_error(self, pred: torch.Tensor, gt: torch.Tensor, betas: torch.Tensor | None) -> torch.Tensor:
        """Per-sequence error `(B,)`: mean joint distance in metres (body parts with a body model), else the
        mean Euclidean error of the expressions (face) or of the features."""
        joints_p = self._part_joints(pred, betas)
        if joints_p is not None:
            joints_g = self._part_joints(gt, betas)
            idx = list(PART_JOINTS[self.part]) if self.part != "lower" else list(range(55))
            return (joints_p[:, :, idx] - joints_g[:, :, idx]).norm(dim=-1).mean(dim=(1, 2))
        sl = slice(6, None) if self.part == "face" else slice(None)
        return (pred[..., sl] - gt[..., sl]).norm(dim=-1).mean(dim=1)

    # ------------------------------------------------------------- the loop
    def _step(self, batch: dict[str, torch.Tensor], split: str) -> tuple:
        x = batch[self.part].float()
        t = x.shape[1] - x.shape[1] % self.model.downsample
        x = x[:, :t]
        betas = batch.get("betas")
        out = self.model(x)
        losses = self.part_losses(out.recon, x, betas)
        losses["commit"] = out.quant.commit_loss
        loss = sum(self.weights[k] * v for k, v in losses.items())
        bs = x.shape[0]
        self.log(f"{split}/loss", loss, prog_bar=True, batch_size=bs, sync_dist=split != "train")
        for k, v in losses.items():
            self.log(f"{split}/{k}", v, batch_size=bs, sync_dist=split != "train")
        if split == "train":
            with torch.no_grad():
                self.feature_sum += x.detach().double().sum(dim=(0, 1))
                self.feature_count += x.shape[0] * x.shape[1]
            for q in range(out.quant.usage.shape[0]):
                self.log(f"train/usage_l{q}", out.quant.usage[q], batch_size=bs)
                self.log(f"train/perplexity_l{q}", out.quant.perplexity[q], batch_size=bs)
        return loss, out, x, betas

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")[0]

    def mean_pose(self, like: torch.Tensor) -> torch.Tensor:
        """The running mean training feature vector, broadcast to `like` `(B, T, D)`."""
        mean = (self.feature_sum / self.feature_count.clamp(min=1)).to(like.dtype)
        return mean.expand_as(like)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        _, out, x, betas = self._step(batch, "val")
        err = self.reconstruction_error(out.recon, x, betas)
        base = self.reconstruction_error(self.mean_pose(x), x, betas)
        self.val_error.update(err)
        self.val_mean_pose_error.update(base)
        counts = torch.stack(
            [
                torch.bincount(out.quant.indices[..., q].flatten(), minlength=self.hparams.codebook_size)
                for q in range(out.quant.indices.shape[-1])
            ]
        )
        self._val_counts = counts if self._val_counts is None else self._val_counts + counts

    def on_validation_epoch_end(self) -> None:
        if self._val_counts is None:
            return
        counts = self.all_gather(self._val_counts)
        counts = counts.sum(0) if counts.dim() == 3 else counts
        for q in range(counts.shape[0]):
            self.log(f"val/usage_l{q}", (counts[q] > 0).float().mean(), sync_dist=False)
        rec, base = self.val_error.compute(), self.val_mean_pose_error.compute()
        self.log("val/rec_error", rec)
        self.log("val/mean_pose_error", base)
        self.log("val/rec_error_ratio", rec / base.clamp(min=1e-12))
        self.val_error.reset()
        self.val_mean_pose_error.reset()
        self._val_counts = None

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    # ----------------------------------------------------------- tokenizer
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, T, D)` part features -> `(B, T/4, Q)` code indices."""
        return self.model.encode(x)

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """`(B, T', Q)` -> `(B, 4 T', D)` part features."""
        return self.model.decode(indices)
