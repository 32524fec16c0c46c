"""The Coarse2Fine cascade: each part's latent attends to the sum of other parts' latents.

One 1-layer decoder (width D) per part, run in rounds: a part's memory is the sum of its source parts' latents,
each the cascaded latent when its part ran in an earlier round, else the pre-cascade one. The parts of one round
depend on nothing computed in it, so they run together as grouped layers (`semtalk.nn.grouped`), each part
keeping its own weights. Checkpoints with one decoder per part (`<part>.layers.0. ...`) load unchanged.

All tensors are channel-last `(B, T', D)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from semtalk.nn.attention import decoder_stack
from semtalk.nn.grouped import GroupedDecoder, stack_group_state, stacked


class PartCascade(nn.Module):
    """`prezq: part -> (B, T', D)` -> cascaded `part -> (B, T', D)`.

    Args:
        sources: part -> the parts whose latents sum to its memory; its order is the order the per-part layers
            are initialised in.
        rounds: the parts of each round, in order; every part of `sources` in exactly one round.
        dim, heads, dropout: the decoders' width (feed-forward 2*dim), heads and dropout.
    """

    def __init__(
        self,
        sources: Mapping[str, Sequence[str]],
        rounds: Sequence[Sequence[str]],
        dim: int,
        heads: int,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.sources = {p: tuple(s) for p, s in sources.items()}
        self.round_parts = [tuple(r) for r in rounds]
        flat = [p for r in self.round_parts for p in r]
        if sorted(flat) != sorted(self.sources):
            raise ValueError(f"cascade rounds {self.round_parts} must hold each part of {list(self.sources)} once")
        per_part = {p: decoder_stack(dim, heads, 2 * dim, 1, dropout) for p in self.sources}
        self.rounds = nn.ModuleList()
        for parts in self.round_parts:
            grouped = stacked(lambda: GroupedDecoder(len(parts), dim, heads, 2 * dim, 1, dropout),  # noqa: B023
                              [per_part[p] for p in parts])  # fmt: skip
            self.rounds.append(grouped)
        self.register_load_state_dict_pre_hook(self._stack_part_state)

    def _stack_part_state(self, module, state, prefix, *args) -> None:
        """Load checkpoints with one decoder per part (`<prefix><part>.layers.0...`) by stacking them per round."""
        for i, parts in enumerate(self.round_parts):
            stack_group_state(self.rounds[i], parts, state, f"{prefix}rounds.{i}.", separate_prefix=prefix)

    def forward(self, prezq: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        latest = dict(prezq)
        cascaded = {}
        for parts, decoder in zip(self.round_parts, self.rounds):
            query = torch.stack([prezq[p] for p in parts])
            memory = torch.stack([sum_of(latest, self.sources[p]) for p in parts])
            cascaded.update(zip(parts, decoder(query, memory).unbind(0)))
            latest.update(cascaded)
        return {p: cascaded[p] for p in self.sources}


def sum_of(latents: Mapping[str, torch.Tensor], parts: Sequence[str]) -> torch.Tensor:
    """The sum of `latents[p]` over `parts`, left to right."""
    total = latents[parts[0]]
    for p in parts[1:]:
        total = total + latents[p]
    return total
