"""1-D temporal convolution encoder/decoder of the part RVQ-VAEs (MoMask/T2M-GPT design).

Tensors are channel-last `(B, T, D)` at the module boundaries; the convolutions run on `(B, D, T)` inside.
"""

from __future__ import annotations

import torch
from torch import nn


class ResConv1DBlock(nn.Module):
    """act -> dilated conv(k3) -> act -> conv(k1) -> dropout, added to the input. `(B, C, T)` -> same."""

    def __init__(self, width: int, dilation: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation),
            nn.ReLU(),
            nn.Conv1d(width, width, 1),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def resnet1d(width: int, depth: int, growth: int, dropout: float) -> nn.Sequential:
    """`depth` residual blocks with dilations growth^(depth-1) ... 1 (9, 3, 1 for depth 3, growth 3)."""
    return nn.Sequential(*(ResConv1DBlock(width, growth**i, dropout) for i in reversed(range(depth))))


class ConvEncoder(nn.Module):
    """`(B, T, in_dim)` -> `(B, T / 2**down_t, code_dim)`.

    Args:
        in_dim: feature width of the part (106, 78, 180 or 61).
        width: channels of the hidden convolutions.
        code_dim: width of the latent fed to the quantizer.
        down_t: number of stride-2 stages (2 gives x4 temporal downsampling).
        depth: residual blocks per stage; growth: dilation growth; dropout: inside the residual blocks.
    """

    def __init__(
        self,
        in_dim: int,
        width: int = 256,
        code_dim: int = 256,
        down_t: int = 2,
        depth: int = 3,
        growth: int = 3,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(in_dim, width, 3, padding=1), nn.ReLU()]
        for _ in range(down_t):
            layers += [nn.Conv1d(width, width, 4, stride=2, padding=1), resnet1d(width, depth, growth, dropout)]
        layers.append(nn.Conv1d(width, code_dim, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.downsample = 2**down_t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2)).transpose(1, 2)


class ConvDecoder(nn.Module):
    """`(B, T', code_dim)` -> `(B, T' * 2**down_t, out_dim)`; the mirror of `ConvEncoder`."""

    def __init__(
        self,
        out_dim: int,
        width: int = 256,
        code_dim: int = 256,
        down_t: int = 2,
        depth: int = 3,
        growth: int = 3,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(code_dim, width, 3, padding=1), nn.ReLU()]
        for _ in range(down_t):
            layers += [
                resnet1d(width, depth, growth, dropout),
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(width, width, 3, padding=1),
            ]
        layers += [nn.Conv1d(width, width, 3, padding=1), nn.ReLU(), nn.Conv1d(width, out_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.transpose(1, 2)).transpose(1, 2)
