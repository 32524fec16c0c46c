"""Masked full-body motion encoder: masked entries of `latent_all` are replaced by a learned mask embedding,
then a stack of convolution + residual blocks (no temporal downsampling) encodes the sequence."""

from __future__ import annotations

import torch
from torch import nn

from semtalk.nn.global_motion import ResBlock1d


class MaskedMotionEncoder(nn.Module):
    """`latent_all (B, T, in_dim)` with `mask (B, T, in_dim)` (1/True = masked) -> `(B, T, out_dim)`.

    Args:
        in_dim: width of the full-body motion vector (337).
        out_dim: width of the encoded motion hint (`motion_f`, 256).
        layers: number of [Conv1d(k3) -> LeakyReLU(0.2) -> residual block] stages.
        mask_init_std: std of the normal initialisation of the mask embedding (SemTalk: hidden**-0.5).
    """

    def __init__(self, in_dim: int = 337, out_dim: int = 256, layers: int = 3, mask_init_std: float = 768**-0.5):
        super().__init__()
        self.in_dim = in_dim
        self.mask_embedding = nn.Parameter(torch.randn(1, 1, in_dim) * mask_init_std)
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [nn.Conv1d(in_dim if i == 0 else out_dim, out_dim, 3, padding=1), nn.LeakyReLU(0.2)]
            blocks.append(ResBlock1d(out_dim))
        self.net = nn.Sequential(*blocks)
        for m in self.net.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def apply_mask(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Replace the masked entries (mask > 0.5) by the learned embedding. `(B, T, in_dim)` -> same."""
        if x.shape[-1] != self.in_dim or mask.shape != x.shape:
            raise ValueError(f"motion {tuple(x.shape)} and mask {tuple(mask.shape)} must both be (B, T, {self.in_dim})")
        return torch.where(mask > 0.5, self.mask_embedding.to(x.dtype), x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(self.apply_mask(x, mask).transpose(1, 2)).transpose(1, 2)
