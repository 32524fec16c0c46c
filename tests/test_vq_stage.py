"""Stage 1: RVQ-VAE shapes, fit, self-describing checkpoints, reload round trip, resume, DDP codebook sync."""

import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from motion_fixtures import PartWindows
from semtalk.nn.rvqvae import RVQVAE
from semtalk.tokenizer import check_compatible, load_checkpoint, read_tokenizer_card
from stages.global_motion import GlobalMotionStage
from stages.vq import VQStage

TINY = dict(width=32, code_dim=16, depth=1, num_quantizers=3, codebook_size=16, dropout=0.0)


def _trainer(tmp_path, **kw):
    kw.setdefault("max_steps", 3)
    return L.Trainer(
        default_root_dir=tmp_path, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, **kw,
    )  # fmt: skip


def _loaders(n=16, frames=32, batch=4):
    return DataLoader(PartWindows(n, frames), batch_size=batch, shuffle=False), DataLoader(
        PartWindows(4, frames, seed=9), batch_size=2
    )


def test_rvqvae_shapes_and_round_trip():
    m = RVQVAE(78, **TINY).eval()
    x = torch.randn(2, 64, 78)
    idx = m.encode(x)
    assert idx.shape == (2, 16, 3) and idx.dtype == torch.int64
    assert torch.allclose(m.decode(idx), m(x).recon, atol=1e-5)
    assert m.level_codes(idx).shape == (3, 2, 16, 16)
    # the per-level codes sum to the quantized latent
    assert torch.allclose(m.level_codes(idx).sum(0), m.quantizer.decode(idx), atol=1e-5)
    with pytest.raises(ValueError, match="multiple of 4"):
        m.encode(torch.randn(1, 30, 78))


@pytest.mark.parametrize("part", ["face", "upper", "hands", "lower"])
def test_vq_stage_fit_reload_round_trip(tmp_path, part):
    train, val = _loaders()
    stage = VQStage(part, **TINY)
    ckpt_cb = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _trainer(tmp_path, callbacks=[ckpt_cb], max_steps=4, val_check_interval=2).fit(stage, train, val)
    last = tmp_path / "ckpt" / "last.ckpt"
    # the normalisation statistics were set from the training data and travel with the tokenizer
    assert bool(stage.model.statistics_set) and stage.model.feature_std.min() >= 1e-2
    assert torch.allclose(stage.model.feature_mean, torch.cat([b[part] for b in train]).mean(dim=(0, 1)), atol=1e-4)
    card = read_tokenizer_card(last)
    assert card == {"part": part, "dim": stage.dim, "num_quantizers": 3, "codebook_size": 16, "code_dim": 16,
                    "downsample": 4, "fps": 30}  # fmt: skip
    check_compatible(card, last, part=part, num_quantizers=3, codebook_size=16, fps=30)
    with pytest.raises(ValueError, match="codebook_size: checkpoint has 16, expected 256"):
        check_compatible(card, last, part=part, codebook_size=256)
    reloaded = VQStage.load_from_checkpoint(last).eval()
    stage.eval()
    x = next(iter(val))[part]
    idx = stage.encode(x)
    assert torch.equal(reloaded.encode(x), idx)
    assert torch.allclose(reloaded.decode(idx), stage.decode(idx), atol=1e-6)
    assert reloaded.decode(idx).shape == x.shape


def test_fit_resumes_from_last(tmp_path):
    train, val = _loaders()
    cb = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    _trainer(tmp_path, callbacks=[cb], max_steps=2).fit(VQStage("upper", **TINY), train, val)
    assert load_checkpoint(tmp_path / "ckpt" / "last.ckpt")["global_step"] == 2
    stage = VQStage("upper", **TINY)
    trainer = _trainer(tmp_path, callbacks=[ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)], max_steps=5)
    trainer.fit(stage, train, val, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert trainer.global_step == 5


def test_wrong_stage_and_malicious_checkpoints_are_refused(tmp_path):
    gm = tmp_path / "gm.ckpt"
    train, _ = _loaders()
    trainer = _trainer(tmp_path, max_steps=1)
    trainer.fit(GlobalMotionStage(width=16, layers=1), train)
    trainer.save_checkpoint(gm)
    with pytest.raises(ValueError, match="not a stage-1 tokenizer checkpoint"):
        read_tokenizer_card(gm)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.ckpt"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(ValueError, match="not a loadable checkpoint"):
        load_checkpoint(evil)
    assert not (tmp_path / "pwned").exists()


def test_global_motion_learns_translation(tmp_path):
    train, val = _loaders(n=8, frames=32, batch=8)
    stage = GlobalMotionStage(width=32, layers=2, lr=3e-3)
    first = stage._losses(next(iter(train))["lower"])[0]["trajectory"].item()
    _trainer(tmp_path, max_steps=60).fit(stage, train)
    stage.eval()
    after = stage._losses(next(iter(train))["lower"])[0]["trajectory"].item()
    assert after < 0.5 * first


@pytest.mark.slow
def test_ddp_codebooks_stay_identical(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK")}  # fmt: skip
    script = Path(__file__).parent / "scripts" / "ddp_vq.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    books = [torch.load(tmp_path / f"codebooks_rank{r}.pt", weights_only=True) for r in (0, 1)]
    start = torch.load(tmp_path / "codebooks_start.pt", weights_only=True)
    assert torch.equal(books[0], books[1]), "codebooks diverged across DDP ranks"
    assert not torch.equal(books[0], start), "codebooks did not train"


@pytest.mark.parametrize("part", ["upper", "lower"])
def test_joint_losses_with_a_body_model(tmp_path, smplx_root, part):
    train, val = _loaders(n=4, frames=32, batch=2)
    stage = VQStage(part, smplx_root=str(smplx_root), **TINY)
    batch = next(iter(train))
    losses = stage.part_losses(batch[part] + 0.05, batch[part], batch["betas"])
    assert losses["joints"] > 0 and torch.isfinite(losses["joints"])
    if part == "lower":
        assert "foot_skate" in losses and "contact" in losses
    zero = stage.part_losses(batch[part], batch[part], batch["betas"])
    assert zero["joints"] < 1e-10 and zero["geodesic"] < 1e-3
    # the metre-valued error: exact features give 0, the mean-pose baseline does not
    err = stage.reconstruction_error(batch[part], batch[part], batch["betas"])
    assert err.abs().max() < 1e-6
    _trainer(tmp_path, max_steps=2).fit(stage, train, val)
    assert stage.feature_count > 0
    base = stage.reconstruction_error(stage.mean_pose(batch[part]), batch[part], batch["betas"])
    assert (base > 0.001).all()


def test_joint_crop_runs_kinematics_on_a_contiguous_crop(smplx_root):
    train, _ = _loaders(n=4, frames=32, batch=2)
    batch = next(iter(train))
    x, betas = batch["lower"], batch["betas"]
    pred = x.clone()
    pred[:, 20:, :54] += 0.2  # only frames 20.. are wrong
    stage = VQStage("lower", smplx_root=str(smplx_root), joint_crop=8, **TINY)
    seen = []
    part_joints = stage._part_joints
    stage._part_joints = lambda feats, b: seen.append(feats.shape[1]) or part_joints(feats, b)
    stage.train()
    torch.manual_seed(0)
    crops = [float(stage.part_losses(pred, x, betas)["joints"]) for _ in range(12)]
    assert set(seen) == {8}, "forward kinematics must run on the 8-frame crop in training"
    assert min(crops) < 1e-10 < max(crops), "crops before frame 20 are exact, later ones are not"
    seen.clear()
    stage.eval()
    full = stage.part_losses(pred, x, betas)["joints"]
    assert set(seen) == {32} and full > 0, "evaluation uses every frame"


def test_normalized_feature_loss_weighs_channels_by_their_spread():
    raw, norm = VQStage("hands", **TINY), VQStage("hands", feature_loss="normalized", **TINY)
    std = torch.full((raw.dim,), 1.0)
    std[0] = 0.02  # a low-variance channel
    for stage in (raw, norm):
        stage.model.set_statistics(torch.zeros(raw.dim), std)
    gt = torch.zeros(2, 8, raw.dim)
    small = gt.clone()
    small[..., 0] = 0.02  # one spread of error on the low-variance channel
    large = gt.clone()
    large[..., 1] = 0.02  # the same absolute error on a unit-variance channel
    assert raw.part_losses(small, gt, None)["features"] == pytest.approx(raw.part_losses(large, gt, None)["features"])
    n_small, n_large = norm.part_losses(small, gt, None)["features"], norm.part_losses(large, gt, None)["features"]
    assert n_small > 100 * n_large  # standardised: an error of one std costs far more than 0.02 std
    with pytest.raises(ValueError, match="feature_loss"):
        VQStage("hands", feature_loss="whitened", **TINY)
