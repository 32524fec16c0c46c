"""Synchrony of motion with speech beyond beat consistency: BC contrast, lip-sync and gesture-sync curves.

BC alone cannot tell speech-synced motion from motion seconds out of sync: speech onsets are so dense that
almost every motion beat lies near one (on BEAT2's `2_scott_0_1_1` BC barely moves when the audio is
shifted by seconds). These measures compare the true alignment with deliberately misaligned ones.

1. **BC contrast** (`bc_contrast`): BC at the true alignment minus the mean BC over fixed circular audio
   offsets (default +-1, +-2, +-3 s), with the spread (sample std) of the shifted BCs. Near 0 means BC
   does not depend on the alignment at all.
2. **Lagged correlation curves** (`sync_curve`): the Pearson correlation between an audio feature `a` and
   a motion feature `m` at lags `tau` from `-max_lag` to `+max_lag`, computed on the overlap of
   `a[t]` and `m[t + tau]`. **Sign convention: a positive lag means the motion follows the audio** - motion
   delayed by 100 ms peaks at about +0.1 s. Each curve is summarised by
   * `z`: the lag-0 correlation as a z-score against the correlations at `null_min_lag_s <= |lag| <=
     max_lag_s` (default 1 s to 5 s), the lags at which speech and motion should no longer be coupled.
     These null values are strongly autocorrelated, so `z` is a descriptive contrast, not a p-value.
   * `peak_lag_s`, `peak_corr`: the maximum of the curve within `+-peak_window_s` (0.5 s), refined to
     a fraction of a frame by a parabola through the maximum and its two neighbours.
3. **Lip-sync** (`lipsync`): the curve of the audio RMS envelope against the jaw opening (lip-sync `z`
   and peak lag), and of the audio onset strength against the expression speed.
4. **Gesture sync** (`gesture_sync`): the curve of the audio onset strength against the mean speed of the
   upper-body and hand joints. It is reported as a curve and its lag-0 `z`, and means no more than that.

Audio features are sampled at the motion frames: frame `i` is time `i / fps`, audio sample `s` is time
`s / 16000`. Jaw opening is the x component of the jaw's axis-angle (`poses[:, 66]`): for SMPL-X the jaw
opens by rotating about its x axis, and for the small rotations a jaw makes the x component equals that
rotation angle to first order. It keeps its sign, unlike the angle magnitude, which folds a jaw closing
past its rest pose onto an opening and adds sideways and twisting motion that is not opening.

A dataset curve is the overlap-weighted mean of the per-clip curves (`combine_curves`), which gives the
dataset's `r0`, `peak_lag_s` and `peak_corr`; the dataset `z` is the frame-weighted mean of the per-clip
z-scores. (A z taken on the mean curve would grow with the number of clips, since averaging shrinks the
spread of the null lags but not structure that all clips share - e.g. every clip starting in silence with
the face at rest, which lets motion correlate at lag 0 with another clip's audio.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from semtalk.body.joints import FPS, HANDS_JOINTS, JAW_JOINT, NUM_JOINTS, SAMPLE_RATE, UPPER_JOINTS
from semtalk.metrics.beat_consistency import audio_onsets, bc_motion_input, beat_score, joint_speed, motion_beats
from semtalk.metrics.profiles import MetricProfile, get_profile

#: Circular audio offsets (s) against which BC contrast compares the true alignment.
DEFAULT_BC_OFFSETS_S: tuple[float, ...] = (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0)
#: Lags (s) the correlation curves span on each side of 0.
DEFAULT_MAX_LAG_S = 5.0
#: Lags at least this far from 0 (s) form the null distribution of the z-score.
DEFAULT_NULL_MIN_LAG_S = 1.0
#: The peak lag is searched within this many seconds of 0.
DEFAULT_PEAK_WINDOW_S = 0.5
#: A lag is measured only while the overlap of the two signals covers at least this fraction of the clip.
MIN_OVERLAP_FRACTION = 0.5
#: Samples of the centred window of the RMS envelope (64 ms at 16 kHz).
RMS_WINDOW = 1024
#: Hop of librosa's onset-strength envelope (the hop of BC's onset detector).
ONSET_HOP = 512
#: Joints whose mean speed the gesture-sync curve uses: upper body and both hands.
GESTURE_JOINTS: tuple[int, ...] = UPPER_JOINTS + HANDS_JOINTS


# ----------------------------------------------------------------------------------------------------
# features at the motion frame rate


def _mono(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"audio must be a mono waveform (S,), got shape {y.shape}")
    return y


def audio_frames(num_samples: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS) -> int:
    """Motion frames whose time `i / fps` lies inside `num_samples` of audio."""
    return int(num_samples * fps // sample_rate)


def audio_rms_envelope(
    y: np.ndarray, n_frames: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS, window: int = RMS_WINDOW
) -> np.ndarray:
    """`(S,)` waveform -> `(n_frames,)` RMS of the `window` samples centred on each frame time `i / fps`
    (zeros beyond the ends)."""
    y = _mono(y).astype(np.float64)
    half = window // 2
    sq = np.concatenate([np.zeros(half + 1), y * y, np.zeros(window)])
    cum = np.cumsum(sq)
    centres = np.round(np.arange(n_frames) * sample_rate / fps).astype(np.int64) + half + 1
    centres = np.minimum(centres, len(cum) - half - 1)
    energy = (cum[centres + half - 1] - cum[centres - half - 1]) / window
    return np.sqrt(np.maximum(energy, 0.0))


def audio_onset_strength(
    y: np.ndarray, n_frames: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS, hop_length: int = ONSET_HOP
) -> np.ndarray:
    """`(S,)` waveform -> `(n_frames,)` librosa's spectral-flux onset strength (hop 512, the envelope BC's
    onset detector peak-picks), linearly interpolated at the frame times `i / fps`."""
    import librosa  # imported on use: it takes seconds to load

    y = np.ascontiguousarray(_mono(y))
    env = librosa.onset.onset_strength(y=y, sr=sample_rate, hop_length=hop_length)
    times = np.arange(len(env)) * hop_length / sample_rate
    return np.interp(np.arange(n_frames) / fps, times, env).astype(np.float64)


def jaw_opening(poses: np.ndarray) -> np.ndarray:
    """`(T, 165)` or `(T, 55, 3)` axis-angle -> `(T,)` jaw opening (rad): the x component of the jaw
    joint's axis-angle (see the module docstring for why not the angle magnitude)."""
    p = np.asarray(poses)
    if p.ndim == 2 and p.shape[1] == NUM_JOINTS * 3:
        p = p.reshape(p.shape[0], NUM_JOINTS, 3)
    if p.ndim != 3 or p.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"poses must be (T, {NUM_JOINTS * 3}) or (T, {NUM_JOINTS}, 3) axis-angle, got {p.shape}")
    return p[:, JAW_JOINT, 0].astype(np.float64)


def feature_speed(x: np.ndarray, fps: int = FPS) -> np.ndarray:
    """`(T, D)` feature trajectory (e.g. expression coefficients) -> `(T,)` L2 speed per second, with the
    stencil of `joint_speed` (forward difference first, central in the middle, backward last)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"a feature trajectory must be (T, D) with T >= 2, got {x.shape}")
    return np.linalg.norm(np.gradient(x, 1.0 / fps, axis=0), axis=1)


def group_speed(joints: np.ndarray, joint_ids: Sequence[int] = GESTURE_JOINTS, fps: int = FPS) -> np.ndarray:
    """`(T, 55, 3)` or `(T, 165)` positions (m) -> `(T,)` mean speed (m/s) of the joints `joint_ids`
    (computed in float64)."""
    return joint_speed(np.asarray(joints, dtype=np.float64), fps)[:, list(joint_ids)].mean(axis=1)


# ----------------------------------------------------------------------------------------------------
# lagged correlation


@dataclass(frozen=True)
class SyncCurve:
    """A lagged-correlation curve and its summary.

    Attributes:
        lags_s: `(L,)` lags in seconds, `-max_lag .. +max_lag` in frame steps (positive: motion follows).
        corr: `(L,)` correlation at each lag; NaN where the lag was not measured.
        weight: `(L,)` overlap frames behind each value (summed over clips for a dataset curve; 0 where not
            measured).
        fps: frame rate of the lag grid.
        null_min_lag_s, peak_window_s: the settings of the summary below.
        r0: correlation at lag 0.
        z: `(r0 - null_mean) / null_std`, NaN when fewer than 2 null lags were measured or they are constant;
            for a dataset curve (`combine_curves`), the mean of the per-clip z-scores weighted by `z_weight`.
        z_weight: the weight of `z` when curves are combined (frames of the clip, summed over the clips with
            a finite z; 0 when z is NaN).
        null_mean, null_std: mean and sample std of the correlations at `|lag| >= null_min_lag_s`.
        peak_lag_s, peak_corr: the maximum within `+-peak_window_s`, refined by a parabola.
    """

    lags_s: np.ndarray
    corr: np.ndarray
    weight: np.ndarray
    fps: int
    null_min_lag_s: float
    peak_window_s: float
    r0: float
    z: float
    null_mean: float
    null_std: float
    peak_lag_s: float
    peak_corr: float
    z_weight: float


def lag_grid(max_lag_s: float = DEFAULT_MAX_LAG_S, fps: int = FPS) -> np.ndarray:
    """`(2M + 1,)` integer lags in frames, `M = round(max_lag_s * fps)`."""
    m = int(round(max_lag_s * fps))
    if m < 1:
        raise ValueError(f"max_lag_s must cover at least one frame, got {max_lag_s}")
    return np.arange(-m, m + 1)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / denom) if denom > 0 else 0.0


def lagged_correlation(
    reference: np.ndarray,
    motion: np.ndarray,
    max_lag_s: float = DEFAULT_MAX_LAG_S,
    fps: int = FPS,
    min_overlap_fraction: float = MIN_OVERLAP_FRACTION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pearson correlation of `reference[t]` with `motion[t + lag]` at every lag of `lag_grid`.

    Args:
        reference: `(T,)` audio feature. motion: `(T,)` motion feature at the same frames.

    Returns:
        `(lags (L,) frames, corr (L,), weight (L,))`: a lag is measured when the overlap `T - |lag|` is at
        least `min_overlap_fraction * T` (else corr NaN, weight 0); weight is the overlap. A constant
        segment correlates 0.
    """
    a = np.asarray(reference, dtype=np.float64).reshape(-1)
    b = np.asarray(motion, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"reference and motion must have the same number of frames, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("reference and motion features must be finite (found NaN/Inf)")
    n = a.shape[0]
    lags = lag_grid(max_lag_s, fps)
    corr = np.full(lags.shape, np.nan)
    weight = np.zeros(lags.shape)
    min_overlap = max(3, int(np.ceil(min_overlap_fraction * n)))
    for k, lag in enumerate(lags):
        overlap = n - abs(int(lag))
        if overlap < min_overlap:
            continue
        if lag >= 0:
            corr[k] = _pearson(a[: n - lag], b[lag:])
        else:
            corr[k] = _pearson(a[-lag:], b[: n + lag])
        weight[k] = overlap
    return lags, corr, weight


def summarise_curve(
    lags_s: np.ndarray,
    corr: np.ndarray,
    weight: np.ndarray,
    fps: int = FPS,
    null_min_lag_s: float = DEFAULT_NULL_MIN_LAG_S,
    peak_window_s: float = DEFAULT_PEAK_WINDOW_S,
) -> SyncCurve:
    """Lag-0 z-score and peak of a correlation curve (see `SyncCurve`)."""
    lags_s = np.asarray(lags_s, dtype=np.float64)
    corr = np.asarray(corr, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    frames = np.round(lags_s * fps).astype(np.int64)
    measured = np.isfinite(corr) & (weight > 0)
    zero = np.flatnonzero(frames == 0)
    if zero.size != 1 or not measured[zero[0]]:
        raise ValueError("the correlation curve has no measured value at lag 0")
    r0 = float(corr[zero[0]])
    null = corr[measured & (np.abs(frames) >= int(round(null_min_lag_s * fps)))]
    null_mean = float(null.mean()) if null.size else float("nan")
    null_std = float(null.std(ddof=1)) if null.size >= 2 else float("nan")
    z = (r0 - null_mean) / null_std if null_std > 0 else float("nan")

    window = np.flatnonzero(measured & (np.abs(frames) <= int(round(peak_window_s * fps))))
    k = int(window[np.argmax(corr[window])])
    shift = 0.0
    if k - 1 in window and k + 1 in window:
        left, mid, right = corr[k - 1], corr[k], corr[k + 1]
        curvature = left - 2 * mid + right
        if curvature < 0:
            shift = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    peak_corr = float(corr[k] - 0.25 * (corr[k - 1] - corr[k + 1]) * shift) if shift else float(corr[k])
    return SyncCurve(
        lags_s=lags_s,
        corr=corr,
        weight=weight,
        fps=fps,
        null_min_lag_s=null_min_lag_s,
        peak_window_s=peak_window_s,
        r0=r0,
        z=float(z),
        null_mean=null_mean,
        null_std=null_std,
        peak_lag_s=float((frames[k] + shift) / fps),
        peak_corr=peak_corr,
        z_weight=float(weight[zero[0]]) if np.isfinite(z) else 0.0,
    )


def sync_curve(
    reference: np.ndarray,
    motion: np.ndarray,
    fps: int = FPS,
    max_lag_s: float = DEFAULT_MAX_LAG_S,
    null_min_lag_s: float = DEFAULT_NULL_MIN_LAG_S,
    peak_window_s: float = DEFAULT_PEAK_WINDOW_S,
) -> SyncCurve:
    """Lagged correlation of an audio feature `(T,)` with a motion feature `(T,)`, summarised (positive
    lag: the motion follows the audio)."""
    lags, corr, weight = lagged_correlation(reference, motion, max_lag_s, fps)
    return summarise_curve(lags / fps, corr, weight, fps, null_min_lag_s, peak_window_s)


def combine_curves(curves: Sequence[SyncCurve]) -> SyncCurve:
    """The overlap-weighted mean of per-clip curves on the same lag grid, summarised again, with `z` the
    `z_weight`-weighted mean of the clips' z-scores (NaN when none is finite)."""
    if not curves:
        raise ValueError("no curves to combine")
    first = curves[0]
    for c in curves[1:]:
        if c.lags_s.shape != first.lags_s.shape or c.fps != first.fps:
            raise ValueError("curves to combine must share the lag grid (same max_lag_s and fps)")
    total = np.sum([c.weight for c in curves], axis=0)
    weighted = np.sum([np.where(c.weight > 0, c.corr, 0.0) * c.weight for c in curves], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(total > 0, weighted / np.where(total > 0, total, 1.0), np.nan)
    pooled = summarise_curve(first.lags_s, mean, total, first.fps, first.null_min_lag_s, first.peak_window_s)
    z_weight = float(sum(c.z_weight for c in curves))
    z_sum = float(sum(c.z * c.z_weight for c in curves if c.z_weight > 0))
    return replace(pooled, z=z_sum / z_weight if z_weight > 0 else float("nan"), z_weight=z_weight)


# ----------------------------------------------------------------------------------------------------
# lip sync and gesture sync


@dataclass(frozen=True)
class LipSync:
    """Lip-sync curves of one clip (or a dataset).

    Attributes:
        jaw: audio RMS envelope vs jaw opening; its `z` and `peak_lag_s` are the lip-sync score.
        expression: audio onset strength vs expression speed.
    """

    jaw: SyncCurve
    expression: SyncCurve


def _aligned_frames(n_motion: int, audio: np.ndarray, sample_rate: int, fps: int) -> int:
    n = min(n_motion, audio_frames(len(audio), sample_rate, fps))
    if n < 3:
        raise ValueError(f"synchrony needs at least 3 frames of motion with audio, got {n}")
    return n


def lipsync(
    audio: np.ndarray,
    poses: np.ndarray,
    expressions: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    fps: int = FPS,
    max_lag_s: float = DEFAULT_MAX_LAG_S,
    null_min_lag_s: float = DEFAULT_NULL_MIN_LAG_S,
    peak_window_s: float = DEFAULT_PEAK_WINDOW_S,
) -> LipSync:
    """Lip-sync of one clip.

    Args:
        audio: `(S,)` 16 kHz waveform starting at frame 0.
        poses: `(T, 165)` axis-angle. expressions: `(T, 100)` FLAME coefficients.

    Motion and audio are cut to the frames both cover.
    """
    y = _mono(audio)
    p = np.asarray(poses)
    e = np.asarray(expressions)
    if e.ndim != 2 or e.shape[0] != p.shape[0]:
        raise ValueError(f"expressions must be (T, D) with the poses' {p.shape[0]} frames, got {e.shape}")
    n = _aligned_frames(p.shape[0], y, sample_rate, fps)
    settings = dict(fps=fps, max_lag_s=max_lag_s, null_min_lag_s=null_min_lag_s, peak_window_s=peak_window_s)
    jaw = sync_curve(audio_rms_envelope(y, n, sample_rate, fps), jaw_opening(p[:n]), **settings)
    expr = sync_curve(audio_onset_strength(y, n, sample_rate, fps), feature_speed(e[:n], fps), **settings)
    return LipSync(jaw=jaw, expression=expr)


def gesture_sync(
    joints: np.ndarray,
    audio: np.ndarray,
    joint_ids: Sequence[int] = GESTURE_JOINTS,
    sample_rate: int = SAMPLE_RATE,
    fps: int = FPS,
    max_lag_s: float = DEFAULT_MAX_LAG_S,
    null_min_lag_s: float = DEFAULT_NULL_MIN_LAG_S,
    peak_window_s: float = DEFAULT_PEAK_WINDOW_S,
) -> SyncCurve:
    """Audio onset strength vs the mean speed of the upper-body and hand joints of one clip.

    Args:
        joints: `(T, 55, 3)` or `(T, 165)` positions in metres (e.g. `semtalk.metrics.body_joints`).
        audio: `(S,)` 16 kHz waveform starting at frame 0.
    """
    y = _mono(audio)
    speed = group_speed(joints, joint_ids, fps)
    n = _aligned_frames(speed.shape[0], y, sample_rate, fps)
    return sync_curve(
        audio_onset_strength(y, n, sample_rate, fps), speed[:n], fps, max_lag_s, null_min_lag_s, peak_window_s
    )


# ----------------------------------------------------------------------------------------------------
# BC contrast


@dataclass(frozen=True)
class BCContrastResult:
    """BC of one clip at its true alignment and at circular audio offsets.

    Attributes:
        bc: BC at offset 0 (equal to `file_beat_consistency`).
        offsets_s: `(K,)` the audio offsets (s); positive: the audio is delayed against the motion.
        shifted: `(K,)` BC at each offset; NaN where the shifted audio has no onset in the scored window.
        contrast: `bc - mean(shifted)`.
        spread: sample std of `shifted`.
        weight: the clip's BC weight `n - 120`.
    """

    bc: float
    offsets_s: np.ndarray
    shifted: np.ndarray
    contrast: float
    spread: float
    weight: int


def shift_audio(
    audio: np.ndarray, offset_s: float, n_frames: int, sample_rate: int = SAMPLE_RATE, fps: int = FPS
) -> np.ndarray:
    """Delay the part of `audio` that a motion of `n_frames` covers by `offset_s` seconds, circularly
    (samples pushed past its end come back at its start); samples beyond it stay. Returns a new array."""
    y = _mono(audio)
    covered = min(len(y), int(sample_rate / fps * n_frames))
    out = y.copy()
    out[:covered] = np.roll(y[:covered], int(round(offset_s * sample_rate)))
    return out


def bc_at_offsets(
    joints: np.ndarray,
    audio: np.ndarray,
    mean_vel: np.ndarray,
    offsets_s: Sequence[float],
    profile: str | MetricProfile = "corrected",
) -> tuple[np.ndarray, int]:
    """BC of one clip against its audio circularly shifted by each of `offsets_s` (see `shift_audio`).

    Args:
        joints: `(n, 55, 3)` or `(n, 165)` positions in metres.
        audio: the 16 kHz waveform, already passed through `prepare_bc_audio` (as `file_beat_consistency`).
        mean_vel: `(55,)` mean joint speeds.

    Returns:
        `(scores (K,), weight)`; a score is NaN where the shifted audio has no onset in the scored window.
        Offset 0 gives exactly `file_beat_consistency`.
    """
    prof = get_profile(profile)
    x = bc_motion_input(joints, prof)
    n = x.shape[0]
    beats = motion_beats(x, mean_vel, prof)
    scores = []
    for off in offsets_s:
        y = shift_audio(audio, off, n, SAMPLE_RATE, prof.fps) if off else _mono(audio)
        onsets = audio_onsets(y, n, prof)
        scores.append(beat_score(beats, onsets, prof) if onsets.size else float("nan"))
    return np.asarray(scores, dtype=np.float64), n - 2 * prof.bc_margin


def bc_contrast(
    joints: np.ndarray,
    audio: np.ndarray,
    mean_vel: np.ndarray,
    profile: str | MetricProfile = "corrected",
    offsets_s: Sequence[float] = DEFAULT_BC_OFFSETS_S,
) -> BCContrastResult:
    """BC at the true alignment minus the mean BC at circular audio offsets (default +-1, +-2, +-3 s).

    Inputs as `bc_at_offsets`. Raises ValueError when the unshifted audio has no onset in the window.
    """
    offsets = np.asarray(offsets_s, dtype=np.float64)
    if offsets.size == 0 or np.any(offsets == 0):
        raise ValueError(f"BC contrast needs non-zero audio offsets, got {list(offsets_s)}")
    scores, weight = bc_at_offsets(joints, audio, mean_vel, (0.0, *offsets.tolist()), profile)
    if not np.isfinite(scores[0]):
        raise ValueError("no audio onsets in the scored window: beat consistency is undefined for this clip")
    bc, shifted = float(scores[0]), scores[1:]
    valid = shifted[np.isfinite(shifted)]
    mean = float(valid.mean()) if valid.size else float("nan")
    spread = float(valid.std(ddof=1)) if valid.size >= 2 else float("nan")
    return BCContrastResult(bc, offsets, shifted, bc - mean, spread, weight)
