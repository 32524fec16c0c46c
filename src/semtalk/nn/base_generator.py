"""The base (rhythm) generator: speech + seed motion + speaker -> residual-VQ codes of the four parts.

Structure (SemTalk's base model; H = hidden, A = audio_f, M = motion_f, D = code_dim, T' = T / 4):
- two speech branches (face, body), each a HuBERT conv encoder + beat MLP + per-channel soft fusion -> (B, T, A);
- the masked full-body motion encoder (learned mask embedding) -> hint (B, T, M), shared by both branches;
- face: a transformer decoder whose query is the face speaker embedding + positional encoding and whose memory is
  `Linear([fusion_face, MLP(hint)])`, then Linear(H -> D), conv(k2, s2), MLP, conv(k2, s2) -> (B, T', D);
- body (`BodyTrunk`): `Linear(MLP(hint))` + body speaker embedding + PE -> 1 self-attention layer -> (optionally)
  a residual stack of cross-attention layers to `Linear(fusion_body)` -> conv(k2, s2) -> part MLP heads ->
  part-to-part decoders (query: part + speaker + PE, memory: sum of the other two parts) -> Linear(H -> D) of
  (decoder output + part) -> conv(k2, s2) -> (B, T', D) for upper, hands and lower;
- the Coarse2Fine cascade (1-layer decoders of width D): hands <- face, face <- hands (pre-cascade),
  upper <- hands_new + lower, lower <- upper + hands_new;
- per part, a level-0 MLP classifier and residual-level cross-attention predictors (memory: fusion_face for the
  face, fusion_body for the body parts), see `semtalk.nn.code_predictor`.

`BodyTrunk` is reused by the sparse generator with the semantic feature as its cross-attention memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from semtalk.nn.attention import MLP, PeriodicPositionalEncoding, decoder_stack, downsample_time, encoder_stack
from semtalk.nn.audio_encoder import AudioBranch
from semtalk.nn.cascade import PartCascade
from semtalk.nn.code_predictor import CodesOf, PartCodePredictors
from semtalk.nn.grouped import GroupedDecoder, GroupedLinear, GroupedMLP, GroupedPatchConv1d, stacked
from semtalk.nn.motion_encoder import MaskedMotionEncoder

PARTS: tuple[str, ...] = ("face", "upper", "hands", "lower")
BODY_PARTS: tuple[str, ...] = ("upper", "hands", "lower")
# the cascade's memories: hands <- face and face <- hands (both before the cascade), then upper <- hands_new +
# lower, lower <- upper + hands_new
BASE_CASCADE: dict[str, tuple[str, ...]] = {
    "face": ("hands",),
    "upper": ("hands", "lower"),
    "hands": ("face",),
    "lower": ("upper", "hands"),
}


def part_memories(fusion_face: torch.Tensor, fusion_body: torch.Tensor) -> dict[str, torch.Tensor]:
    """What each part's residual-level predictors attend to: the face `fusion_face`, the body parts `fusion_body`
    (each `(B, T, D)`)."""
    return {p: fusion_face if p == "face" else fusion_body for p in PARTS}


def check_frames_per_token(frames_per_token: int) -> None:
    if frames_per_token != 4:
        raise ValueError(
            f"frames_per_token={frames_per_token}: the generators downsample time by two stride-2 convolutions, "
            "so only 4 frames per token (the tokenizers' x4 downsampling) is supported"
        )


def check_motion_inputs(
    latent_all: torch.Tensor, mask: torch.Tensor, speaker: torch.Tensor, latent_dim: int, num_speakers: int
) -> tuple[int, int]:
    """Validate `latent_all (B, T, latent_dim)`, `mask` of the same shape and `speaker (B,)` int64; return (B, T)."""
    if latent_all.dim() != 3 or latent_all.shape[-1] != latent_dim:
        raise ValueError(f"latent_all must be (B, T, {latent_dim}), got {tuple(latent_all.shape)}")
    b, t = latent_all.shape[:2]
    if t % 4:
        raise ValueError(f"sequence length {t} is not a multiple of 4 frames per token; trim or pad the window")
    if mask.shape != latent_all.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the shape of latent_all {tuple(latent_all.shape)}")
    if speaker.shape != (b,) or speaker.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"speaker must be (B,)=({b},) int64 ids, got {tuple(speaker.shape)} {speaker.dtype}")
    if speaker.numel() and (int(speaker.min()) < 0 or int(speaker.max()) >= num_speakers):
        raise ValueError(f"speaker ids must lie in [0, {num_speakers}), got {speaker.tolist()}")
    return b, t


def check_frame_input(name: str, x: torch.Tensor, b: int, t: int, dim: int) -> None:
    if x.shape != (b, t, dim):
        raise ValueError(f"{name} must be (B, T, {dim}) = ({b}, {t}, {dim}), got {tuple(x.shape)}")


def check_passes(
    masks: list[torch.Tensor],
    flags: list[bool],
    flag_name: str,
    latent_all: torch.Tensor,
    speaker: torch.Tensor,
    latent_dim: int,
    num_speakers: int,
) -> tuple[int, int]:
    """Check the masks and per-pass flags of a batched pass against the motion inputs -> `(B, T)`."""
    if len(masks) != len(flags) or not masks:
        raise ValueError(f"{len(masks)} masks and {len(flags)} {flag_name} flags: give one per pass")
    for m in masks:
        b, t = check_motion_inputs(latent_all, m, speaker, latent_dim, num_speakers)
    return b, t


def repeat_batch(passes: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """`x (B, ...)` -> `(passes * B, ...)`: the batch repeated once per pass (identity for one pass)."""

    def rep(x: torch.Tensor) -> torch.Tensor:
        return x if passes == 1 else x.repeat(passes, *([1] * (x.dim() - 1)))

    return rep


def rows(x: torch.Tensor, i: int, passes: int) -> torch.Tensor:
    """Pass `i`'s rows of `x (passes * B, ...)` -> `(B, ...)`."""
    n = x.shape[0] // passes
    return x[i * n : (i + 1) * n]


def pass_rows(flags: list[bool], batch: int, device: torch.device) -> tuple[bool, torch.Tensor | None]:
    """A per-pass flag as the batched pass takes it: whether any pass sets it, and the `(R,)` int64 rows (of
    `len(flags) * batch`) whose pass sets it, or None when all passes agree."""
    if all(flags) or not any(flags):
        return bool(flags[0]), None
    index = [i * batch + j for i, on in enumerate(flags) if on for j in range(batch)]
    return True, torch.tensor(index, dtype=torch.long).to(device, non_blocking=True)


class BodyTrunk(nn.Module):
    """Body branch up to the per-part token latents.

    `hint (B, T, motion_f)`, `speaker (B,)`, `memory (B, T, memory_dim)` or None -> `{upper, hands, lower}`
    each `(B, T/4, code_dim)`.

    Args:
        hidden: transformer width H; heads: attention heads; cross_layers: depth of the cross-attention to
            the memory; motion_f, memory_dim, code_dim: widths; num_speakers: speaker-embedding rows;
            window: period of the positional encoding; dropout: attention/PE dropout.
        speaker_in_cross_query: add the speaker embedding to the cross-attention query. SemTalk's code computes
            this sum and overwrites it on the next line, so the released model has False.
        memory_pe: add the positional encoding to the cross-attention memory too (SemTalk's code: False, so the
            attention cannot align a frame of the memory with the same frame of the query).
        aligned_memory: also add a linear map of each frame's memory to the same frame's query, before the
            self-attention: a frame-aligned path from the speech (or semantic) features to the body that does not
            depend on the cross-attention learning to align frames (SemTalk: False).
    """

    def __init__(
        self,
        hidden: int,
        motion_f: int,
        memory_dim: int,
        code_dim: int,
        heads: int,
        cross_layers: int,
        num_speakers: int,
        window: int,
        dropout: float,
        speaker_in_cross_query: bool = False,
        memory_pe: bool = False,
        aligned_memory: bool = False,
    ) -> None:
        super().__init__()
        self.speaker_in_cross_query = speaker_in_cross_query
        self.memory_pe = memory_pe
        self.hint_mlp = MLP(motion_f, hidden, motion_f)
        self.hint_proj = nn.Linear(motion_f, hidden)
        self.aligned = nn.Linear(memory_dim, hidden) if aligned_memory else None
        self.speaker = nn.Embedding(num_speakers, hidden)
        self.pe = PeriodicPositionalEncoding(hidden, window, dropout)
        self.self_attention = encoder_stack(hidden, heads, 2 * hidden, 1, dropout)
        self.memory_proj = nn.Linear(memory_dim, hidden)
        self.cross_attention = decoder_stack(hidden, heads, 2 * hidden, cross_layers, dropout)
        self.down = nn.Conv1d(hidden, hidden, 2, stride=2)
        self.speaker_down = nn.Conv1d(hidden, hidden, 2, stride=2)
        # the three parts' layers run grouped, initialised as (and loading the checkpoints of) separate layers
        g, parts = len(BODY_PARTS), BODY_PARTS
        part_heads = [MLP(hidden, hidden, hidden) for _ in parts]
        self.part_heads = stacked(lambda: GroupedMLP(g, hidden, hidden, hidden), part_heads, parts)
        part_decoders = [decoder_stack(hidden, heads, 2 * hidden, 1, dropout) for _ in parts]
        self.part_decoders = stacked(lambda: GroupedDecoder(g, hidden, heads, 2 * hidden, 1, dropout), part_decoders,
                                     parts)  # fmt: skip
        part_out = [nn.Linear(hidden, code_dim) for _ in parts]
        self.part_out = stacked(lambda: GroupedLinear(g, hidden, code_dim), part_out, parts)
        part_down = [nn.Conv1d(code_dim, code_dim, 2, stride=2) for _ in parts]
        self.part_down = stacked(lambda: GroupedPatchConv1d(g, code_dim, code_dim, 2), part_down, parts)

    def forward(
        self,
        hint: torch.Tensor,
        speaker: torch.Tensor,
        memory: torch.Tensor | None,
        memory_rows: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """`memory_rows (R,)` int64, when given, names the batch rows that attend to the memory (the others
        skip the cross-attention, as with `memory=None`)."""
        spk = self.speaker(speaker)  # (B, H)
        x = self.hint_proj(self.hint_mlp(hint)) + spk[:, None]
        if self.aligned is not None and memory is not None:
            if memory_rows is None:
                x = x + self.aligned(memory)
            else:
                x = x.index_add(0, memory_rows, self.aligned(memory.index_select(0, memory_rows)))
        x = self.pe(x)
        x = self.self_attention(x)
        if memory is not None:
            query = x + spk[:, None] if self.speaker_in_cross_query else x
            if memory_rows is not None:
                query, memory = query.index_select(0, memory_rows), memory.index_select(0, memory_rows)
            memory = self.memory_proj(memory)
            attended = self.cross_attention(self.pe(query), self.pe(memory) if self.memory_pe else memory)
            x = x + attended if memory_rows is None else x.index_add(0, memory_rows, attended)
        x = downsample_time(self.down, x)  # (B, T/2, H)
        # the speaker sequence is constant in time: its stride-2 convolution is one value, broadcast
        spk2 = self.speaker_down(spk[:, :, None].expand(-1, -1, 2)).transpose(1, 2)  # (B, 1, H)
        g = len(BODY_PARTS)
        parts = self.part_heads(x.expand(g, *x.shape))  # (G, B, T/2, H), in BODY_PARTS order
        others = parts.roll(-1, 0) + parts.roll(1, 0)  # each part's memory: the sum of the other two
        query = self.pe((parts + spk2).flatten(0, 1)).view_as(parts)
        dec = self.part_decoders(query, others)
        out = self.part_down(self.part_out(dec + parts))  # (G, B, T/4, D)
        return dict(zip(BODY_PARTS, out.unbind(0)))


class FaceBranch(nn.Module):
    """`fusion_face (B, T, audio_f)`, `hint (B, T, motion_f)`, `speaker (B,)` -> `(B, T/4, code_dim)`.

    `memory_pe`: add the positional encoding to the decoder's memory (the speech), as the query has it (SemTalk's
    code: False)."""

    def __init__(
        self,
        hidden: int,
        audio_f: int,
        motion_f: int,
        code_dim: int,
        heads: int,
        layers: int,
        num_speakers: int,
        window: int,
        dropout: float,
        memory_pe: bool = False,
    ) -> None:
        super().__init__()
        self.memory_pe = memory_pe
        self.hint_mlp = MLP(motion_f, hidden, motion_f)
        self.memory_proj = nn.Linear(audio_f + motion_f, hidden)
        self.speaker = nn.Embedding(num_speakers, hidden)
        self.pe = PeriodicPositionalEncoding(hidden, window, dropout)
        self.decoder = decoder_stack(hidden, heads, 2 * hidden, layers, dropout)
        self.out = nn.Linear(hidden, code_dim)
        self.down1 = nn.Conv1d(code_dim, code_dim, 2, stride=2)
        self.mid = MLP(code_dim, hidden, code_dim)
        self.down2 = nn.Conv1d(code_dim, code_dim, 2, stride=2)

    def forward(self, fusion: torch.Tensor, hint: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        b, t, _ = fusion.shape
        memory = self.memory_proj(torch.cat((fusion, self.hint_mlp(hint)), dim=-1))
        if self.memory_pe:
            memory = self.pe(memory)
        query = self.pe(self.speaker(speaker)[:, None].expand(b, t, -1))
        x = self.out(self.decoder(query, memory))
        x = self.mid(downsample_time(self.down1, x))
        return downsample_time(self.down2, x)


@dataclass
class GeneratorOutput:
    """Result of `BaseGenerator.forward` (T' = T / 4).

    Attributes:
        logits: part -> `(B, T', Q, C)` code logits of every level.
        latents: part -> `(B, T', Q, D)` predicted per-level latents [level-0 latent, zq_1..zq_{Q-1}], regressed
            against the per-level code vectors of the ground-truth tokens.
        prezq: part -> `(B, T', D)` part latents before the cascade (inputs of the rhythm losses: face and hands).
        cascaded: part -> `(B, T', D)` part latents after the cascade (the level-0 latents).
        fusion_face, fusion_body: `(B, T, A)` fused speech features of the two branches.
        hubert_face, hubert_body: `(B, T, A)` HuBERT-encoder features of the two branches (rhythm-loss targets).
    """

    logits: dict[str, torch.Tensor]
    latents: dict[str, torch.Tensor]
    prezq: dict[str, torch.Tensor]
    cascaded: dict[str, torch.Tensor]
    fusion_face: torch.Tensor
    fusion_body: torch.Tensor
    hubert_face: torch.Tensor
    hubert_body: torch.Tensor

    def split(self, passes: int) -> list[GeneratorOutput]:
        """The outputs of `passes` passes stacked along the batch (as `BaseGenerator.forward_passes` runs them)
        -> one output per pass; the HuBERT features, computed once for all passes, are shared."""
        per_part = (self.logits, self.latents, self.prezq, self.cascaded)
        return [
            GeneratorOutput(
                *({p: rows(v, i, passes) for p, v in d.items()} for d in per_part),
                rows(self.fusion_face, i, passes),
                rows(self.fusion_body, i, passes),
                self.hubert_face,
                self.hubert_body,
            )
            for i in range(passes)
        ]


class BaseGenerator(nn.Module):
    """Speech-driven generator of the residual-VQ codes of face, upper, hands and lower.

    Args:
        hidden: transformer width H (paper 768).
        audio_f: width of the fused speech features A (256); must equal `code_dim` (the residual predictors
            attend to them and the rhythm losses compare them with part latents).
        motion_f: width of the masked-motion hint M (256).
        heads: attention heads of the H-wide and cascade stacks (4).
        audio_layers: depth of the body's audio cross-attention (8).
        face_layers: depth of the face decoder (4).
        residual_layers, residual_heads: depth and heads of each residual-level predictor (3, 8).
        hubert_dim: width of the HuBERT features (1024 for HuBERT-large).
        beat_dim: width of the beat features (3).
        latent_dim: width of the full-body motion vector `latent_all` (337).
        num_speakers: rows of the speaker embeddings (25).
        codebook_size: codes per level C (256); num_quantizers: levels Q (6); code_dim: code width D (256).
        window: training window in frames (64): the period of the positional encoding.
        frames_per_token: frames per token (must be 4).
        dropout: dropout of the attention layers and positional encodings (0.1).
        motion_encoder_layers: conv stages of the masked motion encoder (3).
        speaker_in_cross_query: see `BodyTrunk` (False = SemTalk's released behaviour).
        memory_pe: positions on every cross-attention memory (face decoder, body audio attention, residual-level
            predictors); False reproduces SemTalk's code, whose memories carry none.
        beat_norm: standardise the beat features before the speech branches' beat MLPs (see `AudioBranch`); False
            feeds them raw, as the reference does.
        aligned_memory: add each frame's memory (speech or semantic features) to the body trunk's query of the
            same frame (see `BodyTrunk`); False is SemTalk's trunk, which reaches the memory only by cross-attention.
    """

    def __init__(
        self,
        hidden: int = 768,
        audio_f: int = 256,
        motion_f: int = 256,
        heads: int = 4,
        audio_layers: int = 8,
        face_layers: int = 4,
        residual_layers: int = 3,
        residual_heads: int = 8,
        hubert_dim: int = 1024,
        beat_dim: int = 3,
        latent_dim: int = 337,
        num_speakers: int = 25,
        codebook_size: int = 256,
        num_quantizers: int = 6,
        code_dim: int = 256,
        window: int = 64,
        frames_per_token: int = 4,
        dropout: float = 0.1,
        motion_encoder_layers: int = 3,
        speaker_in_cross_query: bool = False,
        memory_pe: bool = True,
        beat_norm: bool = False,
        aligned_memory: bool = False,
    ) -> None:
        super().__init__()
        check_frames_per_token(frames_per_token)
        if audio_f != code_dim:
            raise ValueError(f"audio_f ({audio_f}) must equal code_dim ({code_dim}) of the tokenizers")
        self.hidden, self.latent_dim, self.num_speakers = hidden, latent_dim, num_speakers
        self.hubert_dim, self.beat_dim = hubert_dim, beat_dim
        self.codebook_size, self.num_quantizers, self.code_dim = codebook_size, num_quantizers, code_dim
        self.frames_per_token = frames_per_token
        self.audio_face = AudioBranch(hubert_dim, beat_dim, audio_f, hidden, beat_norm)
        self.audio_body = AudioBranch(hubert_dim, beat_dim, audio_f, hidden, beat_norm)
        self.motion_encoder = MaskedMotionEncoder(latent_dim, motion_f, motion_encoder_layers, hidden**-0.5)
        self.face = FaceBranch(
            hidden, audio_f, motion_f, code_dim, heads, face_layers, num_speakers, window, dropout, memory_pe
        )
        self.body = BodyTrunk(
            hidden,
            motion_f,
            audio_f,
            code_dim,
            heads,
            audio_layers,
            num_speakers,
            window,
            dropout,
            speaker_in_cross_query,
            memory_pe,
            aligned_memory,
        )
        self.cascade = PartCascade(BASE_CASCADE, (("face", "hands"), ("upper", "lower")), code_dim, heads, dropout)
        self.predictors = PartCodePredictors(
            PARTS,
            code_dim,
            hidden,
            codebook_size,
            num_quantizers,
            residual_layers,
            residual_heads,
            dropout,
            memory_pe,
            window,
            frames_per_token,
        )

    @classmethod
    def tiny(cls, **overrides) -> BaseGenerator:
        """A debug-size generator (H=32, widths 16, one layer per stack, C=16, Q=6) for tests."""
        cfg = dict(
            hidden=32,
            audio_f=16,
            motion_f=16,
            heads=2,
            audio_layers=1,
            face_layers=1,
            residual_layers=1,
            residual_heads=2,
            hubert_dim=24,
            num_speakers=3,
            codebook_size=16,
            num_quantizers=6,
            code_dim=16,
            motion_encoder_layers=1,
        )
        cfg.update(overrides)
        return cls(**cfg)

    def _encode(
        self,
        hubert: torch.Tensor,
        beat: torch.Tensor,
        latent_all: torch.Tensor,
        mask: torch.Tensor,
        speaker: torch.Tensor,
        use_audio_body: bool,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
        b, t = check_motion_inputs(latent_all, mask, speaker, self.latent_dim, self.num_speakers)
        fusion_face, fusion_body, hubert_face, hubert_body = self._speech(hubert, beat, b, t)
        prezq, cascaded = self._trunk(fusion_face, fusion_body, latent_all, mask, speaker, use_audio_body)
        return prezq, cascaded, (fusion_face, fusion_body, hubert_face, hubert_body)

    def _speech(self, hubert: torch.Tensor, beat: torch.Tensor, b: int, t: int) -> tuple[torch.Tensor, ...]:
        """Both speech branches after checking their inputs against `(B, T)` -> `(fusion_face, fusion_body,
        hubert_face, hubert_body)`, each `(B, T, A)`."""
        check_frame_input("hubert", hubert, b, t, self.hubert_dim)
        check_frame_input("beat", beat, b, t, self.beat_dim)
        fusion_face, hubert_face = self.audio_face(hubert, beat)
        fusion_body, hubert_body = self.audio_body(hubert, beat)
        return fusion_face, fusion_body, hubert_face, hubert_body

    def _trunk(
        self,
        fusion_face: torch.Tensor,
        fusion_body: torch.Tensor,
        latent_all: torch.Tensor,
        mask: torch.Tensor,
        speaker: torch.Tensor,
        use_audio_body: bool,
        audio_rows: torch.Tensor | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Motion encoder, face branch, body trunk and cascade from the fused speech features -> pre-cascade and
        cascaded part latents. `audio_rows`: the `(R,)` int64 rows that use the body's audio attention (None: all
        rows, as `use_audio_body` says)."""
        hint = self.motion_encoder(latent_all, mask)
        prezq = {"face": self.face(fusion_face, hint, speaker)}
        prezq.update(self.body(hint, speaker, fusion_body if use_audio_body else None, audio_rows))
        return prezq, self.cascade(prezq)

    def forward(
        self,
        hubert: torch.Tensor,
        beat: torch.Tensor,
        latent_all: torch.Tensor,
        mask: torch.Tensor,
        speaker: torch.Tensor,
        use_audio_body: bool = True,
        target_codes: dict[str, torch.Tensor] | None = None,
    ) -> GeneratorOutput:
        """Logits and latents of every part and level.

        Args:
            hubert: `(B, T, hubert_dim)` HuBERT features at the motion frame rate; T a multiple of 4.
            beat: `(B, T, beat_dim)` beat features.
            latent_all: `(B, T, latent_dim)` full-body motion (seed frames; the rest is masked).
            mask: `(B, T, latent_dim)` bool/float, 1 = replaced by the learned mask embedding.
            speaker: `(B,)` int64 speaker ids.
            use_audio_body: run the body's audio cross-attention (SemTalk's `use_word`; False in the masked
                gesture-modelling pass). The face branch and the residual predictors always hear the audio.
            target_codes: part -> `(B, T/4, Q, D)` ground-truth per-level code vectors for teacher forcing of
                the residual levels; None (SemTalk's behaviour) feeds the model's own latents. Parts missing
                from the dict use their own latents.
        """
        return self.forward_passes(hubert, beat, latent_all, [mask], [use_audio_body], speaker, target_codes)[0]

    def forward_passes(
        self,
        hubert: torch.Tensor,
        beat: torch.Tensor,
        latent_all: torch.Tensor,
        masks: list[torch.Tensor],
        use_audio_body: list[bool],
        speaker: torch.Tensor,
        target_codes: dict[str, torch.Tensor] | None = None,
        batched: bool = True,
    ) -> list[GeneratorOutput]:
        """`forward` of the same speech, motion and speakers under several masks, as one batched pass: the
        speech encoders run once and their features are repeated; everything after them runs on the passes
        stacked along the batch, so each layer is called once instead of once per pass (the same function:
        with dropout off, every pass's output equals its own `forward`).

        Args:
            masks: one `(B, T, latent_dim)` mask per pass; use_audio_body: one flag per pass.
            batched: False runs the passes one `forward` after another (the reference's way: the speech encoders,
                and their BatchNorm statistics, run once per pass).
            Other arguments as `forward`.

        Returns:
            one `GeneratorOutput` per pass, in order.
        """
        b, t = check_passes(masks, use_audio_body, "use_audio_body", latent_all, speaker, self.latent_dim,
                            self.num_speakers)  # fmt: skip
        n = len(masks)
        if not batched and n > 1:
            return [self.forward_passes(hubert, beat, latent_all, [m], [f], speaker, target_codes)[0]
                    for m, f in zip(masks, use_audio_body)]  # fmt: skip
        ff, fb, hf, hb = self._speech(hubert, beat, b, t)
        rep = repeat_batch(n)
        ff, fb = rep(ff), rep(fb)
        audio, audio_rows = pass_rows(use_audio_body, b, latent_all.device)
        mask = masks[0] if n == 1 else torch.cat(masks)
        prezq, cascaded = self._trunk(ff, fb, rep(latent_all), mask, rep(speaker), audio, audio_rows)
        memory = part_memories(ff, fb)
        given = None if target_codes is None else {p: rep(v) for p, v in target_codes.items()}
        logits, latents = self.predictors(cascaded, memory, given)
        return GeneratorOutput(logits, latents, prezq, cascaded, ff, fb, hf, hb).split(n)

    def forward_latents(
        self,
        hubert: torch.Tensor,
        beat: torch.Tensor,
        latent_all: torch.Tensor,
        mask: torch.Tensor,
        speaker: torch.Tensor,
        use_audio_body: bool = True,
    ) -> dict[str, torch.Tensor]:
        """The cascaded part latents, part -> `(B, T/4, D)`, without the code predictors (inputs as `forward`)."""
        return self._encode(hubert, beat, latent_all, mask, speaker, use_audio_body)[1]

    @torch.no_grad()
    def generate_codes(
        self,
        hubert: torch.Tensor,
        beat: torch.Tensor,
        latent_all: torch.Tensor,
        mask: torch.Tensor,
        speaker: torch.Tensor,
        codes_of: CodesOf | None = None,
        use_audio_body: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Arg-max codes, part -> `(B, T/4, Q)` int64 (inputs as `forward`; call in eval mode).

        `codes_of(part, level, indices (B, T/4)) -> (B, T/4, D)` looks up the tokenizer's code vectors of the
        predicted indices, which then feed the next residual levels; None feeds the model's own latents, as
        SemTalk's code does."""
        return self.generate_codes_and_latents(hubert, beat, latent_all, mask, speaker, codes_of, use_audio_body)[0]

    @torch.no_grad()
    def generate_codes_and_latents(
        self,
        hubert: torch.Tensor,
        beat: torch.Tensor,
        latent_all: torch.Tensor,
        mask: torch.Tensor,
        speaker: torch.Tensor,
        codes_of: CodesOf | None = None,
        use_audio_body: bool = True,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """`generate_codes` and `forward_latents` of the same inputs from one encoder pass: codes part ->
        `(B, T/4, Q)` int64 and cascaded latents part -> `(B, T/4, D)` (what the sparse generator blends with)."""
        _, cascaded, (ff, fb, _, _) = self._encode(hubert, beat, latent_all, mask, speaker, use_audio_body)
        return self.predictors.generate(cascaded, part_memories(ff, fb), codes_of), cascaded
