"""The part RVQ-VAE: conv encoder (x4 downsampling) -> residual quantizer -> conv decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semtalk.nn.conv import ConvDecoder, ConvEncoder
from semtalk.nn.quantizer import QuantizerOutput, ResidualQuantizer


@dataclass
class RVQVAEOutput:
    """`recon` `(B, T, D)` decoded motion features; `latent` `(B, T', code_dim)` encoder output; `quant` the
    quantizer result."""

    recon: torch.Tensor
    latent: torch.Tensor
    quant: QuantizerOutput


class RVQVAE(nn.Module):
    """Tokenizer of one motion part. `(B, T, D)` with T a multiple of `downsample` -> codes `(B, T/4, Q)`.

    The per-dimension normalisation statistics of the part features belong to the tokenizer (buffers
    `feature_mean`, `feature_std`, set once from training data by `set_statistics`): the encoder sees
    standardised features and every decoded output is mapped back to the original units.

    Args:
        dim: feature width of the part.
        width, code_dim, down_t, depth, growth, dropout: see `ConvEncoder`.
        num_quantizers, codebook_size, and the remaining keyword arguments: see `ResidualQuantizer`.
    """

    def __init__(
        self,
        dim: int,
        width: int = 256,
        code_dim: int = 256,
        down_t: int = 2,
        depth: int = 3,
        growth: int = 3,
        dropout: float = 0.2,
        num_quantizers: int = 6,
        codebook_size: int = 256,
        **quantizer_kwargs,
    ) -> None:
        super().__init__()
        self.encoder = ConvEncoder(dim, width, code_dim, down_t, depth, growth, dropout)
        self.quantizer = ResidualQuantizer(code_dim, num_quantizers, codebook_size, **quantizer_kwargs)
        self.decoder = ConvDecoder(dim, width, code_dim, down_t, depth, growth, dropout)
        self.downsample = 2**down_t
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        self.register_buffer("statistics_set", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def set_statistics(self, mean: torch.Tensor, std: torch.Tensor, min_std: float = 1e-2) -> None:
        """Set the normalisation from `(D,)` training mean and std (std floored at `min_std`)."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp(min=min_std))
        self.statistics_set.fill_(True)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.feature_mean) / self.feature_std

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.feature_std + self.feature_mean

    def _check_length(self, x: torch.Tensor) -> None:
        if x.shape[1] % self.downsample:
            raise ValueError(f"sequence length {x.shape[1]} is not a multiple of {self.downsample} frames per token")

    def forward(self, x: torch.Tensor) -> RVQVAEOutput:
        self._check_length(x)
        latent = self.encoder(self.normalize(x))
        quant = self.quantizer(latent)
        return RVQVAEOutput(self.denormalize(self.decoder(quant.quantized)), latent, quant)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, T, D)` -> `(B, T/4, Q)` int64 code indices."""
        self._check_length(x)
        return self.quantizer.encode(self.encoder(self.normalize(x)))

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """`(B, T', Q)` -> `(B, 4 T', D)` motion features."""
        return self.denormalize(self.decoder(self.quantizer.decode(indices)))

    def decode_latent(self, quantized: torch.Tensor) -> torch.Tensor:
        """`(B, T', code_dim)` summed code vectors (or a prediction of them) -> `(B, 4 T', D)`."""
        return self.denormalize(self.decoder(quantized))

    def level_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """`(B, T', Q)` -> `(Q, B, T', code_dim)` per-level code vectors (targets of the generators)."""
        return self.quantizer.level_codes(indices)
