"""The stage-2/3 generator networks at debug size: shapes, masking, audio/semantic switches, rhythm InfoNCE,
Sem-gate, W_f, psi-blend, code generation and fusion, gradient coverage."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from semtalk.nn.attention import PeriodicPositionalEncoding
from semtalk.nn.base_generator import BODY_PARTS, PARTS, BaseGenerator
from semtalk.nn.rhythm import RhythmConsistencyLoss, frame_infonce, sequence_infonce
from semtalk.nn.sparse_generator import SparseGenerator, fuse_codes

B = 2


def base_inputs(g: BaseGenerator, t: int = 64, seed: int = 0, mask_ratio: float = 1.0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, t, g.latent_dim, generator=gen) < mask_ratio
    mask[:, :4] = False  # seed frames
    return dict(
        hubert=torch.randn(B, t, g.hubert_dim, generator=gen),
        beat=torch.randn(B, t, g.beat_dim, generator=gen),
        latent_all=torch.randn(B, t, g.latent_dim, generator=gen),
        mask=mask,
        speaker=torch.randint(0, g.num_speakers, (B,), generator=gen),
    )


def sparse_inputs(s: SparseGenerator, t: int = 64, seed: int = 0, mask_ratio: float = 1.0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, t, s.latent_dim, generator=gen) < mask_ratio
    mask[:, :4] = False
    return dict(
        words=torch.randint(0, s.vocab_size, (B, t), generator=gen),
        clip=torch.randn(B, s.clip_dim, generator=gen),
        hubert=torch.randn(B, t, s.hubert_dim, generator=gen),
        emotion=torch.randn(B, t, s.emotion_dim, generator=gen),
        latent_all=torch.randn(B, t, s.latent_dim, generator=gen),
        mask=mask,
        speaker=torch.randint(0, s.num_speakers, (B,), generator=gen),
    )


def fake_base_latents(t: int, d: int, seed: int = 1) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {p: torch.randn(B, t // 4, d, generator=gen) for p in PARTS}


@pytest.fixture(scope="module")
def base() -> BaseGenerator:
    torch.manual_seed(0)
    return BaseGenerator.tiny().eval()


@pytest.fixture(scope="module")
def sparse() -> SparseGenerator:
    torch.manual_seed(0)
    return SparseGenerator.tiny().eval()


# ---------------------------------------------------------------- base generator


@pytest.mark.parametrize("t", [32, 64, 128])
def test_base_forward_shapes(base: BaseGenerator, t: int) -> None:
    out = base(**base_inputs(base, t))
    q, c, d = base.num_quantizers, base.codebook_size, base.code_dim
    for p in PARTS:
        assert out.logits[p].shape == (B, t // 4, q, c)
        assert out.latents[p].shape == (B, t // 4, q, d)
        assert out.prezq[p].shape == out.cascaded[p].shape == (B, t // 4, d)
        # level 0 of the regressed latents is the cascaded part latent
        assert torch.equal(out.latents[p][:, :, 0], out.cascaded[p])
        assert torch.isfinite(out.logits[p]).all()
    for f in (out.fusion_face, out.fusion_body, out.hubert_face, out.hubert_body):
        assert f.shape == (B, t, d)
    lat = base.forward_latents(**base_inputs(base, t))
    assert set(lat) == set(PARTS) and all(v.shape == (B, t // 4, d) for v in lat.values())
    assert torch.equal(lat["hands"], out.cascaded["hands"])


def test_base_rejects_bad_inputs(base: BaseGenerator) -> None:
    inp = base_inputs(base, 64)
    with pytest.raises(ValueError, match="multiple of 4"):
        base(**{k: v[:, :30] if v.dim() > 1 else v for k, v in inp.items()})
    with pytest.raises(ValueError, match="speaker"):
        base(**{**inp, "speaker": torch.tensor([0, base.num_speakers])})
    with pytest.raises(ValueError, match="hubert"):
        base(**{**inp, "hubert": inp["hubert"][..., :5]})
    with pytest.raises(ValueError, match="frames_per_token"):
        BaseGenerator.tiny(frames_per_token=2)


def test_positional_encoding_is_periodic() -> None:
    pe = PeriodicPositionalEncoding(8, period=64, dropout=0.0)
    y = pe(torch.zeros(1, 150, 8))
    assert torch.equal(y[:, 64:128], y[:, :64]) and torch.equal(y[:, 128:], y[:, :22])
    assert not torch.equal(y[:, 1], y[:, 0])


@pytest.mark.parametrize("memory_pe", [False, True])
def test_memory_positions_let_attention_align_frames(memory_pe: bool) -> None:
    """Without positions on the memory, the face decoder cannot tell where a speech frame lies: moving the speech
    frames around leaves its output unchanged. With them (the default) the output follows the frames."""
    from semtalk.nn.base_generator import FaceBranch
    from semtalk.nn.code_predictor import PartCodePredictors

    torch.manual_seed(0)
    face = FaceBranch(32, 16, 16, 16, 2, 1, 3, 64, 0.0, memory_pe=memory_pe).eval()
    fusion, hint, speaker = torch.randn(2, 64, 16), torch.randn(2, 64, 16), torch.tensor([0, 2])
    perm = torch.randperm(64)
    with torch.no_grad():
        same = torch.allclose(face(fusion, hint, speaker), face(fusion[:, perm], hint[:, perm], speaker), atol=1e-5)
    assert same != memory_pe
    pred = PartCodePredictors(("face",), 16, 32, 8, 3, 1, 2, 0.0, memory_pe=memory_pe).eval()
    latent0, memory = {"face": torch.randn(2, 16, 16)}, torch.randn(2, 64, 16)
    with torch.no_grad():
        a, b = pred(latent0, {"face": memory})[0]["face"], pred(latent0, {"face": memory[:, perm]})[0]["face"]
    assert torch.allclose(a[:, :, 1:], b[:, :, 1:], atol=1e-5) != memory_pe  # the residual levels attend
    assert PeriodicPositionalEncoding(16, 64, 0.0).token_codes(3, 4).shape == (3, 16)


def test_mask_embedding_replaces_masked_motion(base: BaseGenerator) -> None:
    inp = base_inputs(base, 64)
    full = torch.ones_like(inp["mask"])
    with torch.no_grad():
        a = base(**{**inp, "mask": full})
        b = base(**{**inp, "mask": full, "latent_all": torch.randn_like(inp["latent_all"])})
        unmasked = base(**{**inp, "mask": torch.zeros_like(full)})
        assert torch.equal(a.logits["upper"], b.logits["upper"])  # fully masked: motion is never read
        assert not torch.allclose(a.logits["upper"], unmasked.logits["upper"])
        saved = base.motion_encoder.mask_embedding.clone()
        try:
            base.motion_encoder.mask_embedding.add_(1.0)
            c = base(**{**inp, "mask": full})
        finally:
            base.motion_encoder.mask_embedding.copy_(saved)
    assert not torch.allclose(a.logits["upper"], c.logits["upper"])  # ... the mask embedding is


def test_use_audio_body_false_skips_body_audio_cross_attention(base: BaseGenerator) -> None:
    inp = base_inputs(base, 64)
    other = {**inp, "hubert": torch.randn_like(inp["hubert"]), "beat": torch.randn_like(inp["beat"])}
    with torch.no_grad():
        off1, off2 = base(**inp, use_audio_body=False), base(**other, use_audio_body=False)
        on1, on2 = base(**inp), base(**other)
    for p in BODY_PARTS:  # body trunk latents no longer hear the audio ...
        assert torch.equal(off1.prezq[p], off2.prezq[p])
        assert not torch.allclose(on1.prezq[p], on2.prezq[p])
    # ... but the face branch, the cascade (hands <- face) and the residual predictors still do
    assert not torch.allclose(off1.prezq["face"], off2.prezq["face"])
    assert not torch.allclose(off1.cascaded["hands"], off2.cascaded["hands"])
    assert not torch.allclose(off1.cascaded["upper"], off2.cascaded["upper"])  # upper reads hands_new
    assert not torch.allclose(off1.logits["lower"][:, :, 1:], off2.logits["lower"][:, :, 1:])


@pytest.mark.parametrize("given", [False, True])
def test_forward_passes_equal_separate_forwards(given: bool) -> None:
    """The three training passes batched into one call give each pass's own outputs and the same gradients
    (dropout off), also when only some passes use the body's audio attention."""
    torch.manual_seed(0)
    g = BaseGenerator.tiny(dropout=0.0).eval()  # eval: the audio BatchNorm uses its running statistics
    inp = base_inputs(g, 64)
    masks = [inp["mask"].float(), (torch.rand_like(inp["latent_all"]) < 0.3).float(), torch.zeros_like(inp["mask"])]
    flags = [True, False, True]
    codes = {p: torch.randn(B, 16, g.num_quantizers, g.code_dim) for p in PARTS} if given else None
    args = (inp["hubert"], inp["beat"], inp["latent_all"])

    def loss(outs) -> torch.Tensor:
        return sum((o.latents[p] ** 2).mean() + o.logits[p].logsumexp(-1).mean() for o in outs for p in PARTS)

    batched = g.forward_passes(*args, masks, flags, inp["speaker"], codes)
    loss(batched).backward()
    grads = {n: q.grad.clone() for n, q in g.named_parameters() if q.grad is not None}
    g.zero_grad()
    separate = [g(*args, m, inp["speaker"], f, codes) for m, f in zip(masks, flags)]
    loss(separate).backward()
    for a, b in zip(batched, separate):
        for p in PARTS:
            torch.testing.assert_close(a.logits[p], b.logits[p], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(a.latents[p], b.latents[p], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(a.prezq[p], b.prezq[p], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a.fusion_body, b.fusion_body)
    assert not torch.allclose(batched[0].prezq["upper"], batched[1].prezq["upper"])  # the passes differ
    # batched=False: the same passes one forward after another (with autograd on, as `separate`: the same kernels)
    one_by_one = g.forward_passes(*args, masks, flags, inp["speaker"], codes, batched=False)
    for a, b in zip(one_by_one, separate):
        assert torch.equal(a.logits["upper"], b.logits["upper"]) and torch.equal(a.latents["face"], b.latents["face"])
    for n, q in g.named_parameters():
        if q.grad is not None or n in grads:
            torch.testing.assert_close(grads[n], q.grad, rtol=1e-4, atol=1e-6, msg=n)
    assert any("body.cross_attention" in n for n in grads)
    with pytest.raises(ValueError, match="one per pass"):
        g.forward_passes(*args, masks, flags[:2], inp["speaker"])


def test_speaker_in_cross_query_flag(base: BaseGenerator) -> None:
    fixed = BaseGenerator.tiny(speaker_in_cross_query=True).eval()
    fixed.load_state_dict(base.state_dict())  # same weights, only the query of the audio cross-attention differs
    inp = base_inputs(base, 64)
    with torch.no_grad():
        a, b = base(**inp), fixed(**inp)
        assert torch.equal(a.prezq["face"], b.prezq["face"])
        assert not torch.allclose(a.prezq["upper"], b.prezq["upper"])
        # without the cross-attention the flag has nothing to act on
        assert torch.equal(
            base(**inp, use_audio_body=False).prezq["upper"], fixed(**inp, use_audio_body=False).prezq["upper"]
        )


def test_teacher_forcing_feeds_given_codes(base: BaseGenerator) -> None:
    inp = base_inputs(base, 64)
    q, d = base.num_quantizers, base.code_dim
    given = {p: torch.randn(B, 16, q, d) for p in PARTS}
    with torch.no_grad():
        own = base(**inp)
        tf = base(**inp, target_codes=given)
        changed = {p: v.clone() for p, v in given.items()}
        changed["hands"][:, :, 2] += 1.0
        tf2 = base(**inp, target_codes=changed)
    # levels 0 and 1 never read the given codes; level 2 onwards differ from the own-latent mode
    assert torch.equal(own.latents["face"][:, :, :2], tf.latents["face"][:, :, :2])
    assert not torch.allclose(own.latents["face"][:, :, 2:], tf.latents["face"][:, :, 2:])
    # changing the level-2 code only affects levels 3.. of that part
    assert torch.equal(tf.logits["hands"][:, :, :3], tf2.logits["hands"][:, :, :3])
    assert not torch.allclose(tf.logits["hands"][:, :, 3:], tf2.logits["hands"][:, :, 3:])
    assert torch.equal(tf.logits["upper"], tf2.logits["upper"])
    with pytest.raises(ValueError, match="teacher-forcing"):
        base(**inp, target_codes={"face": torch.randn(B, 16, q - 1, d)})


def test_base_generate_codes(base: BaseGenerator) -> None:
    inp = base_inputs(base, 64)
    q, c, d = base.num_quantizers, base.codebook_size, base.code_dim
    codes = base.generate_codes(**inp)
    with torch.no_grad():
        out = base(**inp)
    for p in PARTS:
        assert codes[p].dtype == torch.int64 and codes[p].shape == (B, 16, q)
        assert int(codes[p].min()) >= 0 and int(codes[p].max()) < c
        assert torch.equal(codes[p], out.logits[p].argmax(-1))  # own-latent mode = forward's arg-max

    books = {p: torch.randn(q, c, d, generator=torch.Generator().manual_seed(3)) for p in PARTS}
    calls: list[tuple[str, int]] = []

    def codes_of(part: str, level: int, idx: torch.Tensor) -> torch.Tensor:
        calls.append((part, level))
        return books[part][level][idx]

    fed = base.generate_codes(**inp, codes_of=codes_of)
    assert sorted(calls) == sorted((p, k) for p in PARTS for k in range(1, q - 1))
    # feeding predicted codes is teacher forcing with the code vectors of those predictions
    given = {p: torch.stack([books[p][k][fed[p][..., k]] for k in range(q)], dim=2) for p in PARTS}
    with torch.no_grad():
        tf = base(**inp, target_codes=given)
    for p in PARTS:
        assert torch.equal(fed[p], tf.logits[p].argmax(-1))
        assert torch.equal(fed[p][..., :2], codes[p][..., :2])


# ---------------------------------------------------------------- rhythm InfoNCE


def _one_hot_pairs(n: int, pool: int = 4, dim: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    motion = torch.eye(dim, dtype=torch.float64)[:n][None]  # (1, n, dim); float64 for the analytic value
    audio = motion.repeat_interleave(pool, dim=1)  # each token's 4 frames equal its one-hot
    return motion, audio


def test_frame_infonce_known_answer() -> None:
    tau, n = 0.1, 8
    motion, audio = _one_hot_pairs(n)
    expected = math.log(1 + (n - 1) * math.exp(-1 / tau))
    assert frame_infonce(motion, audio, tau).item() == pytest.approx(expected, rel=1e-5)
    shuffled = audio.reshape(1, n, 4, -1)[:, torch.roll(torch.arange(n), 1)].reshape(1, 4 * n, -1)
    assert frame_infonce(motion, shuffled, tau).item() > expected + 5
    # softmax over motion tokens for each audio token (SemTalk's orientation): duplicate motion tokens split
    # the probability of both audio tokens: loss = log 2 exactly
    m = torch.eye(4)[[0, 0]][None]
    a = torch.eye(4)[[0, 1]][None].repeat_interleave(4, dim=1)
    assert frame_infonce(m, a, tau).item() == pytest.approx(math.log(2), rel=1e-6)


def test_sequence_infonce_known_answer() -> None:
    tau, n = 0.1, 5
    motion = torch.eye(8, dtype=torch.float64)[:n][:, None].expand(n, 4, 8)  # sequence b: every token = e_b
    audio = motion.repeat_interleave(4, dim=1)
    expected = math.log(1 + (n - 1) * math.exp(-1 / tau))
    assert sequence_infonce(motion, audio, tau).item() == pytest.approx(expected, rel=1e-5)
    assert sequence_infonce(motion, audio[torch.roll(torch.arange(n), 1)], tau).item() > expected + 5
    assert sequence_infonce(motion[:1], audio[:1], tau).item() == pytest.approx(0.0, abs=1e-7)


def test_rhythm_loss_flags() -> None:
    motion, audio = torch.randn(3, 16, 8), torch.randn(3, 64, 8)
    f, s = frame_infonce(motion, audio), sequence_infonce(motion, audio)
    assert RhythmConsistencyLoss(frame=True, sequence=False)(motion, audio).item() == pytest.approx(f.item())
    assert RhythmConsistencyLoss(frame=False, sequence=True)(motion, audio).item() == pytest.approx(s.item())
    both = RhythmConsistencyLoss(sequence_weight=0.5)(motion, audio).item()
    assert both == pytest.approx(f.item() + 0.5 * s.item(), rel=1e-6)
    with pytest.raises(ValueError):
        RhythmConsistencyLoss(frame=False, sequence=False)
    with pytest.raises(ValueError, match="multiple"):
        frame_infonce(motion, audio[:, :63])


# ---------------------------------------------------------------- sparse generator


@pytest.mark.parametrize("t", [32, 64, 128])
def test_sparse_forward_shapes(sparse: SparseGenerator, t: int) -> None:
    out = sparse(**sparse_inputs(sparse, t), base_latents=fake_base_latents(t, sparse.code_dim))
    q, c, d = sparse.num_quantizers, sparse.codebook_size, sparse.code_dim
    assert out.gate_logits.shape == (B, t // 4, 2) and out.psi.shape == (B, t // 4)
    assert torch.allclose(out.psi, out.gate_logits.softmax(-1)[..., 1])
    assert ((out.psi > 0) & (out.psi < 1)).all()
    assert set(out.logits) == set(BODY_PARTS)
    for p in BODY_PARTS:
        assert out.logits[p].shape == (B, t // 4, q, c) and out.latents[p].shape == (B, t // 4, q, d)
    assert out.semantic.shape == out.fusion.shape == (B, t, d)


def test_sparse_forward_passes_equal_separate_forwards() -> None:
    """As for the base generator: the batched passes give each pass's own outputs and the same gradients."""
    torch.manual_seed(0)
    s = SparseGenerator.tiny(dropout=0.0).eval()
    inp = sparse_inputs(s, 64, mask_ratio=0.5)
    base_latents = fake_base_latents(64, s.code_dim)
    mask = inp.pop("mask").float()
    masks, flags = [mask, (torch.rand_like(mask) < 0.3).float(), mask], [True, False, True]
    first = (inp["words"], inp["clip"], inp["hubert"], inp["latent_all"])
    rest = (inp["speaker"], inp["emotion"], base_latents)

    def loss(outs) -> torch.Tensor:
        return sum((o.latents[p] ** 2).mean() + o.logits[p].logsumexp(-1).mean() for o in outs for p in BODY_PARTS)

    batched = s.forward_passes(*first, masks, flags, *rest)
    loss(batched).backward()
    grads = {n: q.grad.clone() for n, q in s.named_parameters() if q.grad is not None}
    s.zero_grad()
    separate = [s(*first, m, inp["speaker"], inp["emotion"], base_latents, f) for m, f in zip(masks, flags)]
    loss(separate).backward()
    for a, b in zip(batched, separate):
        torch.testing.assert_close(a.psi, b.psi)
        for p in BODY_PARTS:
            torch.testing.assert_close(a.logits[p], b.logits[p], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(a.latents[p], b.latents[p], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(batched[0].prezq["upper"], batched[1].prezq["upper"])
    for n, q in s.named_parameters():
        if q.grad is not None or n in grads:
            torch.testing.assert_close(grads[n], q.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_emotion_features_drive_psi_only_when_enabled() -> None:
    torch.manual_seed(0)
    on = SparseGenerator.tiny(blend_base=False).eval()
    torch.manual_seed(0)
    off = SparseGenerator.tiny(blend_base=False, use_emotion=False).eval()
    inp = sparse_inputs(on, 64)
    other = {**inp, "emotion": torch.randn_like(inp["emotion"]) * 3}
    with torch.no_grad():
        assert not torch.allclose(on(**inp).psi, on(**other).psi)
        assert torch.equal(off(**inp).psi, off(**other).psi)
        assert torch.equal(off(**inp).psi, off(**{**inp, "emotion": None}).psi)
    assert not any("emotion" in n for n, _ in off.named_parameters())
    with pytest.raises(ValueError, match="emotion"):
        on(**{**inp, "emotion": None})


def test_feature_weighting_by_psi(sparse: SparseGenerator) -> None:
    inp = sparse_inputs(sparse, 64)
    lat = fake_base_latents(64, sparse.code_dim)
    zero = torch.zeros(B, 16)
    other = {**inp, "words": torch.randint(0, sparse.vocab_size, (B, 64)), "hubert": torch.randn(B, 64, 24)}
    with torch.no_grad():
        out0 = sparse(**inp, base_latents=lat, psi_override=zero)
        out0b = sparse(**other, base_latents=lat, psi_override=zero)
        gated = sparse(**inp, base_latents=lat)
        half = sparse(**inp, base_latents=lat, psi_override=torch.full((B, 16), 0.5))
    assert torch.count_nonzero(out0.semantic) == 0  # W_f with psi = 0: no semantic body features
    assert torch.equal(out0.psi, zero)
    assert torch.equal(out0.gate_logits, gated.gate_logits)  # the gate is still reported
    # psi = 0: neither the body trunk nor the code predictors see the speech content any more
    for p in BODY_PARTS:
        assert torch.allclose(out0.logits[p], out0b.logits[p], atol=1e-6)
    # W_f is linear in psi
    fused_mlp = sparse.semantic_mlp(gated.fusion)
    assert torch.allclose(half.semantic, 0.5 * fused_mlp, atol=1e-6)
    assert torch.allclose(gated.semantic, fused_mlp * gated.psi.repeat_interleave(4, 1)[..., None], atol=1e-6)


def test_psi_blend_with_base_latents() -> None:
    torch.manual_seed(0)
    s = SparseGenerator.tiny().eval()
    inp = sparse_inputs(s, 64)
    lat, lat2 = fake_base_latents(64, s.code_dim, 1), fake_base_latents(64, s.code_dim, 2)
    with torch.no_grad():
        zero = torch.zeros(B, 16)
        a = s(**inp, base_latents=lat, psi_override=zero)
        b = s(**inp, base_latents=lat2, psi_override=zero)
        one = torch.ones(B, 16)
        c = s(**inp, base_latents=lat, psi_override=one)
        d = s(**inp, base_latents=lat2, psi_override=one)
    with torch.no_grad():  # the blend MLPs of the three parts, grouped in BODY_PARTS order
        mlp_b = dict(zip(BODY_PARTS, s.blend(torch.stack([lat[p] for p in BODY_PARTS]))))
        mlp_s = dict(zip(BODY_PARTS, s.blend(torch.stack([c.cascaded[p] for p in BODY_PARTS]))))
    for p in BODY_PARTS:
        assert torch.allclose(a.latents[p][:, :, 0], mlp_b[p], atol=1e-6)  # psi=0: MLP(f_b)
        assert not torch.allclose(a.logits[p], b.logits[p])
        assert torch.allclose(c.latents[p][:, :, 0], mlp_s[p], atol=1e-6)  # psi=1: MLP(f_s)
        assert torch.equal(c.logits[p], d.logits[p])
    with pytest.raises(ValueError, match="base_latents"):
        s(**inp)
    torch.manual_seed(0)
    plain = SparseGenerator.tiny(blend_base=False).eval()
    with torch.no_grad():
        e, f = plain(**inp), plain(**inp, base_latents=lat)
    assert torch.equal(e.logits["upper"], f.logits["upper"])
    assert torch.equal(e.latents["upper"][:, :, 0], e.cascaded["upper"])


def test_sparse_generate_codes(sparse: SparseGenerator) -> None:
    inp = sparse_inputs(sparse, 64)
    lat = fake_base_latents(64, sparse.code_dim)
    codes, psi = sparse.generate_codes(**inp, base_latents=lat)
    with torch.no_grad():
        out = sparse(**inp, base_latents=lat)
    assert torch.equal(psi, out.psi)
    assert set(codes) == set(BODY_PARTS)
    for p in BODY_PARTS:
        assert codes[p].dtype == torch.int64 and codes[p].shape == (B, 16, sparse.num_quantizers)
        assert int(codes[p].min()) >= 0 and int(codes[p].max()) < sparse.codebook_size
        assert torch.equal(codes[p], out.logits[p].argmax(-1))


def test_word_embedding_init_and_freeze() -> None:
    s = SparseGenerator.tiny(freeze_word_embedding=True)
    w = torch.randn(s.vocab_size, s.word_dim)
    s.set_word_embeddings(w)
    assert torch.equal(s.word_embedding.weight, w) and not s.word_embedding.weight.requires_grad
    with pytest.raises(ValueError, match="vocab_size"):
        s.set_word_embeddings(torch.randn(s.vocab_size + 1, s.word_dim))
    with pytest.raises(ValueError, match="word ids"):
        s(**{**sparse_inputs(s, 32), "words": torch.full((B, 32), s.vocab_size)}, base_latents=None)


# ---------------------------------------------------------------- fusion


def test_fuse_codes_thresholds() -> None:
    gen = torch.Generator().manual_seed(0)
    base_codes = {p: torch.randint(0, 16, (B, 16, 6), generator=gen) for p in PARTS}
    sparse_codes = {p: torch.randint(16, 32, (B, 16, 6), generator=gen) for p in BODY_PARTS}
    psi = torch.rand(B, 16, generator=gen).clamp(min=1e-3)
    same = fuse_codes(base_codes, sparse_codes, psi, beta=1.0)
    assert all(torch.equal(same[p], base_codes[p]) for p in PARTS)
    all_sparse = fuse_codes(base_codes, sparse_codes, psi, beta=0.0)
    assert torch.equal(all_sparse["face"], base_codes["face"])
    assert all(torch.equal(all_sparse[p], sparse_codes[p]) for p in BODY_PARTS)
    mixed = fuse_codes(base_codes, sparse_codes, psi, beta=0.5)
    sel = psi > 0.5
    for p in BODY_PARTS:
        assert torch.equal(mixed[p][sel], sparse_codes[p][sel]) and torch.equal(mixed[p][~sel], base_codes[p][~sel])
    tie = fuse_codes(base_codes, sparse_codes, torch.full((B, 16), 0.5), beta=0.5)  # ties go to the base
    assert torch.equal(tie["upper"], base_codes["upper"])
    with pytest.raises(ValueError, match="missing"):
        fuse_codes({"upper": base_codes["upper"]}, sparse_codes, psi)


# ---------------------------------------------------------------- gradients


def _code_losses(logits: dict, latents: dict, parts: tuple[str, ...], q: int, c: int, d: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(5)
    loss = torch.zeros(())
    for p in parts:
        target_idx = torch.randint(0, c, logits[p].shape[:3], generator=gen)
        target_vec = torch.randn(latents[p].shape, generator=gen)
        loss = loss + F.mse_loss(latents[p], target_vec)
        for k in range(q):
            loss = loss + F.cross_entropy(logits[p][:, :, k].flatten(0, 1), target_idx[..., k].flatten()) / (k + 1)
    return loss


def _without_grad(model: torch.nn.Module) -> list[str]:
    return [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]


@pytest.mark.parametrize("use_audio_body", [True, False])
def test_base_gradients_reach_every_parameter(use_audio_body: bool) -> None:
    torch.manual_seed(0)
    g = BaseGenerator.tiny().train()
    out = g(**base_inputs(g, 64, mask_ratio=0.5), use_audio_body=use_audio_body)
    rhythm = RhythmConsistencyLoss()
    loss = _code_losses(out.logits, out.latents, PARTS, g.num_quantizers, g.codebook_size, g.code_dim)
    loss = loss + rhythm(out.prezq["face"], out.hubert_face) + rhythm(out.prezq["hands"], out.hubert_body)
    loss.backward()
    missing = _without_grad(g)
    if use_audio_body:
        assert missing == []
    else:  # the masked-gesture pass skips exactly the body's audio cross-attention and its memory projection
        assert missing and all(n.startswith(("body.cross_attention.", "body.memory_proj.")) for n in missing)
        assert len(missing) == len(list(g.body.cross_attention.parameters())) + 2


@pytest.mark.parametrize("blend_base", [True, False])
def test_sparse_gradients_reach_every_parameter(blend_base: bool) -> None:
    torch.manual_seed(0)
    s = SparseGenerator.tiny(blend_base=blend_base).train()
    inp = sparse_inputs(s, 64, mask_ratio=0.5)
    out = s(**inp, base_latents=fake_base_latents(64, s.code_dim) if blend_base else None)
    label = torch.randint(0, 2, (B, 16), generator=torch.Generator().manual_seed(2))
    loss = _code_losses(out.logits, out.latents, BODY_PARTS, s.num_quantizers, s.codebook_size, s.code_dim)
    loss = loss + F.cross_entropy(out.gate_logits.flatten(0, 1), label.flatten())
    loss.backward()
    assert _without_grad(s) == []
