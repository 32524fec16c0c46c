"""Stage 2: the base generator stage on tiny stage-1 checkpoints."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from motion_fixtures import HUBERT_DIM, PartWindows, train_tiny_stage1
from semtalk.nn.compiled import compile_blocks
from stages.base import BaseStage, level_cross_entropy, mask_ratio, random_mask

TINY_GEN = dict(
    hidden=32,
    motion_f=16,
    heads=2,
    audio_layers=1,
    face_layers=1,
    residual_layers=1,
    residual_heads=2,
    motion_encoder_layers=1,
)
SPEC = {"hubert_dim": HUBERT_DIM, "beat_dim": 3, "window": 32, "seed_frames": 4, "num_speakers": 25, "fps": 30}


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    return train_tiny_stage1(tmp_path_factory.mktemp("stage1"))


def make_stage(stage1, **kw):
    vq = {p: stage1[p] for p in ("face", "upper", "hands", "lower")}
    return BaseStage(vq, stage1["global_motion"], spec=SPEC, generator=TINY_GEN, **kw)


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


def test_mask_schedule_and_stale_index():
    assert mask_ratio(0) == pytest.approx(0.05) and mask_ratio(129) == pytest.approx(0.05 + 0.95 * 129 / 400)
    assert mask_ratio(130) == 0.35875
    logits = torch.randn(2, 4, 3, 5)
    codes = torch.randint(0, 5, (2, 4, 3))
    stale = level_cross_entropy(logits, codes, stale_index=True)
    last = torch.nn.functional.cross_entropy(logits[:, :, 2].flatten(0, 1), codes[:, :, 2].flatten())
    assert torch.allclose(stale, last)
    fixed = level_cross_entropy(logits, codes)
    manual = sum(
        torch.nn.functional.cross_entropy(logits[:, :, i].flatten(0, 1), codes[:, :, i].flatten()) / (i + 1)
        for i in range(3)
    )
    assert torch.allclose(fixed, manual)
    weight = torch.rand(2, 4)
    weighted = sum(
        (torch.nn.functional.cross_entropy(logits[:, :, i].flatten(0, 1), codes[:, :, i].flatten(), reduction="none")
         * weight.flatten()).mean() / (i + 1)
        for i in range(3)
    )  # fmt: skip
    assert torch.allclose(level_cross_entropy(logits, codes, weight), weighted)


def test_training_step_and_frozen_tokenizers(tmp_path, stage1):
    stage = make_stage(stage1)
    books = {p: t.quantizer.codebooks.clone() for p, t in stage.codec.tokenizers.items()}
    loader = DataLoader(PartWindows(8, 32), batch_size=4)
    losses = stage.training_losses(next(iter(loader)))
    assert set(losses) == {
        "latent_gen",
        "cls_gen",
        "rhythm",
        "latent_mask",
        "cls_mask",
        "latent_audio_mask",
        "cls_audio_mask",
    }
    assert all(torch.isfinite(v) for v in losses.values())
    trainer = _trainer(tmp_path, max_steps=3)
    trainer.fit(stage, loader)
    for p, t in stage.codec.tokenizers.items():
        assert torch.equal(books[p], t.quantizer.codebooks), f"{p} codebook moved during stage 2"
    assert not any(p.requires_grad for p in stage.codec.parameters())
    # the checkpoint holds no tokenizer weights, and reloads by path
    path = tmp_path / "base.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, weights_only=True)["state_dict"]
    assert not any(k.startswith("codec.") for k in state)
    reloaded = BaseStage.load_from_checkpoint(path)
    assert torch.equal(reloaded.seed_sum, stage.seed_sum)


@pytest.mark.parametrize("frames", [61, 64, 500])
def test_generation_of_any_length(stage1, frames):
    stage = make_stage(stage1).eval()
    hubert, beat = torch.randn(2, frames, HUBERT_DIM), torch.rand(2, frames, 3)
    result = stage.generate(hubert, beat, torch.tensor([0, 1]), frames)
    assert result.params.poses.shape == (2, frames, 165) and result.params.trans.shape == (2, frames, 3)
    assert result.parts["face"].shape == (2, frames, 106)
    assert torch.isfinite(result.params.poses).all()
    tokens = result.codes["upper"].shape[1]
    assert tokens * 4 >= frames and result.codes["upper"].dtype == torch.int64


def test_validation_reports_errors(tmp_path, stage1):
    stage = make_stage(stage1)
    val = DataLoader(PartWindows(2, 64, seed=3), batch_size=1)
    trainer = _trainer(tmp_path, max_steps=1, limit_val_batches=2)
    trainer.fit(stage, DataLoader(PartWindows(4, 32), batch_size=4), val)
    metrics = trainer.callback_metrics
    assert "val/rotation_error" in metrics and metrics["val/rotation_error"] > 0
    assert "val/mean_pose_rotation_error" in metrics


def test_checkpoint_on_other_tokenizers_is_refused(tmp_path, stage1):
    stage = make_stage(stage1)
    trainer = _trainer(tmp_path, max_steps=1)
    trainer.fit(stage, DataLoader(PartWindows(4, 32), batch_size=4))
    trainer.save_checkpoint(tmp_path / "base.ckpt")
    other = train_tiny_stage1(tmp_path / "other", steps=1)
    vq_other = {p: other[p] for p in ("face", "upper", "hands", "lower")}
    with pytest.raises(ValueError, match="is not the one this checkpoint was trained with"):
        BaseStage.load_from_checkpoint(tmp_path / "base.ckpt", tokenizers=vq_other)


def test_compiled_blocks_give_the_eager_losses_and_keep_the_checkpoint_names(stage1):
    """`compile_blocks: true` compiles the generator block by block when a run starts (`configure_model`)."""
    torch.manual_seed(0)
    eager = make_stage(stage1).eval()
    compiled = make_stage(stage1, compile_blocks=True).eval()
    compiled.load_state_dict(eager.state_dict())
    names = list(compiled.state_dict())
    compiled.configure_model()
    assert list(compiled.state_dict()) == names  # compiled in place: the checkpoint layout is unchanged
    assert compiled.generator.body._compiled_call_impl is not None
    assert compile_blocks(compiled.generator) == 0  # a second run's configure_model compiles nothing again
    batch = next(iter(DataLoader(PartWindows(8, 32), batch_size=4)))
    with torch.no_grad():  # inference graphs only: compiling the backward as well doubles the test's time
        torch.manual_seed(1)
        want = eager.training_losses(batch)
        torch.manual_seed(1)
        got = compiled.training_losses(batch)
    for name, value in want.items():
        torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-5, msg=name)


def test_random_masks_element_wise_and_in_spans(stage1):
    torch.manual_seed(0)
    latent = torch.zeros(64, 40, 7)
    elem = random_mask(latent, 0.3)
    assert elem.shape == latent.shape and abs(float(elem.mean()) - 0.3) < 0.02
    assert not torch.equal(elem[..., 0], elem[..., 1])  # channels masked independently
    spans = random_mask(latent, 0.3, spans=8)
    assert torch.equal(spans, spans[..., :1].expand_as(spans))  # whole frames
    runs = spans[..., 0].view(64, 5, 8)
    assert torch.equal(runs, runs[..., :1].expand_as(runs))  # in runs of 8 frames
    assert 0.2 < float(spans.mean()) < 0.4
    odd = random_mask(torch.zeros(2, 10, 3), 1.0, spans=4)
    assert odd.shape == (2, 10, 3) and bool(odd.all())
    with pytest.raises(ValueError, match="mask_spans"):
        make_stage(stage1, mask_spans=-1)


def test_generation_pass_alone(stage1):
    """masked_passes=False trains pass 1 only: its losses equal the three-pass stage's pass-1 losses."""
    batch = next(iter(DataLoader(PartWindows(8, 32), batch_size=4)))
    three, one = make_stage(stage1).eval(), make_stage(stage1, masked_passes=False).eval()  # eval: no dropout
    one.load_state_dict(three.state_dict())
    torch.manual_seed(0)
    want = three.training_losses(batch)
    got = one.training_losses(batch)
    assert set(got) == {"latent_gen", "cls_gen", "rhythm"}
    for k in got:
        torch.testing.assert_close(got[k], want[k], rtol=1e-4, atol=1e-5, msg=k)


def test_beat_norm_standardises_the_beat_features(stage1):
    """beat_norm: the beat MLP sees standardised channels, so scaling one channel changes nothing in training."""
    vq = {p: stage1[p] for p in ("face", "upper", "hands", "lower")}
    stage = BaseStage(vq, stage1["global_motion"], spec=SPEC, generator={**TINY_GEN, "beat_norm": True})
    branch = stage.generator.audio_body
    hubert, beat = torch.randn(4, 32, HUBERT_DIM), torch.rand(4, 32, 3)
    scaled = beat.clone()
    scaled[..., 1] = 40.0 * scaled[..., 1] + 5.0
    branch.train()
    torch.testing.assert_close(branch(hubert, beat)[0], branch(hubert, scaled)[0], rtol=1e-3, atol=1e-4)
    raw = make_stage(stage1).generator.audio_body
    assert raw.beat_norm is None and not torch.allclose(raw(hubert, beat)[0], raw(hubert, scaled)[0])
