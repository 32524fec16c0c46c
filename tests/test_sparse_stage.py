"""Stage 3: the sparse stage on a tiny frozen base: losses, W_l, the gate target, fusion and generation."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from motion_fixtures import CLIP_DIM, EMOTION_DIM, HUBERT_DIM, VOCAB, PartWindows, train_tiny_stage1
from stages.base import BaseStage
from stages.sparse import SparseStage, token_scores

GEN = dict(hidden=32, motion_f=16, heads=2, residual_layers=1, residual_heads=2, motion_encoder_layers=1)
SPEC = {
    "hubert_dim": HUBERT_DIM,
    "beat_dim": 3,
    "window": 32,
    "seed_frames": 4,
    "num_speakers": 25,
    "fps": 30,
    "vocab_size": VOCAB,
    "clip_dim": CLIP_DIM,
    "emotion_dim": EMOTION_DIM,
}
SPARSE_GEN = dict(GEN, semantic_layers=1, word_dim=8)


def _trainer(tmp_path, **kw):
    return L.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kw,
    )


@pytest.fixture(scope="module")
def base_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    s1 = train_tiny_stage1(out)
    vq = {p: s1[p] for p in ("face", "upper", "hands", "lower")}
    stage = BaseStage(vq, s1["global_motion"], spec=SPEC, generator=dict(GEN, audio_layers=1, face_layers=1))
    trainer = _trainer(out, max_steps=2)
    trainer.fit(stage, DataLoader(PartWindows(8, 32), batch_size=4))
    trainer.save_checkpoint(out / "base.ckpt")
    return str(out / "base.ckpt")


def make_sparse(base_ckpt, **kw):
    return SparseStage(base_ckpt, spec=SPEC, generator=dict(SPARSE_GEN, **kw.pop("generator", {})), **kw)


def _batch(n=4, frames=32, seed=0):
    return next(iter(DataLoader(PartWindows(n, frames, seed=seed), batch_size=n)))


def test_token_scores():
    sem = torch.tensor([[0, 0, 0.4, 0.4, 1, 1, 1, 1]], dtype=torch.float32)
    assert torch.allclose(token_scores(sem), torch.tensor([[0.2, 1.0]]))


def test_loss_weighting_by_annotation(base_ckpt):
    stage = make_sparse(base_ckpt)
    batch = _batch()
    batch["sem"] = torch.zeros_like(batch["sem"])
    losses, _ = stage.training_losses(batch)
    # W_l: windows without semantic frames give no reconstruction or code loss, only the gate loss
    assert all(losses[k] == 0 for k in losses if not k.startswith("gate"))
    assert all(losses[k] > 0 for k in losses if k.startswith("gate"))
    batch["sem"] = torch.ones_like(batch["sem"])
    torch.manual_seed(0)
    weighted, _ = stage.training_losses(batch)
    unweighted_stage = make_sparse(base_ckpt, loss_weighting=False)
    unweighted_stage.generator.load_state_dict(stage.generator.state_dict())
    torch.manual_seed(0)
    unweighted, _ = unweighted_stage.training_losses(batch)
    for k in ("latent_gen", "cls_gen"):
        assert torch.allclose(weighted[k], unweighted[k], atol=1e-6)
    once = make_sparse(base_ckpt, gate_every_pass=False)
    assert [k for k in once.training_losses(batch)[0] if k.startswith("gate")] == ["gate_mask"]


def test_weight_by_presence_ignores_the_score_magnitude(base_ckpt):
    """weight_by=presence weighs every annotated token 1: a low and a high score give the same losses, while
    weight_by=score scales them by the score."""
    batch = _batch()
    scored, present = make_sparse(base_ckpt), make_sparse(base_ckpt, weight_by="presence")
    present.generator.load_state_dict(scored.generator.state_dict())
    out = {}
    for level in (0.3, 1.0):
        batch["sem"] = torch.full_like(batch["sem"], level)
        for name, stage in (("score", scored), ("presence", present)):
            torch.manual_seed(0)
            out[name, level] = stage.training_losses(batch)[0]["cls_gen"]
    assert torch.allclose(out["presence", 0.3], out["presence", 1.0], atol=1e-6)
    assert torch.allclose(out["score", 0.3], 0.3 * out["score", 1.0], atol=1e-5)
    assert torch.allclose(out["score", 1.0], out["presence", 1.0], atol=1e-6)
    with pytest.raises(ValueError, match="weight_by"):
        make_sparse(base_ckpt, weight_by="class")


def test_fit_keeps_base_frozen_and_reloads(tmp_path, base_ckpt):
    stage = make_sparse(base_ckpt)
    before = {k: v.clone() for k, v in stage.base.state_dict().items()}
    val = DataLoader(PartWindows(2, 64, seed=5), batch_size=1)
    trainer = _trainer(tmp_path, max_steps=3, limit_val_batches=1)
    trainer.fit(stage, DataLoader(PartWindows(8, 32), batch_size=4), val)
    after = stage.base.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the frozen base changed"
    assert 0.0 <= trainer.callback_metrics["val/gate_accuracy"] <= 1.0
    path = tmp_path / "sparse.ckpt"
    trainer.save_checkpoint(path)
    assert not any(k.startswith("base.") for k in torch.load(path, weights_only=True)["state_dict"])
    reloaded = SparseStage.load_from_checkpoint(path)
    for k, v in stage.generator.state_dict().items():
        assert torch.equal(v, reloaded.generator.state_dict()[k])


def test_fusion_beta_extremes(base_ckpt):
    stage = make_sparse(base_ckpt).eval()
    b = _batch(2, 32, seed=7)
    feats = {k: b[k] for k in ("hubert", "beat", "words", "emotion")}
    speaker = b["speaker"].long()
    seed = b["latent_all"][:, :4]
    rhythm = stage.generate(feats, b["clip_text"], speaker, 32, seed_latent=seed, mode="rhythm")
    fused_b1 = stage.generate(feats, b["clip_text"], speaker, 32, seed_latent=seed, beta=1.0)
    for p in ("face", "upper", "hands", "lower"):
        assert torch.equal(fused_b1.codes[p], rhythm.codes[p])
    assert torch.equal(fused_b1.params.poses, rhythm.params.poses)
    # beta = 0 (psi > 0 everywhere): one window, so the body codes are the sparse model's own
    fused_b0 = stage.generate(feats, b["clip_text"], speaker, 32, seed_latent=seed, beta=0.0)
    latent = torch.zeros(2, 32, 337)
    latent[:, :4] = seed
    mask = torch.ones_like(latent)
    mask[:, :4] = 0
    base_latents = stage.base.generator.forward_latents(b["hubert"], b["beat"], latent, mask, speaker)
    sparse_codes, psi = stage.generator.generate_codes(
        b["words"], b["clip_text"], b["hubert"], latent, mask, speaker, b["emotion"], base_latents, stage.base.codes_of
    )
    assert (psi > 0).all()
    for p in ("upper", "hands", "lower"):
        assert torch.equal(fused_b0.codes[p], sparse_codes[p])
    assert torch.equal(fused_b0.codes["face"], rhythm.codes["face"])
    assert fused_b0.psi.shape == (2, 32)


def test_init_from_base_copies_the_shared_modules(base_ckpt):
    """init_from_base: the body trunk gives the base's part latents for the same hint and memory, and the level-0
    classifiers of upper/hands/lower the base's logits; the semantic encoder keeps its own initialisation."""
    torch.manual_seed(0)
    stage = make_sparse(base_ckpt, init_from_base=True)
    fresh = make_sparse(base_ckpt)
    base, gen = stage.base.generator, stage.generator.eval()  # no dropout in either
    hint = torch.randn(2, 32, GEN["motion_f"])
    speaker = torch.tensor([0, 3])
    memory = torch.randn(2, 32, base.code_dim)
    ours, theirs = gen.body(hint, speaker, memory), base.body(hint, speaker, memory)
    for p in ("upper", "hands", "lower"):
        assert torch.allclose(ours[p], theirs[p], atol=1e-6)
    z = torch.randn(3, 2, 8, base.code_dim)  # (G, B, T', D) for upper, hands, lower
    zb = torch.cat([torch.zeros(1, 2, 8, base.code_dim), z])  # base groups: face, upper, hands, lower
    assert torch.allclose(gen.predictors.level0(z), base.predictors.level0(zb)[1:], atol=1e-6)
    assert not torch.allclose(fresh.generator.body.hint_proj.weight, base.body.hint_proj.weight)
    wider = make_sparse(base_ckpt, generator=dict(hidden=48))
    with pytest.raises(ValueError, match="same widths"):
        wider.generator.init_from_base(base)
