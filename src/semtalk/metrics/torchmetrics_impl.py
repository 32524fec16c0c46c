"""torchmetrics `Metric`s for the BEAT2 protocol, correct under DDP (states are summed or concatenated
across processes).

All inputs are channel-last. Batches may be padded: pass `lengths` `(B,)` with the valid frames of each
sequence (default: all `T`). Every metric gives the same value whether a set of sequences arrives in one
update or spread over many.

| class             | update(...)                                                       | compute()              |
|-------------------|-------------------------------------------------------------------|------------------------|
| `FGD`             | pred, target rot6d `(B, T, 330)`                                  | Frechet of features    |
| `BeatConsistency` | joints `(B, T, 55, 3)` or `(B, T, 165)`, audio `(B, S)` at 16 kHz  | n-120 weighted BC      |
| `Diversity`       | joints `(B, T, 55, 3)` or `(B, T, 165)`                           | L1div                  |
| `FaceMSE`         | pred, target vertices `(B, T, V, 3)`                              | MSE (m^2)              |
| `LVD`             | pred, target vertices `(B, T, V, 3)`                              | LVD (m)                |
| `GateAccuracy`    | psi `(B, N)`, per-frame sem `(B, 4N)`                             | token accuracy         |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from semtalk.body.joints import NUM_JOINTS
from semtalk.metrics.beat_consistency import file_beat_consistency, prepare_bc_audio
from semtalk.metrics.frechet import frechet_distance
from semtalk.metrics.gate import gate_correct
from semtalk.metrics.profiles import MetricProfile, get_profile


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().float().numpy()


def _joints_and_audio(joints: torch.Tensor, audio: torch.Tensor, name: str) -> torch.Tensor:
    if joints.ndim == 3:
        joints = joints.reshape(joints.shape[0], joints.shape[1], -1, 3)
    if joints.ndim != 4 or joints.shape[2] != NUM_JOINTS or audio.ndim != 2 or audio.shape[0] != joints.shape[0]:
        raise ValueError(
            f"{name} expects joints (B, T, {NUM_JOINTS}, 3) and audio (B, S), got {tuple(joints.shape)} and "
            f"{tuple(audio.shape)}"
        )
    return joints


def _lengths(lengths: torch.Tensor | None, batch: int, frames: int) -> list[int]:
    if lengths is None:
        return [frames] * batch
    out = [int(v) for v in torch.as_tensor(lengths).reshape(-1).tolist()]
    if len(out) != batch or any(not 0 < v <= frames for v in out):
        raise ValueError(f"lengths must hold {batch} values in 1..{frames}, got {out}")
    return out


def _zero() -> torch.Tensor:
    return torch.tensor(0.0, dtype=torch.float64)


class FGD(Metric):
    """Frechet Gesture Distance between features of predicted and ground-truth motion.

    Args:
        encoder: feature extractor `(B, T, 330)` -> `(B, T/16, D)`, e.g.
            `semtalk.metrics.fgd_encoder.load_fgd_encoder(...)`. It is kept in eval mode with gradients off.
        profile: `"semtalk2024"` (pytorch-fid Frechet) or `"corrected"` (exact symmetric form).
        window: each sequence is cut to a multiple of this many frames before encoding (32).
        encoder_name: names the encoder in reports; defaults to `encoder.identity` when present.

    The encoder is not a registered submodule, so it never enters the state dict of a model that holds
    this metric; it follows the metric's device moves (`.to(device)`, Lightning's placement) in float32.

    `update(pred, target, lengths=None)`: rot6d `(B, T, 330)` (first two rows of each joint's rotation
    matrix, joint-major; see `semtalk.metrics.motion_inputs.fgd_rot6d`). `compute()` -> float64 scalar.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(
        self,
        encoder: nn.Module,
        profile: str | MetricProfile = "semtalk2024",
        window: int | None = None,
        encoder_name: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.profile = get_profile(profile)
        self.window = window or self.profile.fgd_window
        object.__setattr__(self, "_encoder", encoder.eval().requires_grad_(False))
        self.encoder_name = encoder_name or getattr(encoder, "identity", type(encoder).__name__)
        self.add_state("pred_features", default=[], dist_reduce_fx="cat")
        self.add_state("target_features", default=[], dist_reduce_fx="cat")

    @property
    def encoder(self) -> nn.Module:
        return self._encoder

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any) -> FGD:
        out = super()._apply(fn, *args, **kwargs)
        self._encoder.to(self.device)
        return out

    @torch.no_grad()
    def _encode(self, x: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        cut = [n - n % self.window for n in lengths]
        if any(c == 0 for c in cut):
            raise ValueError(f"FGD needs sequences of at least {self.window} frames, got lengths {lengths}")
        param = next(iter(self._encoder.parameters()), None)
        x = x.to(param.device if param is not None else x.device, torch.float32)
        if len(set(cut)) == 1:
            feats = self._encoder(x[:, : cut[0]])
            return feats.reshape(-1, feats.shape[-1]).to(torch.float64)
        parts = [self._encoder(x[b : b + 1, : cut[b]]) for b in range(x.shape[0])]
        return torch.cat([p.reshape(-1, p.shape[-1]) for p in parts]).to(torch.float64)

    def update(self, pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        if pred.shape != target.shape or pred.ndim != 3:
            raise ValueError(
                f"FGD expects pred and target of the same shape (B, T, D), got {tuple(pred.shape)} "
                f"and {tuple(target.shape)}"
            )
        ls = _lengths(lengths, pred.shape[0], pred.shape[1])
        self.pred_features.append(self._encode(pred, ls))
        self.target_features.append(self._encode(target, ls))

    def compute(self) -> torch.Tensor:
        a = dim_zero_cat(self.pred_features).double().cpu().numpy()
        b = dim_zero_cat(self.target_features).double().cpu().numpy()
        return torch.tensor(frechet_distance(a, b, self.profile.frechet), dtype=torch.float64)


class BeatConsistency(Metric):
    """Beat consistency of generated motion with its speech, weighted by n - 120 per sequence.

    Args:
        mean_vel: `(55,)` mean joint speeds (m/s), BEAT2's `weights/mean_vel_smplxflame_30.npy`.
        profile: `"semtalk2024"` or `"corrected"` (see `semtalk.metrics.profiles`).

    `update(joints, audio, lengths=None, audio_lengths=None)`:
        joints `(B, T, 55, 3)` or `(B, T, 165)` positions in metres (global orientation kept, no
        translation); audio `(B, S)` raw 16 kHz waveforms (the profile applies its own resampling).
        Sequences need more than 120 frames and at least one onset in the scored window.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self, mean_vel: np.ndarray | torch.Tensor, profile: str | MetricProfile = "semtalk2024", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.profile = get_profile(profile)
        mv = np.asarray(mean_vel.cpu() if torch.is_tensor(mean_vel) else mean_vel, dtype=np.float32)
        if mv.shape != (NUM_JOINTS,):
            raise ValueError(f"mean_vel must have shape ({NUM_JOINTS},), got {mv.shape}")
        self.mean_vel = mv
        self.add_state("score_sum", default=_zero(), dist_reduce_fx="sum")
        self.add_state("weight_sum", default=_zero(), dist_reduce_fx="sum")

    def update(
        self,
        joints: torch.Tensor,
        audio: torch.Tensor,
        lengths: torch.Tensor | None = None,
        audio_lengths: torch.Tensor | None = None,
    ) -> None:
        joints = _joints_and_audio(joints, audio, "BeatConsistency")
        ls = _lengths(lengths, joints.shape[0], joints.shape[1])
        als = _lengths(audio_lengths, audio.shape[0], audio.shape[1])
        for b, (n, s) in enumerate(zip(ls, als)):
            x = _numpy(joints[b, :n])
            y = prepare_bc_audio(_numpy(audio[b, :s]), self.profile)
            score, weight = file_beat_consistency(x, y, self.mean_vel, self.profile)
            self.score_sum += score * weight
            self.weight_sum += weight

    def compute(self) -> torch.Tensor:
        return self.score_sum / self.weight_sum


class Diversity(Metric):
    """L1div: mean over frames of sum_165 |x - mean_t(x)| per sequence.

    `update(joints, lengths=None)`: `(B, T, 55, 3)` or `(B, T, 165)` joint positions in metres.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("abs_sum", default=_zero(), dist_reduce_fx="sum")
        self.add_state("frames", default=_zero(), dist_reduce_fx="sum")

    def update(self, joints: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        if joints.ndim not in (3, 4):
            raise ValueError(f"Diversity expects joints (B, T, 55, 3) or (B, T, 165), got {tuple(joints.shape)}")
        for b, n in enumerate(_lengths(lengths, joints.shape[0], joints.shape[1])):
            x = joints[b, :n].double()
            self.abs_sum += (x - x.mean(0, keepdim=True)).abs().sum().to(self.abs_sum.device)
            self.frames += n

    def compute(self) -> torch.Tensor:
        return self.abs_sum / self.frames


def _vertex_pair(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if pred.shape != target.shape or pred.ndim < 3:
        raise ValueError(
            f"{name} expects pred and target vertices of the same shape (B, T, V, 3), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )


class FaceMSE(Metric):
    """Mean squared vertex error of face-only meshes over the whole mesh (m^2); tables print x 1e8.

    `update(pred, target, lengths=None)`: vertices `(B, T, V, 3)` (see
    `semtalk.metrics.motion_inputs.face_vertices`).
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("sq_sum", default=_zero(), dist_reduce_fx="sum")
        self.add_state("count", default=_zero(), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        _vertex_pair(pred, target, "FaceMSE")
        for b, n in enumerate(_lengths(lengths, pred.shape[0], pred.shape[1])):
            d = pred[b, :n].double() - target[b, :n].double()
            self.sq_sum += d.square().sum().to(self.sq_sum.device)
            self.count += d.numel()

    def compute(self) -> torch.Tensor:
        return self.sq_sum / self.count


class LVD(Metric):
    """Face vertex "velocity" difference (m); tables print x 1e5.

    `semtalk2024`: mean |pred[t] - gt[t]| over frames 1..n-1 per sequence, sequences weighted by n (the
    published definition, a position error). `corrected`: sum |dpred - dgt| / sum (n-1) * values-per-frame.

    `update(pred, target, lengths=None)`: vertices `(B, T, V, 3)`.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, profile: str | MetricProfile = "semtalk2024", **kwargs) -> None:
        super().__init__(**kwargs)
        self.profile = get_profile(profile)
        self.add_state("numerator", default=_zero(), dist_reduce_fx="sum")
        self.add_state("denominator", default=_zero(), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        _vertex_pair(pred, target, "LVD")
        for b, n in enumerate(_lengths(lengths, pred.shape[0], pred.shape[1])):
            if n < 2:
                raise ValueError(f"LVD needs sequences of at least 2 frames, got {n}")
            p, g = pred[b, :n].double(), target[b, :n].double()
            if self.profile.lvd == "semtalk2024":
                self.numerator += ((p[1:] - g[1:]).abs().mean() * n).to(self.numerator.device)
                self.denominator += n
            else:
                d = ((p[1:] - p[:-1]) - (g[1:] - g[:-1])).abs()
                self.numerator += d.sum().to(self.numerator.device)
                self.denominator += d.numel()

    def compute(self) -> torch.Tensor:
        return self.numerator / self.denominator


class GateAccuracy(Metric):
    """Per-token accuracy of the Sem-gate: `psi > beta` against `mean_4(sem) > 0`.

    `update(psi, sem, mask=None)`: psi `(B, N)` gate probability; sem `(B, 4N)` per-frame semantic scores;
    mask `(B, N)` bool for tokens to score.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, beta: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.beta = beta
        self.add_state("correct", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, psi: torch.Tensor, sem: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        correct, total = gate_correct(psi, sem, self.beta, mask)
        self.correct += correct.to(self.correct.device)
        self.total += total.to(self.total.device)

    def compute(self) -> torch.Tensor:
        return self.correct.double() / self.total.double()
