"""Speech encoders of the generators: the HuBERT convolutional encoder, the beat-feature MLP and the
per-channel soft fusion that mixes two feature streams frame by frame.

All tensors are channel-last `(B, T, D)`.
"""

from __future__ import annotations

import torch
from torch import nn

from semtalk.nn.attention import MLP


class HubertEncoder(nn.Module):
    """Conv1d(k3, no bias) -> BatchNorm -> GELU -> Conv1d(k3, no bias). `(B, T, in_dim)` -> `(B, T, out_dim)`."""

    def __init__(self, in_dim: int = 1024, out_dim: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(in_dim, out_dim, 3, padding=1, bias=False),
            nn.BatchNorm1d(out_dim),
            nn.GELU(),
            nn.Conv1d(out_dim, out_dim, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2)).transpose(1, 2)


class SoftFusion(nn.Module):
    """Per-frame, per-channel soft switch between two `(B, T, D)` streams.

    `alpha = softmax(Linear(2D -> 2D)([a, b]) reshaped to (B, T, D, 2))`; output `a * alpha[..., 1] +
    b * alpha[..., 0]`, shape `(B, T, D)`.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * dim, 2 * dim)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        alpha = self.proj(torch.cat((a, b), dim=-1)).unflatten(-1, (a.shape[-1], 2)).softmax(dim=-1)
        return a * alpha[..., 1] + b * alpha[..., 0]


class AudioBranch(nn.Module):
    """HuBERT encoder + beat MLP + soft fusion, for one generator branch (face or body).

    Args:
        hubert_dim: width of the HuBERT features (1024 for HuBERT-large).
        beat_dim: width of the beat features (3: amplitude, energy, onset).
        out_dim: width of the fused feature (`audio_f`, 256).
        hidden: hidden width of the beat MLP (the generator width H).
        beat_norm: standardise the beat features channel by channel (BatchNorm without affine weights) before the
            MLP. The raw channels differ in scale by 30x (amplitude ~0.2, short-time energy ~6, up to ~50); the
            reference feeds them raw (False).
    """

    def __init__(self, hubert_dim: int, beat_dim: int, out_dim: int, hidden: int, beat_norm: bool = False) -> None:
        super().__init__()
        self.hubert = HubertEncoder(hubert_dim, out_dim)
        self.beat_norm = nn.BatchNorm1d(beat_dim, affine=False) if beat_norm else None
        self.beat = MLP(beat_dim, hidden, out_dim)
        self.fusion = SoftFusion(out_dim)

    def forward(self, hubert: torch.Tensor, beat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`hubert (B, T, hubert_dim)`, `beat (B, T, beat_dim)` -> `(fused, hubert_features)`, both
        `(B, T, out_dim)`."""
        h = self.hubert(hubert)
        if self.beat_norm is not None:
            beat = self.beat_norm(beat.transpose(1, 2)).transpose(1, 2)
        return self.fusion(h, self.beat(beat)), h
