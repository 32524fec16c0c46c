"""Coarse-to-fine prediction of the parts' residual-VQ codes from their token latents.

Per part, level 0 is classified from the part latent by an MLP. Level k >= 1 is predicted by its own
cross-attention stack: the query is `Linear(k*D -> D)` of the concatenation `[level-0 latent, v_1, ..., v_{k-1}]`
(level 1 uses the level-0 latent directly), it attends to the frame-rate speech features, the query is added back
(residual) to give the level-k latent `zq_k`, and an MLP classifies it.

What `v_j` is selects the training/generation mode:
- the model's own latents `zq_j` (SemTalk's code does this, in training and at generation);
- given code vectors of level j (teacher forcing in training: the ground-truth code vectors);
- at generation, the code vectors of the predicted indices (looked up by the caller's `codes_of`).
The level-0 slot is always the model's own level-0 latent, so the trunk stays in the loop in every mode.

Every part has its own weights, but the parts share every shape, so all parts run together as grouped layers
(`semtalk.nn.grouped`): one batched kernel per operation instead of one per part. Checkpoints with one
predictor per part (`predictors.<part>.level0.net.0.weight`, ...) load unchanged: their tensors are stacked
on load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from semtalk.nn.attention import PeriodicPositionalEncoding
from semtalk.nn.grouped import GroupedDecoder, GroupedLinear, GroupedMLP, stack_group_state

CodesOf = Callable[[str, int, torch.Tensor], torch.Tensor]
"""`codes_of(part, level, indices (B, T')) -> (B, T', D)`: code vectors of one level's codebook."""


class ResidualLevelPredictors(nn.Module):
    """Cross-attention predictors for levels 1..Q-1 of G parts (grouped).

    Args:
        groups: G parts.
        dim: latent/code width D (256).
        codebook_size: classes per level C (256).
        num_quantizers: Q (6); Q - 1 predictors are built.
        layers, heads: depth and heads of each cross-attention stack (SemTalk: 3, 8); feed-forward 4*dim.
        dropout: inside the attention stacks.
    """

    def __init__(
        self,
        groups: int,
        dim: int,
        codebook_size: int,
        num_quantizers: int,
        layers: int = 3,
        heads: int = 8,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        levels = range(1, num_quantizers)
        maps = (nn.Identity() if k == 1 else GroupedLinear(groups, k * dim, dim) for k in levels)
        self.query_maps = nn.ModuleList(maps)
        self.decoders = nn.ModuleList(GroupedDecoder(groups, dim, heads, 4 * dim, layers, dropout) for _ in levels)
        self.classifiers = nn.ModuleList(GroupedMLP(groups, dim, dim, codebook_size) for _ in levels)

    def level(
        self, k: int, history: list[torch.Tensor], memory: torch.Tensor, query_pe: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Level `k` (1..Q-1) from `history = [level-0 latent, v_1, ..., v_{k-1}]` (each `(G, B, T', D)`) and
        `memory (G, B, T, D)` -> `(zq_k (G, B, T', D), logits_k (G, B, T', C))`. `query_pe (T', D)`, when given, is
        added to the attention query (the memory then carries the matching frame positions)."""
        query = self.query_maps[k - 1](torch.cat(history[:k], dim=-1))
        attend = query if query_pe is None else query + query_pe.to(query.dtype)
        zq = self.decoders[k - 1](attend, memory) + query
        return zq, self.classifiers[k - 1](zq)


class PartCodePredictors(nn.Module):
    """Level-0 classifier + residual-level predictors of every part, one set of weights per part.

    Args:
        parts: the part names, in the order their weights are stacked.
        dim: latent/code width D; hidden: hidden width of the level-0 MLP (the generator width H).
        codebook_size, num_quantizers, layers, heads, dropout: see `ResidualLevelPredictors`.
        memory_pe: add sinusoidal frame positions (period `window`) to the speech memory and each token's mean
            position (`frames_per_token` frames a token) to the attention queries, so that a token can find its
            own frames; SemTalk's code attends without positions (False), which leaves the attention no way to
            tell where in the window a frame lies.
    """

    def __init__(
        self,
        parts: tuple[str, ...],
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
        self.parts = tuple(parts)
        self.num_quantizers = num_quantizers
        self.dim = dim
        self.frames_per_token = frames_per_token
        g = len(self.parts)
        self.level0 = GroupedMLP(g, dim, hidden, codebook_size)
        self.residual = ResidualLevelPredictors(g, dim, codebook_size, num_quantizers, layers, heads, dropout)
        self.pe = PeriodicPositionalEncoding(dim, window, 0.0) if memory_pe else None
        self.register_load_state_dict_pre_hook(self._stack_part_state)

    def _stack_part_state(self, module, state, prefix, *args) -> None:
        """Load checkpoints with one predictor per part (`<part>.level0.net.0.weight`, ...) by stacking them."""
        stack_group_state(self, self.parts, state, prefix)

    def _stack(self, per_part: Mapping[str, torch.Tensor], what: str) -> torch.Tensor:
        missing = [p for p in self.parts if p not in per_part]
        if missing:
            raise ValueError(f"code predictors: no {what} for part(s) {missing} (parts: {list(self.parts)})")
        return torch.stack([per_part[p] for p in self.parts])

    def _inputs(
        self, latent0: Mapping[str, torch.Tensor], memory: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Stacked latents `(G, B, T', D)`, memory with its frame positions `(G, B, T, D)` and the tokens' mean
        positions `(T', D)` (None without)."""
        z0, mem = self._stack(latent0, "latent"), self._stack(memory, "memory")
        if z0.shape[-1] != self.dim or mem.shape[:2] != z0.shape[:2]:
            raise ValueError(
                f"code predictors: latents {tuple(z0.shape[1:])} must be (B, T', D={self.dim}) and the memory "
                f"{tuple(mem.shape[1:])} (B, T, D) with the same batch"
            )
        if self.pe is None:
            return z0, mem, None
        return z0, self.pe(mem.flatten(0, 1)).view_as(mem), self.pe.token_codes(z0.shape[2], self.frames_per_token,
                                                                                  z0.device)  # fmt: skip

    def forward(
        self,
        latent0: Mapping[str, torch.Tensor],
        memory: Mapping[str, torch.Tensor],
        given: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Logits and latents of every part and level.

        Args:
            latent0: part -> `(B, T', D)` the cascaded part latent (the level-0 latent).
            memory: part -> `(B, T, D)` frame-rate speech features that part's residual levels attend to.
            given: part -> `(B, T', Q, D)` per-level code vectors for teacher forcing, or None (and parts missing
                from it) to feed the model's own latents (SemTalk's behaviour). Only levels 1..Q-2 are read;
                parts not predicted here are ignored.

        Returns:
            logits part -> `(B, T', Q, C)` and latents part -> `(B, T', Q, D)` = [level-0 latent, zq_1, ...,
            zq_{Q-1}].
        """
        z0, mem, query_pe = self._inputs(latent0, memory)
        given = {p: v for p, v in (given or {}).items() if p in self.parts}  # other parts' codes: not ours
        expected = (*z0.shape[1:3], self.num_quantizers, self.dim)
        for p, v in given.items():
            if tuple(v.shape) != expected:
                raise ValueError(
                    f"teacher-forcing codes of {p} {tuple(v.shape)} must be (B, T', Q={self.num_quantizers}, "
                    f"D={self.dim}) matching the latent {tuple(z0.shape[1:])}"
                )
        history, latents, logits = [z0], [z0], [self.level0(z0)]
        for k in range(1, self.num_quantizers):
            zq, lg = self.residual.level(k, history, mem, query_pe)
            latents.append(zq)
            logits.append(lg)
            if k < self.num_quantizers - 1:
                history.append(self._feed(k, zq, given))
        return self._per_part(logits), self._per_part(latents)

    def _per_part(self, levels: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Q tensors `(G, B, T', X)` -> part -> `(B, T', Q, X)` (one stack per part: on the CPU a single stack of
        every part is slower than G smaller ones)."""
        per_level = [x.unbind(0) for x in levels]
        return {p: torch.stack([x[g] for x in per_level], dim=2) for g, p in enumerate(self.parts)}

    def _feed(self, k: int, zq: torch.Tensor, given: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """What level `k` passes on: the given code vectors of level k where there are some, else `zq`."""
        if not given:
            return zq
        return torch.stack([given[p][:, :, k] if p in given else zq[g] for g, p in enumerate(self.parts)])

    def generate(
        self, latent0: Mapping[str, torch.Tensor], memory: Mapping[str, torch.Tensor], codes_of: CodesOf | None = None
    ) -> dict[str, torch.Tensor]:
        """Arg-max codes of every level: part -> `(B, T', D)`, part -> `(B, T, D)` -> part -> `(B, T', Q)` int64.

        `codes_of(part, level, indices (B, T')) -> (B, T', D)` gives the code vectors of the predicted indices,
        which then feed the next levels; None feeds the model's own latents (SemTalk's behaviour)."""
        z0, mem, query_pe = self._inputs(latent0, memory)
        history = [z0]
        indices = [self.level0(z0).argmax(-1)]
        for k in range(1, self.num_quantizers):
            zq, lg = self.residual.level(k, history, mem, query_pe)
            idx = lg.argmax(-1)
            indices.append(idx)
            if k < self.num_quantizers - 1:
                if codes_of is None:
                    history.append(zq)
                else:
                    history.append(torch.stack([codes_of(p, k, idx[g]) for g, p in enumerate(self.parts)]))
        return dict(zip(self.parts, torch.stack(indices, dim=-1).unbind(0)))
