"""Coarse-to-fine prediction of one part's residual-VQ codes from its token latent.

Level 0 is classified from the part latent by an MLP. Level k >= 1 is predicted by its own cross-attention
stack: the query is `Linear(k*D -> D)` of the concatenation `[level-0 latent, v_1, ..., v_{k-1}]` (level 1
uses the level-0 latent directly), it attends to the frame-rate speech features, the query is added back
(residual) to give the level-k latent `zq_k`, and an MLP classifies it.

What `v_j` is selects the training/generation mode:
- the model's own latents `zq_j` (SemTalk's code does this, in training and at generation);
- given code vectors of level j (teacher forcing in training: the ground-truth code vectors);
- at generation, the code vectors of the predicted indices (looked up by the caller's `codes_of`).
The level-0 slot is always the model's own level-0 latent, so the trunk stays in the loop in every mode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from semtalk.nn.attention import MLP, PeriodicPositionalEncoding, decoder_stack


class ResidualLevelPredictor(nn.Module):
    """Cross-attention predictors for levels 1..Q-1 of one part.

    Args:
        dim: latent/code width D (256).
        codebook_size: classes per level C (256).
        num_quantizers: Q (6); Q - 1 predictors are built.
        layers, heads: depth and heads of each cross-attention stack (SemTalk: 3, 8); feed-forward 4*dim.
        dropout: inside the attention stacks.
    """

    def __init__(
        self, dim: int, codebook_size: int, num_quantizers: int, layers: int = 3, heads: int = 8, dropout: float = 0.1
    ) -> None:
        super().__init__()
        levels = range(1, num_quantizers)
        self.query_maps = nn.ModuleList(nn.Identity() if k == 1 else nn.Linear(k * dim, dim) for k in levels)
        self.decoders = nn.ModuleList(decoder_stack(dim, heads, 4 * dim, layers, dropout) for _ in levels)
        self.classifiers = nn.ModuleList(MLP(dim, dim, codebook_size) for _ in levels)

    def level(
        self, k: int, history: list[torch.Tensor], memory: torch.Tensor, query_pe: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Level `k` (1..Q-1) from `history = [level-0 latent, v_1, ..., v_{k-1}]` (each `(B, T', D)`) and
        `memory (B, T, D)` -> `(zq_k (B, T', D), logits_k (B, T', C))`. `query_pe (T', D)`, when given, is added
        to the attention query (the memory then carries the matching frame positions)."""
        query = self.query_maps[k - 1](torch.cat(history[:k], dim=-1))
        attend = query if query_pe is None else query + query_pe.to(query.dtype)
        zq = self.decoders[k - 1](attend, memory) + query
        return zq, self.classifiers[k - 1](zq)


class PartCodePredictor(nn.Module):
    """Level-0 classifier + residual-level predictors of one part.

    Args:
        dim: latent/code width D; hidden: hidden width of the level-0 MLP (the generator width H).
        codebook_size, num_quantizers, layers, heads, dropout: see `ResidualLevelPredictor`.
        memory_pe: add sinusoidal frame positions (period `window`) to the speech memory and each token's mean
            position (`frames_per_token` frames a token) to the attention queries, so that a token can find its
            own frames; SemTalk's code attends without positions (False), which leaves the attention no way to
            tell where in the window a frame lies.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        codebook_size: int,
        num_quantizers: int,
        layers: int = 3,
        heads: int = 8,
        dropout: float = 0.1,
        memory_pe: bool = False,
        window: int = 64,
        frames_per_token: int = 4,
    ) -> None:
        super().__init__()
        self.num_quantizers = num_quantizers
        self.dim = dim
        self.frames_per_token = frames_per_token
        self.level0 = MLP(dim, hidden, codebook_size)
        self.residual = ResidualLevelPredictor(dim, codebook_size, num_quantizers, layers, heads, dropout)
        self.pe = PeriodicPositionalEncoding(dim, window, 0.0) if memory_pe else None

    def _positions(self, latent0: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The memory with its frame positions and the tokens' mean positions `(T', D)` (None without)."""
        if self.pe is None:
            return memory, None
        return self.pe(memory), self.pe.token_codes(latent0.shape[1], self.frames_per_token, latent0.device)

    def forward(
        self, latent0: torch.Tensor, memory: torch.Tensor, given: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and latents of every level.

        Args:
            latent0: `(B, T', D)` the cascaded part latent (the level-0 latent).
            memory: `(B, T, D)` frame-rate speech features the residual levels attend to.
            given: `(B, T', Q, D)` per-level code vectors for teacher forcing, or None to feed the model's
                own latents (SemTalk's behaviour). Only levels 1..Q-2 are read.

        Returns:
            logits `(B, T', Q, C)` and latents `(B, T', Q, D)` = [level-0 latent, zq_1, ..., zq_{Q-1}].
        """
        expected = (*latent0.shape[:2], self.num_quantizers, self.dim)
        if given is not None and tuple(given.shape) != expected:
            raise ValueError(
                f"teacher-forcing codes {tuple(given.shape)} must be (B, T', Q={self.num_quantizers}, "
                f"D={self.dim}) matching the latent {tuple(latent0.shape)}"
            )
        memory, query_pe = self._positions(latent0, memory)
        history, latents, logits = [latent0], [latent0], [self.level0(latent0)]
        for k in range(1, self.num_quantizers):
            zq, lg = self.residual.level(k, history, memory, query_pe)
            latents.append(zq)
            logits.append(lg)
            history.append(given[:, :, k] if given is not None else zq)
        return torch.stack(logits, dim=2), torch.stack(latents, dim=2)

    def generate(
        self,
        latent0: torch.Tensor,
        memory: torch.Tensor,
        codes_of: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Arg-max codes of every level: `(B, T', D)`, `(B, T, D)` -> `(B, T', Q)` int64.

        `codes_of(level, indices (B, T')) -> (B, T', D)` gives the code vectors of the predicted indices,
        which then feed the next levels; None feeds the model's own latents (SemTalk's behaviour)."""
        memory, query_pe = self._positions(latent0, memory)
        history = [latent0]
        indices = [self.level0(latent0).argmax(-1)]
        for k in range(1, self.num_quantizers):
            zq, lg = self.residual.level(k, history, memory, query_pe)
            idx = lg.argmax(-1)
            indices.append(idx)
            if k < self.num_quantizers - 1:
                history.append(codes_of(k, idx) if codes_of is not None else zq)
        return torch.stack(indices, dim=-1)


def part_predictors(
    parts: tuple[str, ...],
    dim: int,
    hidden: int,
    codebook_size: int,
    num_quantizers: int,
    layers: int,
    heads: int,
    dropout: float,
    memory_pe: bool,
    window: int,
    frames_per_token: int,
) -> nn.ModuleDict:
    """One `PartCodePredictor` per part name (arguments as `PartCodePredictor`)."""
    return nn.ModuleDict(
        {
            p: PartCodePredictor(
                dim, hidden, codebook_size, num_quantizers, layers, heads, dropout, memory_pe, window, frames_per_token
            )
            for p in parts
        }
    )
