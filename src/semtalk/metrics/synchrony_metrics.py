"""torchmetrics `Metric`s for the synchrony measures of `semtalk.metrics.synchrony`, correct under DDP (every
state is a sum). Each gives the same value whether the sequences arrive in one update or in many.

| class         | update(...)                                                       | compute() -> dict             |
|---------------|-------------------------------------------------------------------|-------------------------------|
| `BCContrast`  | joints `(B, T, 55, 3)` or `(B, T, 165)`, audio `(B, S)` at 16 kHz | bc, bc_contrast, shifted BCs  |
| `LipSync`     | poses `(B, T, 165)`, expressions `(B, T, 100)`, audio `(B, S)`    | lipsync_z, lipsync_lag_s, ... |
| `GestureSync` | joints `(B, T, 55, 3)` or `(B, T, 165)`, audio `(B, S)`           | gesture_sync_z, the curve     |

Batches may be padded: `lengths` `(B,)` gives the valid frames and `audio_lengths` `(B,)` the valid samples of
each sequence. The dataset BC contrast is the n-120 weighted mean of the per-clip values; the dataset
correlation curves are the overlap-weighted means of the per-clip curves and the dataset z-scores the
frame-weighted means of the per-clip z-scores (`combine_curves`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torchmetrics import Metric

from semtalk.body.joints import FPS, NUM_JOINTS, SAMPLE_RATE
from semtalk.metrics.beat_consistency import prepare_bc_audio
from semtalk.metrics.profiles import MetricProfile, get_profile
from semtalk.metrics.synchrony import (
    DEFAULT_BC_OFFSETS_S,
    DEFAULT_MAX_LAG_S,
    DEFAULT_NULL_MIN_LAG_S,
    DEFAULT_PEAK_WINDOW_S,
    GESTURE_JOINTS,
    SyncCurve,
    bc_contrast,
    gesture_sync,
    lag_grid,
    lipsync,
    summarise_curve,
)
from semtalk.metrics.torchmetrics_impl import _joints_and_audio, _lengths, _numpy, _zero


class _CurveState:
    """Summed states of one correlation curve: weight * corr and weight per lag, and weight * z and the
    weight of z (see `combine_curves`)."""

    def __init__(self, metric: Metric, prefix: str, size: int) -> None:
        self.prefix = prefix
        zeros = torch.zeros(size, dtype=torch.float64)
        metric.add_state(f"{prefix}_corr_sum", default=zeros.clone(), dist_reduce_fx="sum")
        metric.add_state(f"{prefix}_weight_sum", default=zeros.clone(), dist_reduce_fx="sum")
        metric.add_state(f"{prefix}_z_sum", default=_zero(), dist_reduce_fx="sum")
        metric.add_state(f"{prefix}_z_weight", default=_zero(), dist_reduce_fx="sum")

    def add(self, metric: Metric, curve: SyncCurve) -> None:
        corr_sum = getattr(metric, f"{self.prefix}_corr_sum")
        weight_sum = getattr(metric, f"{self.prefix}_weight_sum")
        w = torch.as_tensor(curve.weight, dtype=torch.float64, device=corr_sum.device)
        r = torch.as_tensor(np.where(curve.weight > 0, curve.corr, 0.0), dtype=torch.float64, device=corr_sum.device)
        corr_sum += r * w
        weight_sum += w
        if curve.z_weight > 0:
            getattr(metric, f"{self.prefix}_z_sum").add_(curve.z * curve.z_weight)
            getattr(metric, f"{self.prefix}_z_weight").add_(curve.z_weight)

    def curve(self, metric: Metric, lags_s: np.ndarray, fps: int, null_min_lag_s: float, peak_window_s: float):
        total = getattr(metric, f"{self.prefix}_weight_sum").detach().cpu().double().numpy()
        weighted = getattr(metric, f"{self.prefix}_corr_sum").detach().cpu().double().numpy()
        mean = np.full_like(total, np.nan)
        np.divide(weighted, total, out=mean, where=total > 0)
        pooled = summarise_curve(lags_s, mean, total, fps, null_min_lag_s, peak_window_s)
        z_weight = float(getattr(metric, f"{self.prefix}_z_weight"))
        z = float(getattr(metric, f"{self.prefix}_z_sum")) / z_weight if z_weight > 0 else float("nan")
        return replace(pooled, z=z, z_weight=z_weight)


class _CurveMetric(Metric):
    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        max_lag_s: float = DEFAULT_MAX_LAG_S,
        null_min_lag_s: float = DEFAULT_NULL_MIN_LAG_S,
        peak_window_s: float = DEFAULT_PEAK_WINDOW_S,
        fps: int = FPS,
        sample_rate: int = SAMPLE_RATE,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.max_lag_s = max_lag_s
        self.null_min_lag_s = null_min_lag_s
        self.peak_window_s = peak_window_s
        self.fps = fps
        self.sample_rate = sample_rate
        self.lags_s = lag_grid(max_lag_s, fps) / fps

    @property
    def _settings(self) -> dict:
        return dict(
            sample_rate=self.sample_rate,
            fps=self.fps,
            max_lag_s=self.max_lag_s,
            null_min_lag_s=self.null_min_lag_s,
            peak_window_s=self.peak_window_s,
        )

    def _curve(self, state: _CurveState) -> SyncCurve:
        return state.curve(self, self.lags_s, self.fps, self.null_min_lag_s, self.peak_window_s)

    def _curve_dict(self, prefix: str, curve: SyncCurve) -> dict[str, torch.Tensor]:
        def t(v: float | np.ndarray) -> torch.Tensor:
            return torch.as_tensor(v, dtype=torch.float64)

        return {
            f"{prefix}_z": t(curve.z),
            f"{prefix}_r0": t(curve.r0),
            f"{prefix}_lag_s": t(curve.peak_lag_s),
            f"{prefix}_peak_r": t(curve.peak_corr),
            f"{prefix}_curve": t(curve.corr),
        }


class LipSync(_CurveMetric):
    """Lip-sync: audio RMS envelope vs jaw opening, and audio onset strength vs expression speed.

    Args:
        max_lag_s, null_min_lag_s, peak_window_s: see `semtalk.metrics.synchrony` (5 s, 1 s, 0.5 s).

    `update(poses, expressions, audio, lengths=None, audio_lengths=None)`: poses `(B, T, 165)` axis-angle,
    expressions `(B, T, 100)`, audio `(B, S)` 16 kHz waveforms starting at frame 0.

    `compute()` -> dict of float64 tensors: `lipsync_z`, `lipsync_r0`, `lipsync_lag_s` (peak lag, positive:
    the jaw follows the audio), `lipsync_peak_r`, `lipsync_curve` `(L,)`, the same five for
    `expression_sync_*`, and `lags_s` `(L,)`.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        size = len(self.lags_s)
        self._jaw = _CurveState(self, "jaw", size)
        self._expression = _CurveState(self, "expression", size)

    def update(
        self,
        poses: torch.Tensor,
        expressions: torch.Tensor,
        audio: torch.Tensor,
        lengths: torch.Tensor | None = None,
        audio_lengths: torch.Tensor | None = None,
    ) -> None:
        if (
            poses.ndim != 3
            or expressions.ndim != 3
            or audio.ndim != 2
            or not (poses.shape[:2] == expressions.shape[:2] and audio.shape[0] == poses.shape[0])
        ):
            raise ValueError(
                f"LipSync expects poses (B, T, 165), expressions (B, T, 100) and audio (B, S), got "
                f"{tuple(poses.shape)}, {tuple(expressions.shape)} and {tuple(audio.shape)}"
            )
        ls = _lengths(lengths, poses.shape[0], poses.shape[1])
        als = _lengths(audio_lengths, audio.shape[0], audio.shape[1])
        for b, (n, s) in enumerate(zip(ls, als)):
            res = lipsync(_numpy(audio[b, :s]), _numpy(poses[b, :n]), _numpy(expressions[b, :n]), **self._settings)
            self._jaw.add(self, res.jaw)
            self._expression.add(self, res.expression)

    def compute(self) -> dict[str, torch.Tensor]:
        out = self._curve_dict("lipsync", self._curve(self._jaw))
        out.update(self._curve_dict("expression_sync", self._curve(self._expression)))
        out["lags_s"] = torch.as_tensor(self.lags_s, dtype=torch.float64)
        return out


class GestureSync(_CurveMetric):
    """Gesture sync: audio onset strength vs the mean speed of the upper-body and hand joints.

    Args:
        joint_ids: joints whose mean speed is used (default: the 13 upper-body and 30 hand joints).
        max_lag_s, null_min_lag_s, peak_window_s: see `semtalk.metrics.synchrony`.

    `update(joints, audio, lengths=None, audio_lengths=None)`: joints `(B, T, 55, 3)` or `(B, T, 165)` in
    metres, audio `(B, S)` 16 kHz waveforms starting at frame 0.

    `compute()` -> dict: `gesture_sync_z`, `gesture_sync_r0`, `gesture_sync_lag_s`, `gesture_sync_peak_r`,
    `gesture_sync_curve` `(L,)` and `lags_s` `(L,)`.
    """

    def __init__(self, joint_ids: Sequence[int] = GESTURE_JOINTS, **kwargs) -> None:
        super().__init__(**kwargs)
        self.joint_ids = tuple(int(j) for j in joint_ids)
        self._gesture = _CurveState(self, "gesture", len(self.lags_s))

    def update(
        self,
        joints: torch.Tensor,
        audio: torch.Tensor,
        lengths: torch.Tensor | None = None,
        audio_lengths: torch.Tensor | None = None,
    ) -> None:
        joints = _joints_and_audio(joints, audio, "GestureSync")
        ls = _lengths(lengths, joints.shape[0], joints.shape[1])
        als = _lengths(audio_lengths, audio.shape[0], audio.shape[1])
        for b, (n, s) in enumerate(zip(ls, als)):
            curve = gesture_sync(_numpy(joints[b, :n]), _numpy(audio[b, :s]), self.joint_ids, **self._settings)
            self._gesture.add(self, curve)

    def compute(self) -> dict[str, torch.Tensor]:
        out = self._curve_dict("gesture_sync", self._curve(self._gesture))
        out["lags_s"] = torch.as_tensor(self.lags_s, dtype=torch.float64)
        return out


class BCContrast(Metric):
    """BC at the true alignment minus BC with the audio circularly shifted (default +-1, +-2, +-3 s).

    Args:
        mean_vel: `(55,)` mean joint speeds (m/s), BEAT2's `weights/mean_vel_smplxflame_30.npy`.
        profile: `"semtalk2024"` or `"corrected"` (as `BeatConsistency`).
        offsets_s: the non-zero audio offsets in seconds (positive: audio delayed against the motion).

    `update(joints, audio, lengths=None, audio_lengths=None)`: as `BeatConsistency` (raw 16 kHz audio; the
    profile applies its own resampling).

    `compute()` -> dict of float64 tensors: `bc` (equal to `BeatConsistency`), `bc_shifted` `(K,)` (dataset BC
    at each offset, weighted over the clips whose shifted audio has onsets), `bc_shifted_mean`,
    `bc_shifted_std` (sample std over the offsets) and `bc_contrast` = `bc - bc_shifted_mean`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(
        self,
        mean_vel: np.ndarray | torch.Tensor,
        profile: str | MetricProfile = "semtalk2024",
        offsets_s: Sequence[float] = DEFAULT_BC_OFFSETS_S,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.profile = get_profile(profile)
        mv = np.asarray(mean_vel.cpu() if torch.is_tensor(mean_vel) else mean_vel, dtype=np.float32)
        if mv.shape != (NUM_JOINTS,):
            raise ValueError(f"mean_vel must have shape ({NUM_JOINTS},), got {mv.shape}")
        self.mean_vel = mv
        self.offsets_s = tuple(float(o) for o in offsets_s)
        if not self.offsets_s or 0.0 in self.offsets_s:
            raise ValueError(f"BCContrast needs non-zero audio offsets, got {self.offsets_s}")
        k = len(self.offsets_s)
        self.add_state("score_sum", default=_zero(), dist_reduce_fx="sum")
        self.add_state("weight_sum", default=_zero(), dist_reduce_fx="sum")
        self.add_state("shifted_sum", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("shifted_weight", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")

    def update(
        self,
        joints: torch.Tensor,
        audio: torch.Tensor,
        lengths: torch.Tensor | None = None,
        audio_lengths: torch.Tensor | None = None,
    ) -> None:
        joints = _joints_and_audio(joints, audio, "BCContrast")
        ls = _lengths(lengths, joints.shape[0], joints.shape[1])
        als = _lengths(audio_lengths, audio.shape[0], audio.shape[1])
        for b, (n, s) in enumerate(zip(ls, als)):
            y = prepare_bc_audio(_numpy(audio[b, :s]), self.profile)
            res = bc_contrast(_numpy(joints[b, :n]), y, self.mean_vel, self.profile, self.offsets_s)
            valid = np.isfinite(res.shifted)
            dev = self.shifted_sum.device
            self.score_sum += res.bc * res.weight
            self.weight_sum += res.weight
            self.shifted_sum += torch.as_tensor(np.where(valid, res.shifted, 0.0) * res.weight, device=dev)
            self.shifted_weight += torch.as_tensor(valid * float(res.weight), device=dev)

    def compute(self) -> dict[str, torch.Tensor]:
        bc = self.score_sum / self.weight_sum
        shifted = self.shifted_sum / self.shifted_weight  # NaN for an offset no clip could be scored at
        valid = shifted[torch.isfinite(shifted)]
        mean = valid.mean() if valid.numel() else torch.tensor(float("nan"), dtype=torch.float64)
        std = valid.std() if valid.numel() >= 2 else torch.tensor(float("nan"), dtype=torch.float64)
        return {
            "bc": bc,
            "bc_contrast": bc - mean.to(bc.device),
            "bc_shifted": shifted,
            "bc_shifted_mean": mean,
            "bc_shifted_std": std,
        }
