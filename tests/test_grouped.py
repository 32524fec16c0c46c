"""Grouped layers equal G separate PyTorch layers with the same weights, and the parts' code predictors load
checkpoints written with one predictor per part."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from semtalk.nn.attention import MLP, PeriodicPositionalEncoding, decoder_stack
from semtalk.nn.base_generator import BASE_CASCADE, BODY_PARTS, BodyTrunk
from semtalk.nn.cascade import PartCascade
from semtalk.nn.code_predictor import PartCodePredictors
from semtalk.nn.grouped import (
    GroupedDecoder,
    GroupedLayerNorm,
    GroupedLinear,
    GroupedMLP,
    GroupedPatchConv1d,
    stack_group_state,
    stacked,
)
from semtalk.nn.sparse_generator import SPARSE_CASCADE

GROUPS = ("a", "b", "c")


def load_separate(grouped: nn.Module, separate: nn.ModuleDict) -> None:
    state = dict(separate.state_dict())
    converted = stack_group_state(grouped, tuple(separate.keys()), state)
    assert converted and not any(k.split(".")[0] in separate for k in state)  # every per-group tensor consumed
    grouped.load_state_dict(state, strict=True)


@pytest.mark.parametrize(
    ("grouped", "separate", "shape"),
    [
        (lambda: GroupedLinear(3, 8, 5), lambda: nn.Linear(8, 5), (4, 6, 8)),
        (lambda: GroupedLayerNorm(3, 8), lambda: nn.LayerNorm(8), (4, 6, 8)),
        (lambda: GroupedMLP(3, 8, 12, 5), lambda: MLP(8, 12, 5), (7, 8)),
    ],
)
def test_grouped_layers_equal_separate_layers(grouped, separate, shape) -> None:
    torch.manual_seed(0)
    sep = nn.ModuleDict({g: separate() for g in GROUPS})
    for m in sep.values():  # LayerNorm starts at (1, 0): make its affine part matter
        for p in m.parameters():
            nn.init.normal_(p)
    grp = grouped()
    load_separate(grp, sep)
    x = torch.randn(len(GROUPS), *shape)
    ref = torch.stack([sep[g](x[i]) for i, g in enumerate(GROUPS)])
    torch.testing.assert_close(grp(x), ref, atol=1e-5, rtol=1e-5)


def test_grouped_decoder_equals_torch_decoders_forward_and_backward() -> None:
    torch.manual_seed(0)
    sep = nn.ModuleDict({g: decoder_stack(16, 2, 32, 2, dropout=0.0) for g in GROUPS})
    grp = GroupedDecoder(3, 16, 2, 32, 2, dropout=0.0)
    load_separate(grp, sep)
    x, memory = torch.randn(3, 4, 5, 16), torch.randn(3, 4, 9, 16)
    ref = torch.stack([sep[g](x[i], memory[i]) for i, g in enumerate(GROUPS)])
    out = grp(x, memory)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(ref)
    (ref * weights).sum().backward()
    (out * weights).sum().backward()
    for i, g in enumerate(GROUPS):
        torch.testing.assert_close(grp.layers[1].linear1.weight.grad[i], sep[g].layers[1].linear1.weight.grad)
        torch.testing.assert_close(
            grp.layers[0].multihead_attn.in_proj_weight.grad[i], sep[g].layers[0].multihead_attn.in_proj_weight.grad
        )


def test_grouped_decoder_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    grp = GroupedDecoder(2, 16, 2, 32, 1, dropout=0.5)
    x, memory = torch.randn(2, 3, 5, 16), torch.randn(2, 3, 7, 16)
    grp.train()
    assert not torch.allclose(grp(x, memory), grp(x, memory))
    grp.eval()
    assert torch.equal(grp(x, memory), grp(x, memory))


class SeparatePredictor(nn.Module):
    """One part's predictor as separate PyTorch layers, laid out as per-part checkpoints store it."""

    def __init__(self, dim: int, hidden: int, codes: int, levels: int, layers: int, heads: int) -> None:
        super().__init__()
        self.level0 = MLP(dim, hidden, codes)
        self.residual = nn.Module()
        ks = range(1, levels)
        self.residual.query_maps = nn.ModuleList(nn.Identity() if k == 1 else nn.Linear(k * dim, dim) for k in ks)
        self.residual.decoders = nn.ModuleList(decoder_stack(dim, heads, 4 * dim, layers, 0.0) for _ in ks)
        self.residual.classifiers = nn.ModuleList(MLP(dim, dim, codes) for _ in ks)

    def forward(self, latent0, memory, pe: PeriodicPositionalEncoding, given=None):
        memory, query_pe = pe(memory), pe.token_codes(latent0.shape[1], 4)
        history, logits = [latent0], [self.level0(latent0)]
        r = self.residual
        for k in range(1, len(r.decoders) + 1):
            query = r.query_maps[k - 1](torch.cat(history, dim=-1))
            zq = r.decoders[k - 1](query + query_pe, memory) + query
            logits.append(r.classifiers[k - 1](zq))
            history.append(zq if given is None else given[:, :, k])
        return torch.stack(logits, dim=2)


def test_part_predictors_load_per_part_checkpoints_and_match_them() -> None:
    torch.manual_seed(0)
    parts = ("face", "upper", "hands")
    dim, hidden, codes, levels = 16, 24, 8, 4
    separate = nn.ModuleDict({p: SeparatePredictor(dim, hidden, codes, levels, 2, 2) for p in parts}).eval()
    pred = PartCodePredictors(parts, dim, hidden, codes, levels, 2, 2, 0.0, memory_pe=True, window=64).eval()
    pred.load_state_dict(separate.state_dict(), strict=True)  # per-part keys: stacked by the load hook
    assert set(pred.state_dict()) == {k.split(".", 1)[1] for k in separate.state_dict() if k.startswith("face.")}
    pe = PeriodicPositionalEncoding(dim, 64, 0.0)
    latent0 = {p: torch.randn(2, 5, dim) for p in parts}
    memory = {p: torch.randn(2, 20, dim) for p in parts}
    given = {"upper": torch.randn(2, 5, levels, dim)}
    with torch.no_grad():
        logits, latents = pred(latent0, memory, given)
        for p in parts:
            ref = separate[p](latent0[p], memory[p], pe, given.get(p))
            torch.testing.assert_close(logits[p], ref, atol=1e-5, rtol=1e-5)
            assert latents[p].shape == (2, 5, levels, dim) and torch.equal(latents[p][:, :, 0], latent0[p])
        codes_by_level = torch.randn(levels, codes, dim)
        out = pred.generate(latent0, memory, lambda part, level, idx: codes_by_level[level][idx])
        own = pred.generate(latent0, memory)
    for p in parts:
        assert out[p].shape == (2, 5, levels) and out[p].dtype == torch.int64
        assert torch.equal(out[p][..., :2], own[p][..., :2])  # levels 0 and 1 do not read the fed codes
    assert any(not torch.equal(out[p][..., 2:], own[p][..., 2:]) for p in parts)


def test_part_predictors_name_a_missing_part_and_bad_teacher_codes() -> None:
    pred = PartCodePredictors(("upper", "hands"), 16, 24, 8, 3, 1, 2, 0.0)
    z = torch.randn(2, 5, 16)
    with pytest.raises(ValueError, match="hands"):
        pred({"upper": z}, {"upper": torch.randn(2, 20, 16), "hands": torch.randn(2, 20, 16)})
    with pytest.raises(ValueError, match="teacher-forcing codes of upper"):
        pred({"upper": z, "hands": z}, dict.fromkeys(("upper", "hands"), torch.randn(2, 20, 16)),
             {"upper": torch.randn(2, 5, 2, 16)})  # fmt: skip


def test_grouped_products_agree_batched_and_group_by_group() -> None:
    """On the CPU 3 groups on 2 threads run one product per group, on 1 thread one batched product."""
    from semtalk.nn.grouped import grouped_affine

    torch.manual_seed(0)
    x, w, b = torch.randn(3, 2, 5, 8), torch.randn(3, 4, 8), torch.randn(3, 4)
    ref = torch.einsum("gbti,goi->gbto", x, w) + b[:, None, None]
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            torch.testing.assert_close(grouped_affine(x, w, b), ref)
            torch.testing.assert_close(grouped_affine(x, w, None), ref - b[:, None, None])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("frames", [8, 9])
def test_grouped_patch_conv_equals_strided_conv1d(frames: int) -> None:
    torch.manual_seed(0)
    sep = nn.ModuleDict({g: nn.Conv1d(6, 5, 2, stride=2) for g in GROUPS})
    grp = GroupedPatchConv1d(3, 6, 5, 2)
    load_separate(grp, sep)
    x = torch.randn(3, 4, frames, 6)  # channel-last; an odd last frame fills no window and is dropped
    ref = torch.stack([sep[g](x[i].transpose(1, 2)).transpose(1, 2) for i, g in enumerate(GROUPS)])
    assert ref.shape == (3, 4, frames // 2, 5)
    torch.testing.assert_close(grp(x), ref, atol=1e-5, rtol=1e-5)


def test_stacked_initialises_as_the_separate_layers_and_keeps_the_random_stream() -> None:
    torch.manual_seed(0)
    layers = [nn.Linear(8, 5) for _ in GROUPS]
    grp = stacked(lambda: GroupedLinear(3, 8, 5), layers)
    after = torch.rand(4)
    torch.manual_seed(0)
    ref = [nn.Linear(8, 5) for _ in GROUPS]
    assert torch.equal(after, torch.rand(4))  # building the grouped layer drew nothing
    assert torch.equal(grp.weight, torch.stack([m.weight for m in ref]))
    assert torch.equal(grp.bias, torch.stack([m.bias for m in ref]))


@pytest.mark.parametrize(
    ("sources", "rounds"),
    [(BASE_CASCADE, (("face", "hands"), ("upper", "lower"))), (SPARSE_CASCADE, (("hands",), ("upper", "lower")))],
)
def test_part_cascade_matches_per_part_decoders_run_in_sequence(sources, rounds) -> None:
    """The generators' cascades, written out part by part as SemTalk's code runs them, from per-part weights."""
    torch.manual_seed(0)
    sep = nn.ModuleDict({p: decoder_stack(16, 2, 32, 1, dropout=0.0) for p in sources}).eval()
    cascade = PartCascade(sources, rounds, 16, 2, dropout=0.0).eval()
    cascade.load_state_dict(sep.state_dict(), strict=True)  # per-part keys: stacked per round on load
    pre = {p: torch.randn(2, 5, 16) for p in sources}
    with torch.no_grad():
        out = cascade(pre)
        if "face" in sources:  # hands <- face, face <- hands, upper <- hands_new + lower, lower <- upper + hands_new
            hands = sep["hands"](pre["hands"], pre["face"])
            ref = {"face": sep["face"](pre["face"], pre["hands"]), "hands": hands}
        else:  # hands <- upper + lower, then as the base
            hands = sep["hands"](pre["hands"], pre["upper"] + pre["lower"])
            ref = {"hands": hands}
        ref["upper"] = sep["upper"](pre["upper"], hands + pre["lower"])
        ref["lower"] = sep["lower"](pre["lower"], pre["upper"] + hands)
    assert list(out) == list(sources)
    for p in sources:
        torch.testing.assert_close(out[p], ref[p], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="once"):
        PartCascade(sources, rounds[1:], 16, 2)


def test_body_trunk_loads_per_part_layers_and_matches_them() -> None:
    """The trunk's grouped part heads, decoders, projections and convolutions against the per-part layers of
    checkpoints written before they were grouped, run part by part."""
    torch.manual_seed(0)
    h, d = 16, 8
    trunk = BodyTrunk(h, 6, 10, d, 2, 1, 3, 64, 0.0).eval()
    old = {
        "part_heads": nn.ModuleDict({p: MLP(h, h, h) for p in BODY_PARTS}),
        "part_decoders": nn.ModuleDict({p: decoder_stack(h, 2, 2 * h, 1, 0.0) for p in BODY_PARTS}),
        "part_out": nn.ModuleDict({p: nn.Linear(h, d) for p in BODY_PARTS}),
        "part_down": nn.ModuleDict({p: nn.Conv1d(d, d, 2, stride=2) for p in BODY_PARTS}),
    }
    state = {k: v for k, v in trunk.state_dict().items() if not k.startswith(tuple(old))}
    state.update({f"{name}.{k}": v for name, m in old.items() for k, v in m.state_dict().items()})
    trunk.load_state_dict(state, strict=True)
    hint, speaker, memory = torch.randn(2, 16, 6), torch.tensor([0, 2]), torch.randn(2, 16, 10)
    captured = {}
    trunk.down.register_forward_hook(lambda mod, inp, out: captured.update(x=out.transpose(1, 2)))
    with torch.no_grad():
        out = trunk(hint, speaker, memory)
        x = captured["x"]  # (B, T/2, H): the shared input of the part heads
        spk = trunk.speaker(speaker)
        spk2 = trunk.speaker_down(spk[:, :, None].expand(-1, -1, 2)).transpose(1, 2)
        parts = {p: old["part_heads"][p](x) for p in BODY_PARTS}
        for p in BODY_PARTS:
            others = sum(parts[q] for q in BODY_PARTS if q != p)
            dec = old["part_decoders"][p](trunk.pe(parts[p] + spk2), others)
            y = old["part_out"][p](dec + parts[p])
            ref = old["part_down"][p](y.transpose(1, 2)).transpose(1, 2)
            assert out[p].shape == (2, 4, d)
            torch.testing.assert_close(out[p], ref, atol=1e-5, rtol=1e-5)


def per_part_layout(state: dict[str, torch.Tensor], groups: dict[str, tuple[str, ...]]) -> dict[str, torch.Tensor]:
    """A grouped state dict written back in the per-part layout of earlier checkpoints: `groups` maps a grouped
    prefix to (the per-part prefix, the parts in stacking order)."""
    out = {}
    for key, value in state.items():
        prefix = next((p for p in groups if key.startswith(p)), None)
        if prefix is None:
            out[key] = value
            continue
        target, parts = groups[prefix]
        for i, part in enumerate(parts):
            out[f"{target}{part}.{key[len(prefix) :]}"] = value[i]
    return out


@pytest.mark.parametrize("which", ["base", "sparse"])
def test_generators_load_checkpoints_of_per_part_layers(which: str) -> None:
    from semtalk.nn.base_generator import PARTS, BaseGenerator
    from semtalk.nn.sparse_generator import SparseGenerator

    torch.manual_seed(0)
    if which == "base":
        gen, parts, first = BaseGenerator.tiny(), PARTS, ("face", "hands")
    else:
        gen, parts, first = SparseGenerator.tiny(), BODY_PARTS, ("hands",)
    groups = {"cascade.rounds.0.": ("cascade.", first), "cascade.rounds.1.": ("cascade.", ("upper", "lower"))}
    if which == "sparse":
        groups["blend."] = ("blend.", BODY_PARTS)
    for name in ("part_heads", "part_decoders", "part_out", "part_down"):
        groups[f"body.{name}."] = (f"body.{name}.", BODY_PARTS)
    groups["predictors."] = ("predictors.", parts)
    old = per_part_layout(gen.state_dict(), groups)
    assert "body.part_down.hands.weight" in old and "cascade.lower.layers.0.linear1.weight" in old
    fresh = type(gen).tiny()
    fresh.load_state_dict(old, strict=True)
    for key, value in gen.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_generators_and_quantizer_pickle_and_copy_with_their_load_hooks() -> None:
    """Spawned DDP workers receive the modules pickled: the load hooks must not be closures."""
    import copy
    import pickle

    from semtalk.nn.base_generator import PARTS, BaseGenerator
    from semtalk.nn.quantizer import ResidualQuantizer
    from semtalk.nn.sparse_generator import SparseGenerator

    torch.manual_seed(0)
    for gen in (BaseGenerator.tiny(), SparseGenerator.tiny()):
        back = pickle.loads(pickle.dumps(gen))
        parts = PARTS if isinstance(gen, BaseGenerator) else BODY_PARTS
        old = per_part_layout(gen.state_dict(), {"predictors.": ("predictors.", parts),
                                                 "body.part_out.": ("body.part_out.", BODY_PARTS)})  # fmt: skip
        back.load_state_dict(old, strict=True)  # the unpickled hooks still stack per-part layers
        assert all(torch.equal(v, gen.state_dict()[k]) for k, v in back.state_dict().items())
    q = ResidualQuantizer(8, 2, 8)
    q._codebooks_ready = True
    twin = copy.deepcopy(pickle.loads(pickle.dumps(q)))
    twin.load_state_dict(twin.state_dict())
    assert not twin._codebooks_ready and q._codebooks_ready  # the copy's hook resets the copy, not the original


def test_body_trunk_aligned_memory_path() -> None:
    """aligned_memory: with its map zeroed the trunk equals the plain trunk of the same weights; otherwise the
    memory changes the output even when the cross-attention is bypassed, and rows given by `memory_rows` get the
    same outputs as a full-batch call while the other rows equal a call without memory."""
    torch.manual_seed(0)
    h, d = 16, 8
    plain = BodyTrunk(h, 6, 10, d, 2, 1, 3, 64, 0.0).eval()
    aligned = BodyTrunk(h, 6, 10, d, 2, 1, 3, 64, 0.0, aligned_memory=True).eval()
    missing, unexpected = aligned.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["aligned.bias", "aligned.weight"] and not unexpected
    hint, speaker, memory = torch.randn(3, 16, 6), torch.tensor([0, 2, 1]), torch.randn(3, 16, 10)
    with torch.no_grad():
        nn.init.zeros_(aligned.aligned.weight)
        nn.init.zeros_(aligned.aligned.bias)
        for p, v in aligned(hint, speaker, memory).items():
            torch.testing.assert_close(v, plain(hint, speaker, memory)[p])
        nn.init.normal_(aligned.aligned.weight)
        full, none = aligned(hint, speaker, memory), aligned(hint, speaker, None)
        rows = aligned(hint, speaker, memory, torch.tensor([0, 2]))
        for p in BODY_PARTS:
            assert not torch.allclose(full[p], plain(hint, speaker, memory)[p], atol=1e-3)
            torch.testing.assert_close(rows[p][[0, 2]], full[p][[0, 2]], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(rows[p][1], none[p][1], atol=1e-5, rtol=1e-5)
