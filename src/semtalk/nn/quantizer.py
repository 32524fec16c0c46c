"""Residual vector quantizer: a thin adapter over vector-quantize-pytorch's `ResidualVQ`.

Every library default the project relies on is an explicit argument here (decay, k-means init, dead-code reset,
rotation trick, quantize dropout), and codebook synchronisation across DDP ranks is decided when the quantizer is
built (`build()`), not memoised at import, because Lightning constructs modules before the process group exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class QuantizerOutput:
    """Result of quantizing a latent sequence.

    Attributes:
        quantized: `(B, T', D)` sum of the selected code vectors (straight-through to the input).
        indices: `(B, T', Q)` int64 code index per level.
        commit_loss: scalar commitment loss, mean over levels.
        usage: `(Q,)` fraction of each level's codebook used in this batch.
        perplexity: `(Q,)` perplexity of each level's code distribution in this batch.
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    commit_loss: torch.Tensor
    usage: torch.Tensor
    perplexity: torch.Tensor


def code_statistics(indices: torch.Tensor, codebook_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level usage fraction and perplexity of `(B, T', Q)` indices -> two `(Q,)` tensors."""
    flat = indices.reshape(-1, indices.shape[-1])
    counts = torch.stack(
        [torch.bincount(flat[:, q].clamp(min=0), minlength=codebook_size) for q in range(flat.shape[1])]
    ).float()
    probs = counts / counts.sum(-1, keepdim=True).clamp(min=1)
    usage = (counts > 0).float().mean(-1)
    perplexity = torch.exp(-(probs * torch.log(probs.clamp(min=1e-10))).sum(-1))
    return usage, perplexity


class ResidualQuantizer(nn.Module):
    """Residual VQ with EMA codebooks: `(B, T', D)` latents -> `QuantizerOutput`.

    Args:
        dim: latent width D (256 in SemTalk).
        num_quantizers: residual levels Q (6).
        codebook_size: codes per level (256).
        decay: EMA decay of the codebooks (SemTalk: 0.99).
        kmeans_init: initialise each codebook by k-means on the first batch.
        threshold_ema_dead_code: codes whose EMA count falls below this are replaced by batch vectors.
        commitment_weight: weight of ||x - sg(q)||^2 per level.
        rotation_trick: gradient estimator through the quantizer (False = straight-through).
        stochastic_sample_codes, sample_codebook_temp: Gumbel sampling of codes in training (SemTalk: temp 0.5).
        quantize_dropout: randomly drop trailing levels in training.
    """

    def __init__(
        self,
        dim: int = 256,
        num_quantizers: int = 6,
        codebook_size: int = 256,
        decay: float = 0.99,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        threshold_ema_dead_code: float = 1.0,
        commitment_weight: float = 1.0,
        rotation_trick: bool = False,
        stochastic_sample_codes: bool = False,
        sample_codebook_temp: float = 1.0,
        quantize_dropout: bool = False,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.num_quantizers = num_quantizers
        self.codebook_size = codebook_size
        self._kwargs = dict(
            dim=dim,
            num_quantizers=num_quantizers,
            codebook_size=codebook_size,
            decay=decay,
            kmeans_init=kmeans_init,
            kmeans_iters=kmeans_iters,
            threshold_ema_dead_code=threshold_ema_dead_code,
            commitment_weight=commitment_weight,
            rotation_trick=rotation_trick,
            stochastic_sample_codes=stochastic_sample_codes,
            sample_codebook_temp=sample_codebook_temp,
            quantize_dropout=quantize_dropout,
        )
        self.rvq: nn.Module | None = None
        self._codebooks_ready = False  # known k-means-initialised (a cache: checking reads device memory)
        self.build()
        self.register_load_state_dict_pre_hook(self._forget_codebook_state)

    def _forget_codebook_state(self, *args) -> None:
        """Loaded codebooks may be empty again: check before the next direct encode."""
        self._codebooks_ready = False

    def build(self, sync_codebook: bool | None = None) -> None:
        """(Re)build the library quantizer. `sync_codebook=None` syncs exactly when a process group with more
        than one rank exists now. Existing codebook state is carried over."""
        from vector_quantize_pytorch import ResidualVQ

        if sync_codebook is None:
            sync_codebook = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        old = self.rvq.state_dict() if self.rvq is not None else None
        self.rvq = ResidualVQ(**self._kwargs, sync_codebook=sync_codebook)
        self._codebooks_ready = False
        if old is not None:
            self.rvq.load_state_dict(old)
        self.sync_codebook = sync_codebook

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        with torch.autocast(device_type=x.device.type, enabled=False):
            quantized, indices, losses = self.rvq(x.float())
        usage, perplexity = code_statistics(indices, self.codebook_size)
        return QuantizerOutput(quantized.to(x.dtype), indices, losses.mean(), usage, perplexity)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, T', D)` -> `(B, T', Q)` int64 indices: at each level the code nearest to what the levels before
        left (the library's quantization in eval mode, computed directly: a few operations a level instead of
        the library's general path, which handles options this quantizer does not use)."""
        if not self._ready():  # the library initialises the codebooks by k-means on the first input it sees
            was_training = self.training
            self.eval()
            _, indices, _ = self.rvq(x.float())
            self.train(was_training)
            return indices
        residual = x.float().reshape(-1, x.shape[-1])
        codebooks = self.codebooks.float()
        indices = []
        for codes in codebooks:  # (C, D); squared distances as the library computes them, nearest = smallest
            dist = (residual.square().sum(-1, keepdim=True) + codes.square().sum(-1)) + (residual @ codes.T) * -2
            idx = dist.argmin(-1)
            residual = residual - codes[idx]
            indices.append(idx)
        return torch.stack(indices, -1).view(*x.shape[:-1], len(codebooks))

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """`(B, T', Q)` indices (-1 = level absent) -> `(B, T', D)` summed code vectors."""
        return self.level_codes(indices).sum(0)

    def level_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """`(B, T', Q)` indices (-1 = level absent: zeros) -> `(Q, B, T', D)` the code vector chosen at each level
        (not cumulative); one gather for all levels."""
        codebooks = self.codebooks  # (Q, C, D)
        q = codebooks.shape[0]
        if indices.shape[-1] != q:
            raise ValueError(f"indices have {indices.shape[-1]} levels, the quantizer {q}")
        per_level = indices.movedim(-1, 0)  # (Q, B, T')
        levels = torch.arange(q, device=indices.device).view(q, *([1] * (per_level.dim() - 1)))
        codes = codebooks[levels, per_level.clamp(min=0)]  # (Q, B, T', D)
        return codes.masked_fill((per_level < 0).unsqueeze(-1), 0.0)

    def _ready(self) -> bool:
        """Whether every level's codebook is initialised (a k-means-initialised codebook is empty until the first
        batch it quantizes)."""
        if not self._codebooks_ready:
            self._codebooks_ready = all(bool(getattr(vq._codebook, "initted", True)) for vq in self.rvq.layers)
        return self._codebooks_ready

    def level_codebook(self, level: int) -> torch.Tensor:
        """`(codebook_size, D)` current code vectors of one level."""
        return self.rvq.layers[level].codebook

    @property
    def codebooks(self) -> torch.Tensor:
        """`(Q, codebook_size, D)` current code vectors."""
        return self.rvq.codebooks
