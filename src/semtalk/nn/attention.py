"""Attention building blocks of the generators: periodic sinusoidal positional encoding, transformer
encoder/decoder stacks (PyTorch's layers, `batch_first=True`, so attention runs through SDPA) and the
two-layer MLP used throughout SemTalk.

All tensors are channel-last `(B, T, D)`.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """Linear -> LeakyReLU(0.2) -> Linear. `(..., in_dim)` -> `(..., out_dim)`."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PeriodicPositionalEncoding(nn.Module):
    """Adds a sinusoidal encoding of period `period` frames, then dropout. `(B, T, D)` -> same, any T.

    Position t gets the ordinary sinusoidal code of `t mod period`, so sequences longer than the training
    window see the same codes repeated (with period 64 and T <= 64 this is the plain sinusoidal encoding).
    """

    def __init__(self, dim: int, period: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"positional encoding width must be even, got {dim}")
        position = torch.arange(period, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
        pe = torch.zeros(period, dim)
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe, persistent=False)
        self.period = period
        self.dropout = nn.Dropout(dropout)

    def codes(self, frames: int, device: torch.device | None = None) -> torch.Tensor:
        """`(frames, D)` the codes added to the first `frames` positions."""
        return self.pe[torch.arange(frames, device=device) % self.period]

    def token_codes(self, tokens: int, frames_per_token: int, device: torch.device | None = None) -> torch.Tensor:
        """`(tokens, D)` the mean code of each token's frames: token t covers frames `t*f .. t*f + f - 1`."""
        return self.codes(tokens * frames_per_token, device).unflatten(0, (tokens, frames_per_token)).mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.codes(x.shape[1], x.device).to(x.dtype))


def decoder_stack(dim: int, heads: int, ff: int, layers: int, dropout: float = 0.1) -> nn.TransformerDecoder:
    """`layers` post-norm ReLU decoder layers (self-attention, cross-attention, feed-forward `ff`).

    Call as `stack(tgt (B, T, dim), memory (B, S, dim)) -> (B, T, dim)`; no masks (bidirectional)."""
    layer = nn.TransformerDecoderLayer(dim, heads, dim_feedforward=ff, dropout=dropout, batch_first=True)
    return nn.TransformerDecoder(layer, num_layers=layers)


def encoder_stack(dim: int, heads: int, ff: int, layers: int, dropout: float = 0.1) -> nn.TransformerEncoder:
    """`layers` post-norm ReLU encoder layers. Call as `stack(x (B, T, dim)) -> (B, T, dim)`; no masks."""
    layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=ff, dropout=dropout, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)


def downsample_time(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Apply a temporal `Conv1d` to a channel-last sequence: `(B, T, C)` -> `(B, T', C')`."""
    return conv(x.transpose(1, 2)).transpose(1, 2)
