"""Known-answer tests of the BEAT2 evaluation metrics (semtalk.metrics), both profiles."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from ddp_harness import metric_values, two_rank_values
from semtalk.body.joints import BC_JOINTS
from semtalk.metrics import (
    CORRECTED,
    FGD,
    LVD,
    SEMTALK2024,
    BeatConsistency,
    Diversity,
    FaceMSE,
    GateAccuracy,
    audio_onsets,
    beat_score,
    body_joints,
    diversity,
    evaluate_folder,
    evaluation_length,
    face_mse,
    face_vertices,
    fgd_length,
    fgd_rot6d,
    file_beat_consistency,
    frechet_distance,
    frechet_distance_from_stats,
    gahr,
    gate_accuracy,
    generated_length,
    joint_speed,
    l1_deviation,
    load_bc_audio,
    load_fgd_encoder,
    lvd,
    metrics_table,
    motion_beats,
    prepare_bc_audio,
    random_fgd_encoder,
)
from semtalk.metrics.beat_consistency import audio_window
from semtalk.metrics.fgd_encoder import load_fgd_state

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLE = SHARED / "data" / "beat2-sample" / "2_scott_0_1_1"
MEAN_VEL = SHARED / "data" / "beat2-weights" / "mean_vel_smplxflame_30.npy"
SR = 16000


# ----------------------------------------------------------------------------------------------------
# length bookkeeping


def test_length_bookkeeping_worked_example():
    assert generated_length(1906, 64.10) == 1864
    assert fgd_length(1864) == 1856
    assert evaluation_length("semtalk2024", 1906, 1864, 64.10) == 1864
    assert evaluation_length("corrected", 1906, 1864, 64.10) == 1864
    assert evaluation_length("corrected", 1906, 1900) == 1900
    with pytest.raises(ValueError, match="profile='corrected'"):
        evaluation_length("semtalk2024", 1906, 1800, 64.10)
    with pytest.raises(ValueError, match="too short"):
        generated_length(50)
    with pytest.raises(ValueError, match="unknown metric profile"):
        evaluation_length("paper", 100, 100)


# ----------------------------------------------------------------------------------------------------
# Frechet distance


@pytest.fixture(scope="module")
def features_240() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(1800, 240))


def test_frechet_identical_sets(features_240):
    x = features_240
    assert abs(frechet_distance(x, x, "corrected")) < 1e-6
    assert abs(frechet_distance(x, x, "semtalk2024")) < 1e-3
    # the 2025 variant's constant offset: -2 * d * eps
    assert frechet_distance(x, x, "evaltools2025") == pytest.approx(-2 * 240 * 1e-6, abs=2e-5)


def test_frechet_shifted_set_gives_squared_shift(features_240):
    shift = np.linspace(-0.5, 0.5, 240)
    y = features_240 + shift
    expected = float(shift @ shift)
    assert frechet_distance(features_240, y, "corrected") == pytest.approx(expected, abs=1e-6)
    assert frechet_distance(features_240, y, "semtalk2024") == pytest.approx(expected, abs=1e-3)


def test_frechet_closed_form_for_commuting_covariances():
    rng = np.random.default_rng(1)
    d = 12
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
    for s1, s2 in ((np.diag(a), np.diag(b)), (q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T)):
        assert frechet_distance_from_stats(mu1, s1, mu2, s2, "corrected") == pytest.approx(expected, abs=1e-9)
        assert frechet_distance_from_stats(mu1, s1, mu2, s2, "semtalk2024") == pytest.approx(expected, abs=1e-8)
        assert frechet_distance_from_stats(mu1, s1, mu2, s2, "evaltools2025") == pytest.approx(expected, abs=1e-4)


def test_frechet_variants_agree_on_general_covariances():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    y = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16)) + 0.3
    ref = frechet_distance(x, y, "semtalk2024")
    assert ref > 1.0
    assert frechet_distance(x, y, "corrected") == pytest.approx(ref, rel=1e-9)
    assert frechet_distance(y, x, "corrected") == pytest.approx(ref, rel=1e-9)
    with pytest.raises(ValueError, match="unknown Frechet variant"):
        frechet_distance(x, y, "fid")


# ----------------------------------------------------------------------------------------------------
# beat consistency: synthetic motion whose speed minima sit on a click track


def _beat_motion(frames: int, beat_offset: float, period: float = 1.0, base_speed: float = 0.2) -> np.ndarray:
    """(T, 55, 3): every joint drifts along x with speed base_speed * (2 - cos(2 pi (t - m0) / P)), so the speed
    has strict minima (half the mean speed) exactly at t = m0 + k P."""
    t = np.arange(frames) / 30.0
    w = 2 * np.pi / period
    x = base_speed * (2 * t - np.sin(w * (t - beat_offset)) / w)
    offsets = np.linspace(0, 1, 55)[:, None] * np.array([0.0, 1.0, 0.5])
    return (offsets[None] + x[:, None, None] * np.array([1.0, 0.0, 0.0])).astype(np.float32)


def _circle_motion(frames: int, beat_offset: float, period: float = 1.0) -> np.ndarray:
    """(T, 55, 3): every joint runs round a 0.2 m circle at angular speed 2 - cos(2 pi (t - m0) / P) rad/s;
    its coordinates cross their means every quarter turn."""
    t = np.arange(frames) / 30.0
    w = 2 * np.pi / period
    phase = 2 * t - np.sin(w * (t - beat_offset)) / w
    pos = 0.2 * np.stack([np.cos(phase), np.sin(phase), np.zeros_like(t)], axis=-1)
    return (pos[:, None, :] + np.linspace(0, 1, 55)[None, :, None]).astype(np.float32)


def _click_track(seconds: float, click_times: np.ndarray, seed: int = 0) -> np.ndarray:
    """16 kHz: faint noise plus a 50 ms decaying noise burst at each click time."""
    rng = np.random.default_rng(seed)
    y = 1e-3 * rng.normal(size=int(seconds * SR))
    burst = 0.5 * rng.normal(size=800) * np.exp(-np.arange(800) / 200)
    for c in click_times:
        i = int(round(c * SR))
        seg = y[i : i + 800]
        seg += burst[: len(seg)]
    return y.astype(np.float32)


FRAMES = 360  # 12 s
MEAN_SPEED = np.full(55, 0.2 * 2.0, np.float32)  # mean speed of both synthetic motions (m/s)


@pytest.fixture(scope="module")
def clicks() -> np.ndarray:
    return _click_track(FRAMES / 30, np.arange(0.5, FRAMES / 30, 1.0))


def test_joint_speed_stencil():
    t = np.arange(6, dtype=np.float64)
    x = np.zeros((6, 1, 3))
    x[:, 0, 0] = t**2  # positions in metres, frames at 30 fps
    v = joint_speed(x, fps=30)[:, 0]
    expected = np.array([1.0, 2.0, 4.0, 6.0, 8.0, 9.0]) * 30  # forward, central..., backward
    np.testing.assert_allclose(v, expected)


def test_gahr_known_values():
    assert gahr(np.array([1.0]), np.array([1.0, 1.3]), 0.3) == pytest.approx((1 + math.exp(-0.5)) / 2)
    assert gahr(np.array([]), np.array([1.0]), 0.3) == 0.0
    with pytest.raises(ValueError, match="no audio onsets"):
        gahr(np.array([1.0]), np.array([]), 0.3)


def test_bc_high_when_aligned_and_lower_when_shifted(clicks):
    aligned = _beat_motion(FRAMES, 0.5)
    shifted = _beat_motion(FRAMES, 1.0)
    for prof in (CORRECTED, SEMTALK2024):
        y = prepare_bc_audio(clicks, prof)
        s_aligned, w = file_beat_consistency(aligned, y, MEAN_SPEED, prof)
        s_shifted, _ = file_beat_consistency(shifted, y, MEAN_SPEED, prof)
        assert w == FRAMES - 120
        assert s_shifted < s_aligned - 0.3, (prof.name, s_aligned, s_shifted)
    s_corr, _ = file_beat_consistency(aligned, clicks, MEAN_SPEED, CORRECTED)
    assert s_corr > 0.9


def test_bc_pieces_compose(clicks):
    motion = _beat_motion(FRAMES, 0.5)
    beats = motion_beats(motion, MEAN_SPEED, CORRECTED)
    # beats at t = 0.5 + k s, counted from frame 60
    np.testing.assert_array_equal(beats[BC_JOINTS[0]], np.arange(15, FRAMES - 120, 30))
    onsets = audio_onsets(clicks, FRAMES, CORRECTED)
    click_times = np.arange(8) + 0.5  # clicks at 2.5 .. 9.5 s fall inside [2 s, 10 s]
    gaps = np.abs(onsets[:, None] - click_times[None])
    assert np.all(gaps.min(axis=1) < 0.07) and np.all(gaps.min(axis=0) < 0.07)
    assert beat_score(beats, onsets, CORRECTED) == pytest.approx(
        file_beat_consistency(motion, clicks, MEAN_SPEED, CORRECTED)[0]
    )


def test_bc_2024_l1div_mutation_changes_the_score(clicks):
    motion = _circle_motion(FRAMES, 0.5)
    before = motion.copy()
    no_mutation = dataclasses.replace(SEMTALK2024, bc_on_l1_deviation=False)
    y = prepare_bc_audio(clicks, SEMTALK2024)
    mutated, _ = file_beat_consistency(motion, y, MEAN_SPEED, SEMTALK2024)
    raw, _ = file_beat_consistency(motion, y, MEAN_SPEED, no_mutation)
    corrected, _ = file_beat_consistency(motion, clicks, MEAN_SPEED, CORRECTED)
    assert abs(mutated - raw) > 1e-3
    assert abs(mutated - corrected) > 1e-3
    np.testing.assert_array_equal(motion, before)  # inputs are never mutated


def test_bc_threshold_index_quirk():
    """A speed minimum at frame 90 above threshold, with the speed at frame 30 below it: the 2024 profile
    checks frame 30 (the cropped index on the uncropped array) and drops the beat."""
    frames = 240

    def speed(t):
        dips = 0.5 * np.exp(-((t - 90) ** 2) / 18) + 0.5 * np.exp(-((t - 150) ** 2) / 18)
        return 1.0 - dips - 0.9 * np.exp(-((t - 30) ** 2) / 50)

    x = np.concatenate([[0.0], np.cumsum(speed(np.arange(frames - 1) + 0.5))]) / 30  # midpoint rule
    joints = np.zeros((frames, 55, 3))
    joints[:, :, 0] = x[:, None]
    ones = np.ones(55)
    np.testing.assert_array_equal(motion_beats(joints, ones, CORRECTED)[3], [30, 90])
    np.testing.assert_array_equal(motion_beats(joints, ones, SEMTALK2024)[3], [90])


def test_bc_audio_window_and_roundtrip(tmp_path, clicks):
    n = 300  # 10 s of motion, 12 s of audio
    assert len(audio_window(clicks, n, CORRECTED)) == 10 * SR - 2 * 32000
    assert len(audio_window(clicks, n, SEMTALK2024)) == 10 * SR - 32000  # end trim ineffective
    wav = tmp_path / "clip.wav"
    sf.write(wav, clicks, SR, subtype="FLOAT")
    import librosa

    y22, sr22 = librosa.load(wav)  # the 2024 code's load at librosa's default rate, then back to 16 kHz
    expected = librosa.resample(y22, orig_sr=sr22, target_sr=SR)
    np.testing.assert_array_equal(load_bc_audio(wav, SEMTALK2024), expected)
    np.testing.assert_array_equal(load_bc_audio(wav, CORRECTED), clicks)


# ----------------------------------------------------------------------------------------------------
# diversity, face metrics, gate


def test_diversity_known_value_and_purity():
    a = np.array([[0.0, 1.0], [2.0, 1.0]])  # deviations 1,0,1,0 -> 2 over 2 frames
    b = np.zeros((3, 2))
    before = a.copy()
    assert diversity([a]) == pytest.approx(1.0)
    assert diversity([a, b]) == pytest.approx(2.0 / 5)
    np.testing.assert_array_equal(a, before)
    np.testing.assert_array_equal(l1_deviation(a), [[1.0, 0.0], [1.0, 0.0]])


def test_face_mse_and_lvd_known_values():
    rng = np.random.default_rng(3)
    gt = rng.normal(size=(20, 50, 3))
    for variant in ("semtalk2024", "corrected"):
        assert lvd(gt, gt.copy(), variant) == 0.0
    assert face_mse(gt, gt.copy()) == 0.0
    pred = gt + 0.01  # constant offset: same velocities
    assert face_mse(pred, gt) == pytest.approx(1e-4)
    assert lvd(pred, gt, "corrected") == pytest.approx(0.0, abs=1e-15)
    assert lvd(pred, gt, "semtalk2024") == pytest.approx(0.01)


def test_lvd_2024_is_the_published_formula_and_an_l1_position_error():
    rng = np.random.default_rng(4)
    rec, tar = rng.normal(size=(30, 40 * 3)), rng.normal(size=(30, 40 * 3))
    published = np.abs((rec[1:] - tar[:-1]) - (tar[1:] - tar[:-1])).mean()
    position_l1 = np.abs(rec[1:] - tar[1:]).mean()
    assert abs(lvd(rec, tar, "semtalk2024") - published) < 1e-12
    assert abs(lvd(rec, tar, "semtalk2024") - position_l1) < 1e-12
    velocity = np.abs(np.diff(rec, axis=0) - np.diff(tar, axis=0)).sum() / (29 * 120)
    assert lvd(rec, tar, "corrected") == pytest.approx(velocity, rel=1e-12)


def test_gate_accuracy_known_value():
    psi = torch.tensor([[0.9, 0.2, 0.6, 0.4]])
    sem = torch.tensor([[0, 0, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.3, 0.3, 0.3, 0.3]])  # tokens: T F F T
    assert gate_accuracy(psi, sem) == pytest.approx(0.5)  # tokens 0 and 1 right
    assert gate_accuracy(psi, sem, beta=0.95) == pytest.approx(0.5)
    assert gate_accuracy(psi, sem, mask=torch.tensor([[True, True, False, False]])) == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------------
# FGD encoder


@pytest.fixture(scope="module")
def encoder():
    return random_fgd_encoder(seed=0)


def test_fgd_encoder_layout(encoder):
    sd = encoder.state_dict()
    assert len(sd) == 56
    assert sum(v.numel() for v in sd.values()) == 4_384_500
    assert tuple(sd["encoder.layers.0.0.residual.0.weight"].shape) == (330, 330, 4)
    assert tuple(sd["encoder.layers.0.0.common.0.weight"].shape) == (210, 330)
    assert tuple(sd["encoder.layers.1.0.common.0.weight"].shape) == (120, 210)
    assert "encoder.layers.2.0.common.0.weight" not in sd  # 20 -> 20 edges: no pooling
    assert tuple(sd["decoder.main.14.weight"].shape) == (330, 330, 3)
    assert {"fc_mu.weight", "fc_logvar.bias", "encoder.layers.3.0.shortcut.mask"} <= set(sd)
    assert encoder.encoder.edge_counts == [55, 35, 20, 20]
    # masks follow the skeleton: pelvis' outputs never see the fingers
    mask = sd["encoder.layers.0.0.residual.0.mask"]
    assert mask[0:6, 6 * 54 : 6 * 55].sum() == 0 and mask[0:6, 6 * 3 : 6 * 4].sum() > 0


def test_fgd_encoder_output_shape(encoder):
    for t in (32, 64, 128):
        out = encoder(torch.randn(2, t, 330))
        assert out.shape == (2, t // 16, 240)
    with pytest.raises(ValueError, match="multiple of 16"):
        encoder(torch.randn(1, 40, 330))


def test_fgd_encoder_loads_module_prefixed_checkpoint(tmp_path, encoder):
    path = tmp_path / "AESKConv_240_100.bin"
    torch.save({"model_state": {f"module.{k}": v for k, v in encoder.state_dict().items()}, "epoch": 100}, path)
    loaded = load_fgd_encoder(path)
    assert loaded.identity.startswith("AESKConv_240_100.bin sha256:")
    x = torch.randn(1, 64, 330)
    torch.testing.assert_close(loaded(x), encoder(x), rtol=0, atol=0)


def test_fgd_encoder_mismatch_names_keys(tmp_path, encoder):
    state = dict(encoder.state_dict())
    del state["fc_mu.weight"]
    state["encoder.extra.weight"] = torch.zeros(1)
    state["decoder.main.3.bias"] = torch.zeros(7)
    with pytest.raises(ValueError) as err:
        load_fgd_state(random_fgd_encoder(1), state)
    msg = str(err.value)
    assert "fc_mu.weight" in msg and "encoder.extra.weight" in msg and "decoder.main.3.bias" in msg
    with pytest.raises(FileNotFoundError, match="AESKConv_240_100.bin"):
        load_fgd_encoder(tmp_path / "absent.bin")


# ----------------------------------------------------------------------------------------------------
# torchmetrics classes: one batch == several updates


class PooledProjection(nn.Module):
    """A small feature extractor: mean over 16-frame blocks, then a fixed linear map to 8 dims."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(330, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        return self.proj(x.reshape(b, t // 16, 16, d).mean(2))


def _split_equal(make, batches):
    """Value from one update with the concatenated batch vs from one update per batch."""
    whole = make()
    whole.update(*[torch.cat(parts) for parts in zip(*batches)])
    split = make()
    for parts in batches:
        split.update(*parts)
    return float(whole.compute()), float(split.compute())


def test_fgd_metric_batch_equals_split_and_pure():
    torch.manual_seed(0)
    enc = PooledProjection()
    batches = [(torch.randn(3, 128, 330), torch.randn(3, 128, 330) + 0.1) for _ in range(3)]
    for profile in ("semtalk2024", "corrected"):
        a, b = _split_equal(lambda p=profile: FGD(enc, p), batches)
        assert a == pytest.approx(b, rel=1e-10)
        with torch.no_grad():
            fp = torch.cat([enc(p) for p, _ in batches]).reshape(-1, 8).double().numpy()
            ft = torch.cat([enc(t) for _, t in batches]).reshape(-1, 8).double().numpy()
        assert a == pytest.approx(frechet_distance(fp, ft, profile), rel=1e-10)
    # identical inputs give 0; padded lengths are cut per sequence to a multiple of 32
    same = FGD(enc, "corrected")
    x = torch.randn(2, 96, 330)
    same.update(x, x.clone(), lengths=torch.tensor([96, 70]))
    assert abs(float(same.compute())) < 1e-6
    assert same.pred_features[0].shape == (6 + 4, 8)


def test_fgd_metric_with_skeleton_encoder(encoder):
    fgd = FGD(encoder, "corrected")
    assert fgd.encoder_name == "random-init seed=0"
    holder = nn.Module()
    holder.fgd = fgd.to("cpu")
    assert holder.state_dict() == {}  # the encoder's 4.4 M weights never enter checkpoints
    x = fgd_rot6d(torch.randn(2, 64, 165) * 0.3)
    fgd.update(x, x.clone())
    assert fgd.pred_features[0].shape == (8, 240)


def test_bc_metric_batch_equals_split(clicks):
    motions = [_beat_motion(FRAMES, m0) for m0 in (0.5, 0.8, 1.0)] + [_circle_motion(FRAMES, 0.5)]
    batches = [(torch.from_numpy(m)[None], torch.from_numpy(clicks)[None]) for m in motions]
    for profile in ("semtalk2024", "corrected"):
        a, b = _split_equal(lambda p=profile: BeatConsistency(MEAN_SPEED, p), batches)
        assert a == pytest.approx(b, rel=1e-12)
        prof = SEMTALK2024 if profile == "semtalk2024" else CORRECTED
        y = prepare_bc_audio(clicks, prof)
        manual = np.mean([file_beat_consistency(m, y, MEAN_SPEED, prof)[0] for m in motions])
        assert a == pytest.approx(manual, rel=1e-12)


def test_vertex_and_joint_metrics_batch_equals_split():
    g = torch.Generator().manual_seed(5)
    batches = [(torch.randn(2, 24, 30, 3, generator=g), torch.randn(2, 24, 30, 3, generator=g)) for _ in range(3)]
    a, b = _split_equal(FaceMSE, batches)
    assert a == pytest.approx(b, rel=1e-12)
    flat = [(p.numpy(), t.numpy()) for ps, ts in batches for p, t in zip(ps, ts)]
    assert a == pytest.approx(np.mean([face_mse(p, t) for p, t in flat]), rel=1e-12)
    for profile in ("semtalk2024", "corrected"):
        a, b = _split_equal(lambda p=profile: LVD(p), batches)
        assert a == pytest.approx(b, rel=1e-12)
        assert a == pytest.approx(np.mean([lvd(p, t, profile) for p, t in flat]), rel=1e-12)
    a, b = _split_equal(Diversity, [(p,) for p, _ in batches])
    assert a == pytest.approx(b, rel=1e-12)
    assert a == pytest.approx(diversity([p for p, _ in flat]), rel=1e-12)


def test_metrics_respect_lengths():
    g = torch.Generator().manual_seed(6)
    pred, tgt = torch.randn(2, 20, 10, 3, generator=g), torch.randn(2, 20, 10, 3, generator=g)
    padded = LVD("corrected")
    padded.update(pred, tgt, lengths=torch.tensor([20, 12]))
    apart = LVD("corrected")
    apart.update(pred[:1], tgt[:1])
    apart.update(pred[1:, :12], tgt[1:, :12])
    assert float(padded.compute()) == pytest.approx(float(apart.compute()), rel=1e-12)
    with pytest.raises(ValueError, match="lengths"):
        padded.update(pred, tgt, lengths=torch.tensor([21, 3]))


def test_gate_metric_batch_equals_split():
    g = torch.Generator().manual_seed(7)
    batches = [(torch.rand(4, 16, generator=g), (torch.rand(4, 64, generator=g) > 0.7).float()) for _ in range(3)]
    a, b = _split_equal(GateAccuracy, batches)
    assert a == b
    psi = torch.cat([p for p, _ in batches])
    sem = torch.cat([s for _, s in batches])
    assert a == pytest.approx(gate_accuracy(psi, sem))


def _ddp_cases():
    """(metric factory, full inputs) pairs shared by the DDP script and its single-process reference."""
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Unflatten(1, (-1, 16)), nn.Flatten(2), nn.Linear(16 * 330, 8))
    g = torch.Generator().manual_seed(1)
    pred, tgt = torch.randn(4, 64, 330, generator=g), torch.randn(4, 64, 330, generator=g) + 0.2
    verts, verts_t = torch.randn(4, 20, 30, 3, generator=g), torch.randn(4, 20, 30, 3, generator=g)
    psi, sem = torch.rand(4, 8, generator=g), (torch.rand(4, 32, generator=g) > 0.5).float()
    return [
        (lambda: FGD(enc, "corrected"), (pred, tgt)),
        (lambda: LVD("semtalk2024"), (verts, verts_t)),
        (FaceMSE, (verts, verts_t)),
        (Diversity, (verts,)),
        (GateAccuracy, (psi, sem)),
    ]


@pytest.mark.slow
def test_metrics_sync_across_two_ddp_ranks(tmp_path):
    """Two gloo ranks, each updating with half of the data, both compute what one process computes on all."""
    single = metric_values(_ddp_cases())
    for synced in two_rank_values("test_metrics", "_ddp_cases", tmp_path):
        np.testing.assert_allclose(synced, single, rtol=1e-10)


# ----------------------------------------------------------------------------------------------------
# tables


def test_metrics_table_scales_and_names():
    md = metrics_table({"fgd": 0.5514, "bc": 0.7724, "diversity": 13.07, "face_mse": 7.63e-8, "lvd": 7.51e-5},
                       "semtalk2024", "AESKConv_240_100.bin sha256:abc")  # fmt: skip
    assert "`semtalk2024`" in md and "AESKConv_240_100.bin sha256:abc" in md
    for scaled_value in ("5.5140", "7.7240", "13.0700", "7.6300", "7.5100"):
        assert scaled_value in md
    assert "FGD not computed" in metrics_table({"bc": 0.5}, "corrected")


# ----------------------------------------------------------------------------------------------------
# SMPL-X inputs (the `body_model` fixture: semtalk.body.model.BodyModel on the synthetic SMPL-X file)


def test_face_vertices_and_joints_from_params(body_model):
    rng = np.random.default_rng(8)
    n = 40
    poses = (0.2 * rng.normal(size=(n, 165))).astype(np.float32)
    exps = rng.normal(size=(n, 100)).astype(np.float32)
    betas = rng.normal(size=300).astype(np.float32)
    joints = body_joints(body_model, poses, betas)
    assert joints.shape == (n, 55, 3)
    fv = face_vertices(body_model, poses, exps, betas)
    assert fv.shape == (n, 10475, 3)
    # only jaw and expressions matter: changing the body pose leaves the face mesh unchanged
    other = poses.copy()
    other[:, :66] += 0.3
    np.testing.assert_array_equal(face_vertices(body_model, other, exps, betas), fv)
    jaw = poses.copy()
    jaw[:, 66:69] += 0.3
    assert face_mse(face_vertices(body_model, jaw, exps, betas), fv) > 0


def _write_clip(folder: Path, name: str, poses, exps, betas) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / f"{name}.npz", poses=poses.astype(np.float32), expressions=exps.astype(np.float64),
        betas=betas.astype(np.float32), trans=np.zeros((len(poses), 3)), model="smplx2020", gender="neutral",
        mocap_frame_rate=np.int32(30),
    )  # fmt: skip


def test_evaluate_folder_end_to_end(tmp_path, body_model, encoder):
    frames = 150  # 5 s
    rng = np.random.default_rng(9)
    t = np.arange(frames)[:, None] / 30
    gt_dir, pred_dir, same_dir, audio_dir = (tmp_path / d for d in ("gt", "pred", "same", "audio"))
    audio_dir.mkdir()
    clicks = _click_track(frames / 30, np.arange(0.5, frames / 30, 1.0))
    for k in range(2):
        poses = 0.3 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5, 165) * t + rng.uniform(0, 6, 165))
        exps = np.sin(2 * np.pi * rng.uniform(0.3, 1.5, 100) * t)
        betas = rng.normal(size=300)
        _write_clip(gt_dir, f"2_scott_0_{k}_{k}", poses, exps, betas)
        if k == 1:  # a copy of the ground truth, with the prefix SemTalk's outputs carry
            _write_clip(same_dir, "res_2_scott_0_1_1", poses, exps, betas)
        else:  # a perturbed prediction
            _write_clip(pred_dir, "2_scott_0_0_0", poses + 0.05 * rng.normal(size=poses.shape), exps * 0.5, betas)
        sf.write(audio_dir / f"2_scott_0_{k}_{k}.wav", clicks, SR, subtype="FLOAT")

    out = tmp_path / "eval"
    res = evaluate_folder(
        same_dir, gt_dir, audio_dir, "corrected", body_model, encoder, mean_vel=MEAN_SPEED, output_dir=out
    )
    assert res["files"] == {"2_scott_0_1_1": frames}  # ground truth without a prediction is not scored
    assert abs(res["fgd"]) < 1e-6 and res["face_mse"] == 0.0 and res["lvd"] == 0.0
    assert res["diversity"] > 0 and 0.0 <= res["bc"] <= 1.0
    assert json.loads((out / "metrics.json").read_text())["fgd_encoder"] == "random-init seed=0"
    assert "`corrected`" in (out / "metrics.md").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    res24 = evaluate_folder(pred_dir, gt_dir, audio_dir, "semtalk2024", body_model, mean_vel=MEAN_SPEED)
    assert res24["files"] == {"2_scott_0_0_0": 124}  # 150 -> 144 -> 2 * 60 + 4
    assert res24["face_mse"] > 0 and res24["lvd"] > 0 and "fgd" not in res24 and res24["fgd_encoder"] is None
    assert res24["scaled"]["face_mse"] == pytest.approx(res24["face_mse"] * 1e8)

    (pred_dir / "2_scott_0_9_9.npz").write_bytes((pred_dir / "2_scott_0_0_0.npz").read_bytes())
    with pytest.raises(ValueError, match="2_scott_0_9_9"):
        evaluate_folder(pred_dir, gt_dir, profile="corrected", fgd_encoder=encoder)


# ----------------------------------------------------------------------------------------------------
# the real BEAT2 clip, when present


@pytest.mark.skipif(not SAMPLE.with_suffix(".npz").exists(), reason=f"real BEAT2 clip not found at {SAMPLE}")
@pytest.mark.skipif(not MEAN_VEL.exists(), reason=f"BEAT2 mean joint speeds not found at {MEAN_VEL}")
def test_real_clip_bc_of_ground_truth(body_model):
    data = np.load(SAMPLE.with_suffix(".npz"))
    audio_s = sf.info(str(SAMPLE.with_suffix(".wav"))).duration
    n = generated_length(data["poses"].shape[0], audio_s)
    assert n == 1864
    joints = body_joints(body_model, data["poses"][:n], data["betas"])
    mean_vel = np.load(MEAN_VEL)
    scores = {}
    for prof in (SEMTALK2024, CORRECTED):
        y = load_bc_audio(SAMPLE.with_suffix(".wav"), prof)
        scores[prof.name], weight = file_beat_consistency(joints, y, mean_vel, prof)
        assert weight == n - 120 and 0.0 < scores[prof.name] < 1.0
    print(
        "\nBC of 2_scott_0_1_1 ground truth (synthetic SMPL-X body): "
        + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
    )
