"""The sparse (semantic) generator, its Sem-gate, and the code fusion with the base generator.

Structure (A = audio_f, H = hidden, D = code_dim, T' = T / 4):
- semantic speech encoding: per-frame word ids -> embedding -> Linear(word_dim -> A) + PE is the query of a
  transformer decoder whose memory is the CLIP sentence feature `Linear(clip)` (one token) or, with
  `use_emotion`, the per-frame soft fusion of that sentence feature with the projected emotion2vec frame
  features (the paper's phi_e; SemTalk's code computes an emotion stream and then ignores it);
- soft fusion of that semantic feature with the HuBERT encoder's features -> `fusion (B, T, A)`;
- Sem-gate: `Linear(A -> 2)` of `fusion` averaged over each token's 4 frames -> logits `(B, T', 2)`;
  psi = softmax(logits)[..., 1];
- W_f: `semantic = MLP(fusion) * psi` (psi repeated over the 4 frames of its token; `feature_weighting=False`
  leaves out the product);
- the body trunk of the base generator (`BodyTrunk`) with `semantic` as the cross-attention memory, for upper,
  hands and lower (no face); cascade hands <- upper + lower, upper <- hands_new + lower, lower <- upper + hands_new;
- optionally (the paper's blend, commented out in SemTalk's code) `q = MLP(psi * f_s + (1 - psi) * f_b)` with
  f_s the cascaded sparse latent and f_b the base generator's cascaded latent of the same part;
- per part, level-0 classifier + residual-level predictors attending to `semantic`.

`fuse_codes` then takes the body-part codes from the sparse model on tokens with psi > beta.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semtalk.nn.attention import MLP, PeriodicPositionalEncoding, decoder_stack
from semtalk.nn.audio_encoder import HubertEncoder, SoftFusion
from semtalk.nn.base_generator import (
    BODY_PARTS,
    PARTS,
    BodyTrunk,
    check_frame_input,
    check_frames_per_token,
    check_motion_inputs,
    check_passes,
    pass_rows,
    repeat_batch,
    rows,
)
from semtalk.nn.cascade import PartCascade
from semtalk.nn.code_predictor import CodesOf, PartCodePredictors
from semtalk.nn.grouped import GroupedMLP, stacked
from semtalk.nn.motion_encoder import MaskedMotionEncoder

# the cascade's memories: hands <- upper + lower (before the cascade), then upper <- hands_new + lower,
# lower <- upper + hands_new
SPARSE_CASCADE: dict[str, tuple[str, ...]] = {
    "upper": ("hands", "lower"),
    "hands": ("upper", "lower"),
    "lower": ("upper", "hands"),
}


@dataclass
class SparseOutput:
    """Result of `SparseGenerator.forward` (T' = T / 4; parts are upper, hands, lower).

    Attributes:
        gate_logits: `(B, T', 2)` Sem-gate logits (class 1 = semantic token).
        psi: `(B, T')` semantic score used for W_f and the blend (softmax of the logits, or the override).
        logits: part -> `(B, T', Q, C)`.
        latents: part -> `(B, T', Q, D)` [level-0 latent, zq_1..zq_{Q-1}].
        prezq: part -> `(B, T', D)` before the cascade.
        cascaded: part -> `(B, T', D)` after the cascade, before the blend with the base latents.
        semantic: `(B, T, A)` the psi-weighted semantic features (W_f), memory of the body branch.
        fusion: `(B, T, A)` semantic + HuBERT fusion, before W_f.
    """

    gate_logits: torch.Tensor
    psi: torch.Tensor
    logits: dict[str, torch.Tensor]
    latents: dict[str, torch.Tensor]
    prezq: dict[str, torch.Tensor]
    cascaded: dict[str, torch.Tensor]
    semantic: torch.Tensor
    fusion: torch.Tensor


class SparseGenerator(nn.Module):
    """Semantic generator of the residual-VQ codes of upper, hands and lower, with a per-token Sem-gate.

    Args:
        hidden, audio_f, motion_f, heads, residual_layers, residual_heads, hubert_dim, latent_dim, num_speakers,
            codebook_size, num_quantizers, code_dim, window, frames_per_token, dropout, motion_encoder_layers,
            speaker_in_cross_query: as in `BaseGenerator`.
        semantic_layers: depth of the body's cross-attention to the semantic features (8).
        semantic_decoder_layers: depth of the word -> sentence decoder (1).
        vocab_size, word_dim: word-embedding table (BEAT2: 11195 x 300 fastText).
        freeze_word_embedding: keep the word embeddings fixed (SemTalk fine-tunes them: False).
        clip_dim: width of the CLIP sentence feature (512 for ViT-B/32).
        emotion_dim: width of the emotion2vec frame features (1024 for emotion2vec+ large).
        use_emotion: fuse the emotion features into the semantic memory (the paper); False ignores them
            (SemTalk's released behaviour).
        blend_base: blend the cascaded latents with the base generator's by psi before the classifiers
            (the paper); False ignores the base latents (SemTalk's released behaviour).
        feature_weighting: W_f, multiply the semantic features by psi (the paper and the code); False feeds them
            unweighted (the Sem-gate ablation).
        memory_pe: positions on the body's semantic cross-attention memory and the residual-level predictors'
            (see `BaseGenerator`); False reproduces SemTalk's code.
        aligned_memory: add each frame's memory (speech or semantic features) to the body trunk's query of the
            same frame (see `BodyTrunk`); False is SemTalk's trunk, which reaches the memory only by cross-attention.
    """

    def __init__(
        self,
        hidden: int = 768,
        audio_f: int = 256,
        motion_f: int = 256,
        heads: int = 4,
        semantic_layers: int = 8,
        semantic_decoder_layers: int = 1,
        residual_layers: int = 3,
        residual_heads: int = 8,
        hubert_dim: int = 1024,
        vocab_size: int = 11195,
        word_dim: int = 300,
        freeze_word_embedding: bool = False,
        clip_dim: int = 512,
        emotion_dim: int = 1024,
        use_emotion: bool = True,
        blend_base: bool = True,
        feature_weighting: bool = True,
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
        aligned_memory: bool = False,
    ) -> None:
        super().__init__()
        check_frames_per_token(frames_per_token)
        if audio_f != code_dim:
            raise ValueError(f"audio_f ({audio_f}) must equal code_dim ({code_dim}) of the tokenizers")
        self.latent_dim, self.num_speakers, self.hubert_dim = latent_dim, num_speakers, hubert_dim
        self.vocab_size, self.word_dim, self.clip_dim, self.emotion_dim = vocab_size, word_dim, clip_dim, emotion_dim
        self.use_emotion, self.blend_base, self.feature_weighting = use_emotion, blend_base, feature_weighting
        self.codebook_size, self.num_quantizers, self.code_dim = codebook_size, num_quantizers, code_dim
        self.frames_per_token = frames_per_token

        self.word_embedding = nn.Embedding(vocab_size, word_dim)
        self.word_embedding.weight.requires_grad_(not freeze_word_embedding)
        self.word_proj = nn.Linear(word_dim, audio_f)
        self.hubert = HubertEncoder(hubert_dim, audio_f)
        self.clip_proj = nn.Linear(clip_dim, audio_f)
        if use_emotion:
            self.emotion_proj = nn.Linear(emotion_dim, audio_f)
            self.emotion_fusion = SoftFusion(audio_f)
        self.semantic_pe = PeriodicPositionalEncoding(audio_f, window, dropout)
        self.semantic_decoder = decoder_stack(audio_f, heads, 2 * audio_f, semantic_decoder_layers, dropout)
        self.speech_fusion = SoftFusion(audio_f)
        self.gate = nn.Linear(audio_f, 2)
        self.semantic_mlp = MLP(audio_f, audio_f, audio_f)

        self.motion_encoder = MaskedMotionEncoder(latent_dim, motion_f, motion_encoder_layers, hidden**-0.5)
        self.body = BodyTrunk(
            hidden,
            motion_f,
            audio_f,
            code_dim,
            heads,
            semantic_layers,
            num_speakers,
            window,
            dropout,
            speaker_in_cross_query,
            memory_pe,
            aligned_memory,
        )
        self.cascade = PartCascade(SPARSE_CASCADE, (("hands",), ("upper", "lower")), code_dim, heads, dropout)
        if blend_base:
            blend = [MLP(code_dim, hidden, code_dim) for _ in BODY_PARTS]
            self.blend = stacked(lambda: GroupedMLP(len(BODY_PARTS), code_dim, hidden, code_dim), blend, BODY_PARTS)
        self.predictors = PartCodePredictors(
            BODY_PARTS,
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
    def tiny(cls, **overrides) -> SparseGenerator:
        """A debug-size generator (H=32, widths 16, one layer per stack, vocab 50, C=16, Q=6) for tests."""
        cfg = dict(
            hidden=32,
            audio_f=16,
            motion_f=16,
            heads=2,
            semantic_layers=1,
            residual_layers=1,
            residual_heads=2,
            hubert_dim=24,
            vocab_size=50,
            word_dim=12,
            clip_dim=20,
            emotion_dim=10,
            num_speakers=3,
            codebook_size=16,
            num_quantizers=6,
            code_dim=16,
            motion_encoder_layers=1,
        )
        cfg.update(overrides)
        return cls(**cfg)

    @torch.no_grad()
    def set_word_embeddings(self, weights: torch.Tensor) -> None:
        """Initialise the word-embedding table from a `(vocab_size, word_dim)` matrix (e.g. fastText vectors)."""
        weights = torch.as_tensor(weights, dtype=self.word_embedding.weight.dtype)
        if weights.shape != self.word_embedding.weight.shape:
            raise ValueError(
                f"word embeddings {tuple(weights.shape)} do not match the configured (vocab_size, word_dim) = "
                f"{tuple(self.word_embedding.weight.shape)}; set vocab_size/word_dim to the vocabulary's"
            )
        self.word_embedding.weight.copy_(weights)

    @torch.no_grad()
    def init_from_base(self, base: nn.Module) -> list[str]:
        """Copy the base generator's motion encoder, body trunk and the upper/hands/lower code predictors (the
        modules both generators share, same shapes) into this one; the semantic encoder, the gate, the cascade
        and the blend keep their initialisation. `base`: a `BaseGenerator` of the same widths. Returns the
        parameter names copied."""
        own, theirs = self.state_dict(), base.state_dict()
        rows = torch.tensor([PARTS.index(p) for p in BODY_PARTS])
        copied = []
        for name, value in own.items():
            if not name.startswith(("motion_encoder.", "body.", "predictors.")) or name not in theirs:
                continue
            src = theirs[name]
            if name.startswith("predictors.") and src.dim() > 0 and src.shape[0] == len(PARTS):
                src = src[rows]  # grouped per part: pick the body parts' slices
            if src.shape != value.shape:
                raise ValueError(
                    f"init_from_base: {name} is {tuple(src.shape)} in the base generator and {tuple(value.shape)} "
                    "here; give both generators the same widths (hidden, motion_f, code_dim, layers, heads)"
                )
            value.copy_(src)
            copied.append(name)
        return copied

    def encode_semantics(
        self, words: torch.Tensor, clip: torch.Tensor, hubert: torch.Tensor, emotion: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Semantic speech feature and Sem-gate logits.

        `words (B, T)` int64, `clip (B, clip_dim)`, `hubert (B, T, hubert_dim)`, `emotion (B, T, emotion_dim)`
        (read only with `use_emotion`) -> `(fusion (B, T, A), gate_logits (B, T/4, 2))`."""
        if words.dim() != 2:
            raise ValueError(f"words must be (B, T) int64 vocabulary ids, got {tuple(words.shape)}")
        b, t = words.shape
        if words.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"words must be int64 vocabulary ids, got {words.dtype}")
        capturing = words.is_cuda and torch.cuda.is_current_stream_capturing()  # a CUDA graph: no host sync
        if words.numel() and not capturing and (int(words.min()) < 0 or int(words.max()) >= self.vocab_size):
            raise ValueError(f"word ids must lie in [0, {self.vocab_size}); check the vocabulary of the cache")
        check_frame_input("hubert", hubert, b, t, self.hubert_dim)
        if clip.shape != (b, self.clip_dim):
            raise ValueError(f"clip must be (B, {self.clip_dim}) = ({b}, {self.clip_dim}), got {tuple(clip.shape)}")
        sentence = self.clip_proj(clip)[:, None]  # (B, 1, A)
        if self.use_emotion:
            if emotion is None:
                raise ValueError("use_emotion=True needs the emotion2vec features `emotion (B, T, emotion_dim)`")
            check_frame_input("emotion", emotion, b, t, self.emotion_dim)
            memory = self.emotion_fusion(sentence.expand(-1, t, -1), self.emotion_proj(emotion))
        else:
            memory = sentence
        query = self.semantic_pe(self.word_proj(self.word_embedding(words)))
        fusion = self.speech_fusion(self.semantic_decoder(query, memory), self.hubert(hubert))
        gate_logits = self.gate(fusion.unflatten(1, (t // self.frames_per_token, self.frames_per_token)).mean(2))
        return fusion, gate_logits

    def _encode(
        self,
        words: torch.Tensor,
        clip: torch.Tensor,
        hubert: torch.Tensor,
        emotion: torch.Tensor | None,
        latent_all: torch.Tensor,
        mask: torch.Tensor,
        speaker: torch.Tensor,
        base_latents: dict[str, torch.Tensor] | None,
        use_semantic_body: bool,
        psi_override: torch.Tensor | None,
    ):
        b, t = check_motion_inputs(latent_all, mask, speaker, self.latent_dim, self.num_speakers)
        gate_logits, psi, semantic, fusion = self._semantics(words, clip, hubert, emotion, b, t, psi_override)
        prezq, cascaded, level0 = self._trunk(semantic, psi, latent_all, mask, speaker, base_latents, use_semantic_body)
        return gate_logits, psi, semantic, fusion, prezq, cascaded, level0

    def _semantics(
        self,
        words: torch.Tensor,
        clip: torch.Tensor,
        hubert: torch.Tensor,
        emotion: torch.Tensor | None,
        b: int,
        t: int,
        psi_override: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gate logits `(B, T', 2)`, psi `(B, T')`, the psi-weighted semantic memory and the fusion `(B, T, A)`."""
        if words.shape != (b, t):
            raise ValueError(f"words must be (B, T) = ({b}, {t}), got {tuple(words.shape)}")
        tokens = t // self.frames_per_token
        fusion, gate_logits = self.encode_semantics(words, clip, hubert, emotion)
        if psi_override is None:
            psi = gate_logits.softmax(-1)[..., 1]
        elif psi_override.shape != (b, tokens):
            raise ValueError(f"psi_override must be (B, T/4) = ({b}, {tokens}), got {tuple(psi_override.shape)}")
        else:
            psi = psi_override.to(fusion.dtype)
        semantic = self.semantic_mlp(fusion)
        if self.feature_weighting:
            semantic = semantic * psi.repeat_interleave(self.frames_per_token, dim=1)[..., None]
        return gate_logits, psi, semantic, fusion

    def _trunk(
        self,
        semantic: torch.Tensor,
        psi: torch.Tensor,
        latent_all: torch.Tensor,
        mask: torch.Tensor,
        speaker: torch.Tensor,
        base_latents: dict[str, torch.Tensor] | None,
        use_semantic_body: bool,
        semantic_rows: torch.Tensor | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Motion encoder, body trunk, cascade and base blend -> pre-cascade, cascaded and level-0 latents.
        `semantic_rows`: the `(R,)` int64 rows that attend to the semantics (None: all rows, as
        `use_semantic_body` says)."""
        hint = self.motion_encoder(latent_all, mask)
        prezq = self.body(hint, speaker, semantic if use_semantic_body else None, semantic_rows)
        cascaded = self.cascade(prezq)
        if not self.blend_base:
            return prezq, cascaded, cascaded
        if base_latents is None:
            raise ValueError("blend_base=True needs base_latents from BaseGenerator.forward_latents")
        for p in BODY_PARTS:
            if base_latents[p].shape != cascaded[p].shape:
                raise ValueError(
                    f"base latent of {p} {tuple(base_latents[p].shape)} must be {tuple(cascaded[p].shape)}"
                )
        w = psi[..., None]
        f_s = torch.stack([cascaded[p] for p in BODY_PARTS])
        f_b = torch.stack([base_latents[p] for p in BODY_PARTS])
        level0 = self.blend(w * f_s + (1 - w) * f_b)  # (G, B, T', D)
        return prezq, cascaded, dict(zip(BODY_PARTS, level0.unbind(0)))

    def forward(
        self,
        words: torch.Tensor,
        clip: torch.Tensor,
        hubert: torch.Tensor,
        latent_all: torch.Tensor,
        mask: torch.Tensor,
        speaker: torch.Tensor,
        emotion: torch.Tensor | None = None,
        base_latents: dict[str, torch.Tensor] | None = None,
        use_semantic_body: bool = True,
        target_codes: dict[str, torch.Tensor] | None = None,
        psi_override: torch.Tensor | None = None,
    ) -> SparseOutput:
        """Gate, psi, and logits/latents of upper, hands and lower.

        Args:
            words: `(B, T)` int64 per-frame vocabulary ids; T a multiple of 4.
            clip: `(B, clip_dim)` CLIP sentence feature of the window.
            hubert: `(B, T, hubert_dim)` HuBERT features.
            latent_all, mask, speaker: as in `BaseGenerator.forward`.
            emotion: `(B, T, emotion_dim)` emotion2vec frame features (required with `use_emotion`).
            base_latents: part -> `(B, T/4, D)` from `BaseGenerator.forward_latents` (required with `blend_base`).
            use_semantic_body: run the body's cross-attention to the semantic features (SemTalk's `use_word`).
            target_codes: part -> `(B, T/4, Q, D)` teacher-forcing code vectors, or None (own latents).
            psi_override: `(B, T/4)` semantic scores replacing the gate's psi in W_f and the blend (user control
                of emphasis); the gate logits are still returned.
        """
        return self.forward_passes(
            words, clip, hubert, latent_all, [mask], [use_semantic_body], speaker, emotion, base_latents,
            target_codes, psi_override,
        )[0]  # fmt: skip

    def forward_passes(
        self,
        words: torch.Tensor,
        clip: torch.Tensor,
        hubert: torch.Tensor,
        latent_all: torch.Tensor,
        masks: list[torch.Tensor],
        use_semantic_body: list[bool],
        speaker: torch.Tensor,
        emotion: torch.Tensor | None = None,
        base_latents: dict[str, torch.Tensor] | None = None,
        target_codes: dict[str, torch.Tensor] | None = None,
        psi_override: torch.Tensor | None = None,
        batched: bool = True,
    ) -> list[SparseOutput]:
        """`forward` of the same inputs under several masks, as one batched pass (see
        `BaseGenerator.forward_passes`): the semantic encoder and the gate run once, the rest on the passes
        stacked along the batch. `masks`: one `(B, T, latent_dim)` per pass; `use_semantic_body`: one flag per
        pass; `batched=False` runs the passes one `forward` after another (the reference's way). Returns one
        `SparseOutput` per pass (batched: gate logits and psi shared)."""
        b, t = check_passes(masks, use_semantic_body, "use_semantic_body", latent_all, speaker, self.latent_dim,
                            self.num_speakers)  # fmt: skip
        n = len(masks)
        if not batched and n > 1:
            return [
                self.forward_passes(words, clip, hubert, latent_all, [m], [f], speaker, emotion, base_latents,
                                    target_codes, psi_override)[0]
                for m, f in zip(masks, use_semantic_body)
            ]  # fmt: skip
        gate_logits, psi, semantic, fusion = self._semantics(words, clip, hubert, emotion, b, t, psi_override)
        rep = repeat_batch(n)
        sem = rep(semantic)
        use_sem, sem_rows = pass_rows(use_semantic_body, b, latent_all.device)
        prezq, cascaded, level0 = self._trunk(
            sem, rep(psi), rep(latent_all), torch.cat(masks) if n > 1 else masks[0], rep(speaker),
            None if base_latents is None else {p: rep(v) for p, v in base_latents.items()}, use_sem, sem_rows,
        )  # fmt: skip
        given = None if target_codes is None else {p: rep(v) for p, v in target_codes.items()}
        logits, latents = self.predictors(level0, dict.fromkeys(BODY_PARTS, sem), given)
        per_part = (logits, latents, prezq, cascaded)
        return [
            SparseOutput(
                gate_logits, psi, *({p: rows(v, i, n) for p, v in d.items()} for d in per_part), semantic, fusion
            )
            for i in range(n)
        ]

    @torch.no_grad()
    def generate_codes(
        self,
        words: torch.Tensor,
        clip: torch.Tensor,
        hubert: torch.Tensor,
        latent_all: torch.Tensor,
        mask: torch.Tensor,
        speaker: torch.Tensor,
        emotion: torch.Tensor | None = None,
        base_latents: dict[str, torch.Tensor] | None = None,
        codes_of: CodesOf | None = None,
        psi_override: torch.Tensor | None = None,
        use_semantic_body: bool = True,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Arg-max codes of upper, hands and lower, part -> `(B, T/4, Q)` int64, and psi `(B, T/4)`.

        Inputs as `forward`; `codes_of` as in `BaseGenerator.generate_codes`. Call in eval mode."""
        _, psi, semantic, _, _, _, level0 = self._encode(
            words, clip, hubert, emotion, latent_all, mask, speaker, base_latents, use_semantic_body, psi_override
        )
        return self.predictors.generate(level0, dict.fromkeys(BODY_PARTS, semantic), codes_of), psi


def fuse_codes(
    base_codes: dict[str, torch.Tensor], sparse_codes: dict[str, torch.Tensor], psi: torch.Tensor, beta: float = 0.5
) -> dict[str, torch.Tensor]:
    """Token-wise code switching between the base and the sparse generator.

    Args:
        base_codes: part -> `(B, T', Q)` codes of face, upper, hands and lower from the base generator.
        sparse_codes: part -> `(B, T', Q)` codes of upper, hands and lower from the sparse generator.
        psi: `(B, T')` semantic score per token.
        beta: threshold; tokens with psi > beta take all levels of the body-part codes from the sparse model
            (SemTalk: the gate's arg-max, i.e. beta = 0.5 with ties to the base).

    Returns:
        part -> `(B, T', Q)`: face always from the base; upper/hands/lower from sparse where psi > beta.
    """
    missing = [p for p in PARTS if p not in base_codes] + [p for p in BODY_PARTS if p not in sparse_codes]
    if missing:
        raise ValueError(f"fuse_codes: missing parts {missing} (base needs {PARTS}, sparse needs {BODY_PARTS})")
    select = psi > beta
    fused = {"face": base_codes["face"]}
    for p in BODY_PARTS:
        b, s = base_codes[p], sparse_codes[p]
        if b.shape != s.shape or b.shape[:2] != psi.shape:
            raise ValueError(
                f"fuse_codes: {p} base {tuple(b.shape)}, sparse {tuple(s.shape)} and psi {tuple(psi.shape)} "
                "must agree on (B, T')"
            )
        fused[p] = torch.where(select[..., None], s, b)
    return fused
