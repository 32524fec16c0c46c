"""Beat consistency (BC, "align score"): do the upper body's motion beats fall on the audio onsets?

Pieces, each callable on its own:

1. `audio_onsets(y, n_frames, profile)` - onset times (s) of a 16 kHz waveform inside the scored window,
   measured from the window start (2 s into the clip).
2. `motion_beats(joints, mean_vel, profile)` - per joint, the frames (from the window start, 60 frames in)
   where the normalised speed has a strict local minimum within +-7 frames and is above 0.3.
3. `beat_score(beats, onsets, profile)` - GAHR: mean over onsets of exp(-d^2 / (2 sigma^2)), d the
   distance (s) to the nearest beat of a joint; averaged over the 13 upper-body joints.
4. `file_beat_consistency(joints, y, mean_vel, profile)` - all three for one file, returning the score and
   its weight n - 120; the dataset BC is sum(score * weight) / sum(weight).

Profile differences (see `semtalk.metrics.profiles`): `semtalk2024` scores |x - mean(x)| instead of raw
positions, tests the speed threshold at the uncropped index (60 frames off), lets the audio window run to
n/30 s, and round-trips the audio through 22.05 kHz; `corrected` does none of these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import argrelextrema

from semtalk.body.joints import NUM_JOINTS, SAMPLE_RATE
from semtalk.metrics.diversity import l1_deviation
from semtalk.metrics.profiles import MetricProfile, get_profile

HOP_LENGTH = 512
#: Rate at which the 2024 evaluation first loaded the audio (librosa's default) before resampling back.
ROUNDTRIP_RATE = 22050


def _as_positions(joints: np.ndarray) -> np.ndarray:
    x = np.asarray(joints)
    if x.ndim == 2 and x.shape[1] % 3 == 0:
        x = x.reshape(x.shape[0], -1, 3)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"joint positions must be (T, J, 3) or (T, J*3), got {np.shape(joints)}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return x


def joint_speed(joints: np.ndarray, fps: int = 30) -> np.ndarray:
    """`(T, J, 3)` or `(T, J*3)` positions (m) -> `(T, J)` speed (m/s).

    Velocity stencil: forward difference at the first frame, central in the middle, backward at the last
    (dt = 1/fps). Needs T >= 3.
    """
    x = _as_positions(joints)
    if x.shape[0] < 3:
        raise ValueError(f"speed needs at least 3 frames, got {x.shape[0]}")
    dt = 1.0 / fps
    vel = np.concatenate([(x[1:2] - x[:1]) / dt, (x[2:] - x[:-2]) / (2 * dt), (x[-1:] - x[-2:-1]) / dt], axis=0)
    return np.linalg.norm(vel, axis=-1)


def bc_motion_input(joints: np.ndarray, profile: str | MetricProfile = "corrected") -> np.ndarray:
    """The array BC scores: raw positions, or `|x - mean_t(x)|` per coordinate under `semtalk2024` (the
    published evaluation ran the Diversity pass in place on the joints before BC). Input is not mutated."""
    prof = get_profile(profile)
    x = np.asarray(joints)
    return l1_deviation(x) if prof.bc_on_l1_deviation else x


def motion_beats(
    joints: np.ndarray, mean_vel: np.ndarray, profile: str | MetricProfile = "corrected"
) -> list[np.ndarray]:
    """Motion beats per joint, as frame indices counted from the window start (`margin` = 60 frames in).

    Args:
        joints: `(T, 55, 3)` or `(T, 165)` - the array to score (see `bc_motion_input`).
        mean_vel: `(55,)` mean joint speeds (m/s) that normalise the speed (BEAT2's
            `weights/mean_vel_smplxflame_30.npy`).

    Returns:
        One int array per joint. A beat is a strict local minimum of the normalised speed within +-order
        frames, inside `[margin, T - margin)`, whose normalised speed exceeds the threshold - tested at the
        beat's own frame (`corrected`) or at the frame `margin` earlier (`semtalk2024`).
    """
    prof = get_profile(profile)
    speed = joint_speed(joints, prof.fps)
    mean_vel = np.asarray(mean_vel)
    if mean_vel.shape != (speed.shape[1],):
        raise ValueError(f"mean_vel must have shape ({speed.shape[1]},), got {mean_vel.shape}")
    speed = speed / mean_vel
    n, m = speed.shape[0], prof.bc_margin
    if n <= 2 * m:
        raise ValueError(f"BC needs more than {2 * m} frames (60 are dropped at each end), got {n}")
    beats = []
    for j in range(speed.shape[1]):
        cand = argrelextrema(speed[m : n - m, j], np.less, order=prof.bc_order)[0]
        check_at = cand if prof.bc_mask_at_uncropped_index else cand + m
        beats.append(cand[speed[check_at, j] > prof.bc_threshold])
    return beats


def prepare_bc_audio(y: np.ndarray, profile: str | MetricProfile = "corrected") -> np.ndarray:
    """A 16 kHz waveform as the profile's BC sees it: unchanged, or (`semtalk2024`) resampled to 22.05 kHz
    and back, which equals loading the 16 kHz file with librosa's default rate and resampling to 16 kHz."""
    prof = get_profile(profile)
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"audio must be a mono waveform (S,), got shape {y.shape}")
    if prof.bc_audio_roundtrip_22050:
        import librosa

        y = librosa.resample(y, orig_sr=SAMPLE_RATE, target_sr=ROUNDTRIP_RATE)
        y = librosa.resample(y, orig_sr=ROUNDTRIP_RATE, target_sr=SAMPLE_RATE)
    return y


def load_bc_audio(path: str | Path, profile: str | MetricProfile = "corrected") -> np.ndarray:
    """Read a wav file for BC: mono 16 kHz float32, then `prepare_bc_audio`.

    For 16 kHz files (BEAT2's `wave16k`) the `semtalk2024` result is bit-identical to the published load
    (librosa at 22.05 kHz, resampled to 16 kHz); files at other rates are converted to 16 kHz first."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file {path} not found (BC needs the test clip's 16 kHz wav)")
    import librosa

    y, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    return prepare_bc_audio(y, profile)


def audio_window(y: np.ndarray, n_frames: int, profile: str | MetricProfile = "corrected") -> np.ndarray:
    """The samples of a 16 kHz waveform whose onsets BC uses.

    The waveform is first cut to the motion length `int(16000 / 30 * n)`; the window starts 2 s in and ends
    2 s before that length (`corrected`) or at it (`semtalk2024`, whose end index was computed from the
    uncut waveform).
    """
    prof = get_profile(profile)
    offset = int(prof.bc_margin * (SAMPLE_RATE / prof.fps))
    cut = y[: int(SAMPLE_RATE / prof.fps * n_frames)]
    if prof.bc_audio_window == "to_end":
        return cut[offset : len(y) - offset]
    return cut[offset : len(cut) - offset]


def detect_onsets(y: np.ndarray) -> np.ndarray:
    """Onset times (s) of a 16 kHz waveform: `librosa.onset.onset_detect(hop_length=512, units='time')`
    with librosa's default spectral-flux envelope and peak picking."""
    import librosa  # imported on use: it takes seconds to load

    y = np.ascontiguousarray(y, dtype=np.float32)
    return librosa.onset.onset_detect(y=y, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, units="time")


def audio_onsets(y: np.ndarray, n_frames: int, profile: str | MetricProfile = "corrected") -> np.ndarray:
    """Onset times (s, from the window start) of an already prepared 16 kHz waveform (see
    `prepare_bc_audio` / `load_bc_audio`) for a motion of `n_frames` frames."""
    return detect_onsets(audio_window(y, n_frames, profile))


def gahr(beat_times: np.ndarray, onset_times: np.ndarray, sigma: float = 0.3) -> float:
    """Mean over onsets of exp(-d^2 / (2 sigma^2)), d = distance to the nearest beat (0 without beats).

    Raises:
        ValueError: when there are no onsets (the score is undefined).
    """
    onsets = np.asarray(onset_times, dtype=np.float64).reshape(-1)
    beats = np.asarray(beat_times, dtype=np.float64).reshape(-1)
    if onsets.size == 0:
        raise ValueError("no audio onsets in the scored window: beat consistency is undefined for this clip")
    if beats.size == 0:
        return 0.0
    d = np.abs(onsets[:, None] - beats[None, :]).min(axis=1)
    return float(np.exp(-(d**2) / (2 * sigma**2)).mean())


def beat_score(beats: list[np.ndarray], onset_times: np.ndarray, profile: str | MetricProfile = "corrected") -> float:
    """Mean GAHR over the profile's 13 upper-body joints; `beats` from `motion_beats` (frames), onsets in s."""
    prof = get_profile(profile)
    if len(beats) != NUM_JOINTS:
        raise ValueError(f"expected beats for {NUM_JOINTS} joints, got {len(beats)}")
    scores = [gahr(np.asarray(beats[j]) / prof.fps, onset_times, prof.bc_sigma) for j in prof.bc_joints]
    return float(np.mean(scores))


def file_beat_consistency(
    joints: np.ndarray,
    audio: np.ndarray,
    mean_vel: np.ndarray,
    profile: str | MetricProfile = "corrected",
) -> tuple[float, int]:
    """BC of one clip. Returns `(score, weight)` with weight `n - 120`.

    Args:
        joints: `(n, 55, 3)` or `(n, 165)` joint positions in metres (the profile decides whether BC sees
            them raw or as deviations from their mean; the input is never modified).
        audio: the clip's 16 kHz waveform, already passed through `prepare_bc_audio` (or read with
            `load_bc_audio`).
        mean_vel: `(55,)` mean joint speeds.
    """
    prof = get_profile(profile)
    x = bc_motion_input(joints, prof)
    n = x.shape[0]
    beats = motion_beats(x, mean_vel, prof)
    onsets = audio_onsets(audio, n, prof)
    return beat_score(beats, onsets, prof), n - 2 * prof.bc_margin
