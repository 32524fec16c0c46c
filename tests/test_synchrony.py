"""Known-answer tests of the synchrony measures (semtalk.metrics.synchrony and its torchmetrics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.ndimage import gaussian_filter1d

from ddp_harness import metric_values, two_rank_values
from semtalk.metrics import (
    BCContrast,
    GestureSync,
    LipSync,
    bc_at_offsets,
    bc_contrast,
    body_joints,
    combine_curves,
    evaluate_folder,
    file_beat_consistency,
    generated_length,
    gesture_sync,
    lipsync,
    load_bc_audio,
    prepare_bc_audio,
    sync_curve,
)
from semtalk.metrics.synchrony import (
    GESTURE_JOINTS,
    audio_frames,
    audio_onset_strength,
    audio_rms_envelope,
    feature_speed,
    jaw_opening,
    shift_audio,
    summarise_curve,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLE = SHARED / "data" / "beat2-sample" / "2_scott_0_1_1"
MEAN_VEL = SHARED / "data" / "beat2-weights" / "mean_vel_smplxflame_30.npy"
SR = 16000
FPS = 30
FRAME = 1 / FPS


# ----------------------------------------------------------------------------------------------------
# constructed signals


def _speechlike(seconds: float, seed: int) -> np.ndarray:
    """16 kHz noise under a syllable-like envelope: 80-250 ms bursts of random loudness, short gaps and now
    and then a pause."""
    rng = np.random.default_rng(seed)
    rate = 1000
    env = np.zeros(int(seconds * rate))
    t = 0.2
    while t < seconds - 0.3:
        d = rng.uniform(0.08, 0.25)
        env[int(t * rate) : int((t + d) * rate)] = rng.uniform(0.3, 1.0)
        t += d + (rng.uniform(0.4, 1.2) if rng.random() < 0.15 else rng.uniform(0.03, 0.12))
    env = gaussian_filter1d(env, 15)
    n = int(seconds * SR)
    env = np.interp(np.arange(n) / SR, np.arange(len(env)) / rate, env)
    return (env * rng.normal(size=n)).astype(np.float32)


def _delayed_audio(y: np.ndarray, seconds: float) -> np.ndarray:
    k = int(round(seconds * SR))
    return np.concatenate([np.zeros(k, np.float32), y])[: len(y)]


def _integrate(speed: np.ndarray) -> np.ndarray:
    """Positions whose central-difference speed is a centred smoothing of `speed` (trapezoid rule)."""
    return np.concatenate([[0.0], np.cumsum((speed[1:] + speed[:-1]) / 2)]) / FPS


def _face(jaw_audio: np.ndarray, expr_audio: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(poses (n, 165), expressions (n, 100)): the jaw opens with the RMS envelope of `jaw_audio`, the first
    expression moves at a speed equal to the onset strength of `expr_audio`."""
    rng = np.random.default_rng(0)
    poses = (0.01 * rng.normal(size=(n, 165))).astype(np.float32)
    poses[:, 66] = 0.02 + 0.5 * audio_rms_envelope(jaw_audio, n)
    exps = np.zeros((n, 100), np.float32)
    exps[:, 0] = _integrate(audio_onset_strength(expr_audio, n))
    return poses, exps


def _gesture_joints(speed: np.ndarray) -> np.ndarray:
    """(T, 55, 3): the gesture joints travel along x at `speed` (m/s); the others stand still."""
    x = _integrate(speed)
    joints = np.tile(np.linspace(0, 1, 55)[None, :, None], (len(speed), 1, 3))
    joints[:, list(GESTURE_JOINTS), 0] += x[:, None]
    return joints


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return _speechlike(20.0, seed=0)


# ----------------------------------------------------------------------------------------------------
# features


def test_rms_envelope_is_centred_on_the_frames():
    y = np.zeros(SR * 2, np.float32)
    y[SR // 2 : SR] = 0.5 * np.sin(2 * np.pi * 250 * np.arange(SR // 2) / SR)  # 0.5-1.0 s, 250 Hz
    env = audio_rms_envelope(y, 60)
    np.testing.assert_allclose(env[18:28], 0.5 / np.sqrt(2), rtol=1e-3)  # whole window inside the tone
    assert env[:13].max() == 0.0 and env[33:].max() == 0.0  # window wholly outside (32 ms half-width)
    assert env[15] == pytest.approx(env[30], rel=0.05)  # 0.5 s and 1.0 s: half the window inside, both ends
    # past the end of the audio the envelope is zero, not an error
    assert audio_rms_envelope(y[: SR // 2], 60)[20:].max() == 0.0


def test_onset_strength_peaks_at_clicks():
    y = 1e-3 * np.random.default_rng(0).normal(size=3 * SR).astype(np.float32)
    for c in (0.5, 1.5, 2.2):
        y[int(c * SR) : int(c * SR) + 400] += 0.5
    env = audio_onset_strength(y, 90)
    peaks = sorted(np.argsort(env)[-3:])
    assert np.allclose(np.array(peaks) / FPS, [0.5, 1.5, 2.2], atol=0.07)


def test_jaw_opening_and_feature_speed():
    poses = np.zeros((4, 165), np.float32)
    poses[:, 66:69] = [[0.1, 0.5, 0.5], [0.2, 0, 0], [-0.1, 0, 0], [0.0, 0.3, 0]]
    np.testing.assert_allclose(jaw_opening(poses), [0.1, 0.2, -0.1, 0.0], atol=1e-7)
    np.testing.assert_allclose(jaw_opening(poses.reshape(4, 55, 3)), jaw_opening(poses))
    with pytest.raises(ValueError, match="axis-angle"):
        jaw_opening(np.zeros((4, 63)))
    e = np.zeros((5, 3))
    e[:, 1] = np.arange(5) ** 2
    np.testing.assert_allclose(feature_speed(e, 30), np.array([1, 2, 4, 6, 7]) * 30)  # joint_speed's stencil


# ----------------------------------------------------------------------------------------------------
# correlation curves


def test_identical_signal_peaks_at_lag_zero(speech):
    n = audio_frames(len(speech))
    env = audio_rms_envelope(speech, n)
    c = sync_curve(env, 3.0 * env + 1.0)
    assert c.r0 == pytest.approx(1.0)
    assert c.z > 5
    assert abs(c.peak_lag_s) < 1e-9 and c.peak_corr == pytest.approx(1.0)
    assert len(c.lags_s) == 301 and c.lags_s[0] == pytest.approx(-5.0) and c.lags_s[-1] == pytest.approx(5.0)


@pytest.mark.parametrize("delay", [0.15, -0.15, 0.1])
def test_delayed_signal_shows_its_lag(speech, delay):
    """Motion that follows the audio by `delay` s peaks at +delay (positive: motion late)."""
    n = audio_frames(len(speech))
    ref = audio_rms_envelope(speech, n)
    if delay > 0:
        motion = audio_rms_envelope(_delayed_audio(speech, delay), n)
    else:  # the audio follows the motion
        motion, ref = ref, audio_rms_envelope(_delayed_audio(speech, -delay), n)
    c = sync_curve(ref, motion)
    assert c.peak_lag_s == pytest.approx(delay, abs=FRAME)
    assert c.peak_corr > 0.9
    assert c.r0 < c.peak_corr - 0.2  # the lag-0 value is well below the peak


def test_unrelated_signal_gives_small_z(speech):
    n = audio_frames(len(speech))
    ref = audio_rms_envelope(speech, n)
    zs = [sync_curve(ref, audio_rms_envelope(_speechlike(20.0, seed), n)).z for seed in (1, 2, 3)]
    assert all(abs(z) < 3 for z in zs), zs


def test_summary_of_a_known_curve():
    lags = np.arange(-150, 151) / FPS
    rng = np.random.default_rng(0)
    corr = 0.05 * rng.normal(size=lags.shape)
    corr[np.abs(lags) < 0.4] = 0.5 - 4 * (lags[np.abs(lags) < 0.4] - 0.07) ** 2  # a parabola peaking at 0.07 s
    weight = np.full(lags.shape, 100.0)
    c = summarise_curve(lags, corr, weight)
    null = corr[np.abs(lags) >= 1.0 - 1e-9]
    assert c.null_mean == pytest.approx(null.mean()) and c.null_std == pytest.approx(null.std(ddof=1))
    assert c.z == pytest.approx((corr[150] - null.mean()) / null.std(ddof=1))
    assert c.peak_lag_s == pytest.approx(0.07, abs=1e-9)  # the parabola refines to the exact vertex
    assert c.peak_corr == pytest.approx(0.5)
    # lags beyond what was measured are left out; without null lags z is NaN
    weight[np.abs(lags) > 0.9] = 0
    corr[np.abs(lags) > 0.9] = np.nan
    assert np.isnan(summarise_curve(lags, corr, weight).z)


def test_short_clip_measures_fewer_lags():
    rng = np.random.default_rng(1)
    a = gaussian_filter1d(rng.normal(size=150), 2)  # 5 s: lags up to 2.5 s are measured
    c = sync_curve(a, a)
    measured = np.abs(c.lags_s[c.weight > 0])
    assert measured.max() == pytest.approx(2.5) and np.isnan(c.corr[np.abs(c.lags_s) > 2.5 + 1e-9]).all()
    assert np.isfinite(c.z) and c.z_weight == 150
    # a constant motion correlates 0 everywhere: z is undefined
    assert np.isnan(sync_curve(a, np.ones(150)).z)


def test_combine_curves_weights_clips(speech):
    n = audio_frames(len(speech))
    env = audio_rms_envelope(speech, n)
    other = audio_rms_envelope(_speechlike(20.0, 4), n)
    c1, c2 = sync_curve(env, env), sync_curve(env[:400], other[:400])
    both = combine_curves([c1, c2])
    w1, w2 = c1.weight, c2.weight
    expected = (np.nan_to_num(c1.corr) * w1 + np.nan_to_num(c2.corr) * w2) / (w1 + w2)
    np.testing.assert_allclose(both.corr, expected)
    assert both.z == pytest.approx((c1.z * n + c2.z * 400) / (n + 400))
    assert both.z_weight == n + 400
    with pytest.raises(ValueError, match="lag grid"):
        combine_curves([c1, sync_curve(env, env, max_lag_s=3.0)])


# ----------------------------------------------------------------------------------------------------
# lip sync and gesture sync of whole clips


def test_lipsync_of_a_face_driven_by_the_audio(speech):
    n = audio_frames(len(speech))
    poses, exps = _face(speech, speech, n)
    res = lipsync(speech, poses, exps)
    assert res.jaw.z > 5 and abs(res.jaw.peak_lag_s) < FRAME / 2
    assert res.expression.z > 5 and abs(res.expression.peak_lag_s) < FRAME
    late = lipsync(speech, *_face(_delayed_audio(speech, 0.15), _delayed_audio(speech, 0.15), n))
    assert late.jaw.peak_lag_s == pytest.approx(0.15, abs=FRAME)
    assert late.expression.peak_lag_s == pytest.approx(0.15, abs=FRAME)
    assert late.jaw.z < res.jaw.z - 3
    # another clip's audio
    other = lipsync(_speechlike(20.0, 5), poses, exps)
    assert abs(other.jaw.z) < 3 and abs(other.expression.z) < 3
    # motion longer than the audio is cut to the audio
    cut = lipsync(speech[: 15 * SR], poses, exps)
    assert cut.jaw.weight.max() == 15 * FPS


def test_gesture_sync_of_speed_driven_by_onsets(speech):
    n = audio_frames(len(speech))
    onset = audio_onset_strength(speech, n)
    synced = gesture_sync(_gesture_joints(0.1 * onset), speech)
    assert synced.z > 5 and abs(synced.peak_lag_s) < FRAME
    late = gesture_sync(_gesture_joints(0.1 * np.concatenate([np.zeros(3), onset[:-3]])), speech)
    assert late.peak_lag_s == pytest.approx(0.1, abs=FRAME) and late.peak_corr > 0.8
    unrelated = gesture_sync(_gesture_joints(0.1 * audio_onset_strength(_speechlike(20.0, 6), n)), speech)
    assert abs(unrelated.z) < 3


# ----------------------------------------------------------------------------------------------------
# BC contrast


def _click_track(seconds: float, clicks: np.ndarray, seed: int = 0) -> np.ndarray:
    """16 kHz: faint noise plus a 50 ms decaying noise burst at each click time."""
    rng = np.random.default_rng(seed)
    y = 1e-3 * rng.normal(size=int(seconds * SR))
    burst = 0.5 * rng.normal(size=800) * np.exp(-np.arange(800) / 200)
    for c in clicks:
        seg = y[int(round(c * SR)) : int(round(c * SR)) + 800]
        seg += burst[: len(seg)]
    return y.astype(np.float32)


def _irregular(seconds: float, low: float, high: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out, t = [], 0.3
    while t < seconds - 0.2:
        out.append(t)
        t += rng.uniform(low, high)
    return np.array(out)


def _beat_motion(frames: int, beats: np.ndarray, base: float = 0.2, fine: int = 10) -> np.ndarray:
    """(T, 55, 3): every joint moves along x at speed base * (2 - cos phase), the phase 2 pi k at beat k and
    linear in between, so the speed has strict minima (half its mean) exactly on the beats."""
    tf = np.arange(frames * fine) / (FPS * fine)
    knots = np.concatenate([[2 * beats[0] - beats[1]], beats, [2 * beats[-1] - beats[-2]]])
    phase_knots = 2 * np.pi * np.arange(-1, len(beats) + 1)
    first, last = 2 * np.pi / (knots[1] - knots[0]), 2 * np.pi / (knots[-1] - knots[-2])
    phase = np.interp(tf, knots, phase_knots)
    phase = np.where(tf < knots[0], phase_knots[0] - (knots[0] - tf) * first, phase)
    phase = np.where(tf > knots[-1], phase_knots[-1] + (tf - knots[-1]) * last, phase)
    speed = base * (2 - np.cos(phase))
    x = np.concatenate([[0.0], np.cumsum((speed[1:] + speed[:-1]) / 2)])[::fine] / (FPS * fine)
    offsets = np.linspace(0, 1, 55)[:, None] * np.array([0.0, 1.0, 0.5])
    return offsets[None] + x[:, None, None] * np.array([1.0, 0.0, 0.0])


MEAN_SPEED = np.full(55, 0.4, np.float32)  # mean speed of `_beat_motion`
BC_FRAMES = 600  # 20 s


@pytest.fixture(scope="module")
def beats() -> np.ndarray:
    return _irregular(BC_FRAMES / FPS, 0.7, 1.6, seed=1)


@pytest.mark.parametrize("profile", ["corrected", "semtalk2024"])
def test_bc_contrast_sparse_clicks_vs_dense_onsets(beats, profile):
    seconds = BC_FRAMES / FPS
    motion = _beat_motion(BC_FRAMES, beats)
    sparse = prepare_bc_audio(_click_track(seconds, beats), profile)
    res = bc_contrast(motion, sparse, MEAN_SPEED, profile)
    assert res.bc > 0.9 and res.contrast > 0.25  # beats on the clicks; shifted clicks miss them
    assert res.spread > 0 and res.weight == BC_FRAMES - 120
    assert res.contrast == pytest.approx(res.bc - res.shifted.mean())
    # onsets every 0.15-0.3 s: every motion beat is near an onset whatever the offset
    dense = prepare_bc_audio(_click_track(seconds, _irregular(seconds, 0.15, 0.3, seed=10)), profile)
    res = bc_contrast(motion, dense, MEAN_SPEED, profile)
    assert abs(res.contrast) < 0.05 and 0.4 < res.bc < 0.8


def test_bc_at_offset_zero_is_bc_and_shifts_are_circular(beats):
    motion = _beat_motion(BC_FRAMES, beats)
    y = _click_track(BC_FRAMES / FPS + 0.5, beats)  # audio longer than the motion
    scores, weight = bc_at_offsets(motion, y, MEAN_SPEED, (0.0, 1.0), "corrected")
    assert (scores[0], weight) == file_beat_consistency(motion, y, MEAN_SPEED, "corrected")
    shifted = shift_audio(y, 1.0, BC_FRAMES)
    covered = BC_FRAMES * SR // FPS
    np.testing.assert_array_equal(shifted[SR:covered], y[: covered - SR])
    np.testing.assert_array_equal(shifted[:SR], y[covered - SR : covered])
    np.testing.assert_array_equal(shifted[covered:], y[covered:])
    assert scores[1] == pytest.approx(file_beat_consistency(motion, shifted, MEAN_SPEED, "corrected")[0])
    with pytest.raises(ValueError, match="non-zero"):
        bc_contrast(motion, y, MEAN_SPEED, offsets_s=(0.0, 1.0))


# ----------------------------------------------------------------------------------------------------
# torchmetrics: equal to the functions, any split of the updates, padded batches


def _split_equal(make, batches, key):
    whole = make()
    whole.update(*[torch.cat(parts) for parts in zip(*batches)])
    split = make()
    for parts in batches:
        split.update(*parts)
    return whole.compute(), split.compute()


def _lip_batches(n_clips: int = 4, seconds: float = 12.0):
    clips = []
    for k in range(n_clips):
        y = _speechlike(seconds, 20 + k)
        jaw_audio = y if k % 2 == 0 else _delayed_audio(y, 0.1)
        n = audio_frames(len(y))
        poses, exps = _face(jaw_audio, y, n)
        clips.append((poses, exps, y))
    batches = [
        tuple(torch.from_numpy(np.stack(parts)) for parts in zip(*clips[i : i + 2])) for i in range(0, n_clips, 2)
    ]
    return clips, batches


def test_lipsync_metric_equals_functions_and_accumulates():
    clips, batches = _lip_batches()
    whole, split = _split_equal(LipSync, batches, "lipsync_z")
    per_clip = [lipsync(y, p, e) for p, e, y in clips]
    for prefix, field in (("lipsync", "jaw"), ("expression_sync", "expression")):
        ref = combine_curves([getattr(r, field) for r in per_clip])
        for out in (whole, split):
            assert float(out[f"{prefix}_z"]) == pytest.approx(ref.z, rel=1e-9)
            assert float(out[f"{prefix}_r0"]) == pytest.approx(ref.r0, rel=1e-9)
            assert float(out[f"{prefix}_lag_s"]) == pytest.approx(ref.peak_lag_s, rel=1e-9, abs=1e-12)
            np.testing.assert_allclose(out[f"{prefix}_curve"].numpy(), ref.corr, rtol=1e-9)
    assert 0 < float(whole["lipsync_lag_s"]) < 0.1  # two clips in sync, two 100 ms late
    # a single clip gives the function's own values
    one = LipSync()
    p, e, y = clips[0]
    one.update(torch.from_numpy(p)[None], torch.from_numpy(e)[None], torch.from_numpy(y)[None])
    assert float(one.compute()["lipsync_z"]) == pytest.approx(per_clip[0].jaw.z, rel=1e-9)


def test_lipsync_metric_respects_lengths():
    clips, _ = _lip_batches(2)
    (p0, e0, y0), (p1, e1, y1) = clips
    cut, cut_audio = 300, 300 * SR // FPS
    padded = LipSync()
    padded.update(
        torch.from_numpy(np.stack([p0, p1])), torch.from_numpy(np.stack([e0, e1])),
        torch.from_numpy(np.stack([y0, y1])), lengths=torch.tensor([len(p0), cut]),
        audio_lengths=torch.tensor([len(y0), cut_audio]),
    )  # fmt: skip
    apart = LipSync()
    apart.update(torch.from_numpy(p0)[None], torch.from_numpy(e0)[None], torch.from_numpy(y0)[None])
    apart.update(
        torch.from_numpy(p1[:cut])[None], torch.from_numpy(e1[:cut])[None], torch.from_numpy(y1[:cut_audio])[None]
    )
    a, b = padded.compute(), apart.compute()
    assert float(a["lipsync_z"]) == pytest.approx(float(b["lipsync_z"]), rel=1e-12)
    with pytest.raises(ValueError, match="poses"):
        padded.update(torch.zeros(1, 30, 165), torch.zeros(2, 30, 100), torch.zeros(1, 16000))


def test_gesture_metric_equals_functions_and_accumulates(speech):
    n = audio_frames(len(speech))
    onset = audio_onset_strength(speech, n)
    other = _speechlike(20.0, 7)
    clips = [
        (_gesture_joints(0.1 * onset), speech),
        (_gesture_joints(0.1 * audio_onset_strength(other, n)), speech),
        (_gesture_joints(0.1 * onset), other),
        (_gesture_joints(0.05 * onset + 0.02), speech),
    ]
    batches = [
        (torch.from_numpy(np.stack([j for j, _ in clips[i : i + 2]])).float(),
         torch.from_numpy(np.stack([y for _, y in clips[i : i + 2]])))
        for i in (0, 2)
    ]  # fmt: skip
    whole, split = _split_equal(GestureSync, batches, "gesture_sync_z")
    ref = combine_curves([gesture_sync(j.astype(np.float32), y) for j, y in clips])
    for out in (whole, split):
        assert float(out["gesture_sync_z"]) == pytest.approx(ref.z, rel=1e-6)
        np.testing.assert_allclose(out["gesture_sync_curve"].numpy(), ref.corr, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(out["lags_s"].numpy(), ref.lags_s)
    # (B, T, 165) joints are accepted too
    flat = GestureSync()
    flat.update(batches[0][0].reshape(2, n, 165), batches[0][1])
    assert float(flat.compute()["gesture_sync_z"]) == pytest.approx(
        combine_curves([gesture_sync(j.astype(np.float32), y) for j, y in clips[:2]]).z, rel=1e-6
    )


def test_bc_contrast_metric_equals_functions_and_accumulates(beats):
    profile, frames = "semtalk2024", 360
    seconds = frames / FPS
    beats = beats[beats < seconds - 0.5]
    sparse = _click_track(seconds, beats)
    dense = _click_track(seconds, _irregular(seconds, 0.15, 0.3, seed=10))
    late = _beat_motion(frames, beats + 0.4)
    motion = _beat_motion(frames, beats)
    clips = [(motion, sparse), (motion, dense), (late, sparse)]
    batches = [(torch.from_numpy(m).float()[None], torch.from_numpy(y)[None]) for m, y in clips]
    whole, split = _split_equal(lambda: BCContrast(MEAN_SPEED, profile), batches, "bc_contrast")
    per_clip = [bc_contrast(m.astype(np.float32), prepare_bc_audio(y, profile), MEAN_SPEED, profile) for m, y in clips]
    w = np.array([r.weight for r in per_clip], np.float64)
    bc = float(np.sum([r.bc for r in per_clip] * w) / w.sum())
    shifted = np.sum([r.shifted * wi for r, wi in zip(per_clip, w)], axis=0) / w.sum()
    for out in (whole, split):
        assert float(out["bc"]) == pytest.approx(bc, rel=1e-9)
        np.testing.assert_allclose(out["bc_shifted"].numpy(), shifted, rtol=1e-9)
        assert float(out["bc_contrast"]) == pytest.approx(bc - shifted.mean(), rel=1e-9)
        assert float(out["bc_shifted_std"]) == pytest.approx(shifted.std(ddof=1), rel=1e-9)
    # the contrast is linear: the dataset value is the weighted mean of the clips'
    assert float(whole["bc_contrast"]) == pytest.approx(np.sum([r.contrast for r in per_clip] * w) / w.sum())
    with pytest.raises(ValueError, match="non-zero"):
        BCContrast(MEAN_SPEED, profile, offsets_s=(0.0,))


def _ddp_cases():
    """(metric factory, full inputs, output keys) shared by the DDP script and its single-process reference."""
    _, lip = _lip_batches(4, seconds=8.0)
    lip_inputs = tuple(torch.cat(parts) for parts in zip(*lip))
    y = torch.from_numpy(np.stack([_speechlike(8.0, 30 + k) for k in range(4)]))
    n = audio_frames(y.shape[1])
    joints = torch.from_numpy(
        np.stack([_gesture_joints(0.1 * audio_onset_strength(y[k].numpy(), n)) for k in range(4)])
    ).float()
    beats = _irregular(8.0, 0.7, 1.6, seed=2)
    motion = torch.from_numpy(_beat_motion(240, beats)).float()[None].repeat(4, 1, 1, 1)
    clicks = torch.from_numpy(np.stack([_click_track(8.0, beats + 0.1 * k) for k in range(4)]))
    return [
        (LipSync, lip_inputs, ("lipsync_z", "lipsync_lag_s", "expression_sync_z")),
        (GestureSync, (joints, y), ("gesture_sync_z", "gesture_sync_lag_s")),
        (lambda: BCContrast(MEAN_SPEED, "corrected"), (motion, clicks), ("bc", "bc_contrast", "bc_shifted_std")),
    ]


@pytest.mark.slow
def test_synchrony_metrics_sync_across_two_ddp_ranks(tmp_path):
    """Two gloo ranks, each updating with half of the clips, both compute what one process computes on all."""
    single = metric_values(_ddp_cases())
    assert np.isfinite(single).all()
    for synced in two_rank_values("test_synchrony", "_ddp_cases", tmp_path):
        # float32 audio features may differ in the last bits between processes; a missing sync would not
        np.testing.assert_allclose(synced, single, rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------------------------------
# evaluate_folder reports the synchrony measures


def _write_clip(folder: Path, name: str, poses, exps, betas) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / f"{name}.npz", poses=poses.astype(np.float32), expressions=exps.astype(np.float64),
        betas=betas.astype(np.float32), trans=np.zeros((len(poses), 3)), model="smplx2020", gender="neutral",
        mocap_frame_rate=np.int32(30),
    )  # fmt: skip


def test_evaluate_folder_reports_synchrony(tmp_path, body_model):
    gt_dir, late_dir, audio_dir = tmp_path / "gt", tmp_path / "late", tmp_path / "audio"
    audio_dir.mkdir()
    rng = np.random.default_rng(3)
    for k in range(2):
        name = f"2_scott_0_{k}_{k}"
        y = _speechlike(7.0, 40 + k)
        n = audio_frames(len(y))
        poses, exps = _face(y, y, n)
        poses[:, :66] += 0.2 * np.sin(np.arange(n)[:, None] / 9.0 + rng.uniform(0, 6, 66)).astype(np.float32)
        betas = rng.normal(size=300)
        _write_clip(gt_dir, name, poses, exps, betas)
        _write_clip(late_dir, name, *_face(_delayed_audio(y, 0.15), y, n), betas)
        sf.write(audio_dir / f"{name}.wav", y, SR, subtype="FLOAT")
    res = evaluate_folder(gt_dir, gt_dir, audio_dir, "corrected", body_model, mean_vel=MEAN_SPEED, output_dir=tmp_path)
    for key in ("bc_contrast", "bc_shifted_std", "lipsync_z", "lipsync_lag_s", "expression_sync_z", "gesture_sync_z"):
        assert np.isfinite(res[key]), key
    assert res["lipsync_z"] > 3 and abs(res["lipsync_lag_s"]) < FRAME
    assert len(res["curves"]["gesture_sync"]["corr"]) == len(res["curves"]["gesture_sync"]["lags_s"]) == 301
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["lipsync_z"] == pytest.approx(res["lipsync_z"])
    md = (tmp_path / "metrics.md").read_text()
    assert "Lip-sync z" in md and "BC contrast" in md
    late = evaluate_folder(late_dir, gt_dir, audio_dir, "corrected")  # audio only: lip sync without a body
    assert late["lipsync_lag_s"] == pytest.approx(0.15, abs=FRAME) and late["lipsync_z"] < res["lipsync_z"] - 2
    assert "bc_contrast" not in late and "gesture_sync_z" not in late


# ----------------------------------------------------------------------------------------------------
# the real BEAT2 clip, when present


@pytest.mark.skipif(not SAMPLE.with_suffix(".npz").exists(), reason=f"real BEAT2 clip not found at {SAMPLE}")
@pytest.mark.skipif(not MEAN_VEL.exists(), reason=f"BEAT2 mean joint speeds not found at {MEAN_VEL}")
def test_real_clip_lipsync_is_strong_and_bc_contrast_is_small(body_model):
    from semtalk.data.beat2 import load_audio

    data = np.load(SAMPLE.with_suffix(".npz"))
    audio = load_audio(SAMPLE.with_suffix(".wav"))
    n = generated_length(data["poses"].shape[0], len(audio) / SR)
    res = lipsync(audio, data["poses"][:n], data["expressions"][:n])
    assert res.jaw.z > 3 and abs(res.jaw.peak_lag_s) < 0.1
    joints = body_joints(body_model, data["poses"][:n], data["betas"])
    con = bc_contrast(
        joints, load_bc_audio(SAMPLE.with_suffix(".wav"), "semtalk2024"), np.load(MEAN_VEL), "semtalk2024"
    )
    assert abs(con.contrast) < 0.05
    print(
        f"\n2_scott_0_1_1: lip-sync z {res.jaw.z:.2f} (r0 {res.jaw.r0:.3f}, peak {res.jaw.peak_lag_s:+.3f} s), "
        f"BC {con.bc:.4f}, BC contrast {con.contrast:+.4f} (spread {con.spread:.4f})"
    )
