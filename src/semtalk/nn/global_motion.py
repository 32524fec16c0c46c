"""The continuous global-motion network: lower-body rotations (+ foot contact) -> root velocity and height.

Root translation is not tokenised: this net predicts per-frame horizontal velocity (vx, vz, m/s), absolute
height y (m) and foot contact from the lower-body joint rotations, and `integrate_translation` turns the
velocities back into a trajectory from an initial position.
"""

from __future__ import annotations

import torch
from torch import nn

LOWER_ROT_DIMS = 54  # 9 joints x rot6d
OUT_DIMS = 7  # vx, y, vz, 4 contacts


class ResBlock1d(nn.Module):
    """conv(k3) -> LeakyReLU -> conv(k3), plus the input. `(B, C, T)` -> same."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(width, width, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv1d(width, width, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GlobalMotionNet(nn.Module):
    """`(B, T, 54 [+4])` lower rotations (+ contacts) -> `(B, T, 7)` = (vx, y, vz, contact x4).

    Args:
        width: hidden channels; layers: conv+residual blocks in the encoder (no temporal downsampling).
        use_contacts: feed foot contacts as input (ground truth in training, predicted by the lower tokenizer at
            generation); False feeds rotations only.
    """

    def __init__(self, width: int = 256, layers: int = 4, use_contacts: bool = True) -> None:
        super().__init__()
        self.use_contacts = use_contacts
        in_dim = LOWER_ROT_DIMS + (4 if use_contacts else 0)
        enc: list[nn.Module] = []
        for i in range(layers):
            enc += [nn.Conv1d(in_dim if i == 0 else width, width, 3, padding=1), nn.LeakyReLU(0.2), ResBlock1d(width)]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(
            ResBlock1d(width),
            ResBlock1d(width),
            nn.Conv1d(width, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(width, OUT_DIMS, 3, padding=1),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, lower: torch.Tensor) -> torch.Tensor:
        """`lower` `(B, T, 61)` lower-part features (translation ignored) -> `(B, T, 7)`."""
        x = lower[..., :LOWER_ROT_DIMS]
        if self.use_contacts:
            x = torch.cat((x, lower[..., 57:61]), dim=-1)
        return self.decoder(self.encoder(x.transpose(1, 2))).transpose(1, 2)


def root_velocity(trans: torch.Tensor, fps: int = 30) -> torch.Tensor:
    """`(B, T, 3)` translation -> `(B, T, 3)` = (vx, y, vz): backward-difference x/z velocity in m/s (0 at the
    first frame) and absolute height. Exactly inverted by `integrate_translation`."""
    vel = torch.zeros_like(trans)
    vel[:, 1:, 0] = (trans[:, 1:, 0] - trans[:, :-1, 0]) * fps
    vel[:, 1:, 2] = (trans[:, 1:, 2] - trans[:, :-1, 2]) * fps
    vel[..., 1] = trans[..., 1]
    return vel


def integrate_translation(vel: torch.Tensor, start: torch.Tensor, fps: int = 30) -> torch.Tensor:
    """`vel` `(B, T, 3)` = (vx, y, vz) and `start` `(B, 3)` -> `(B, T, 3)` translation: x/z integrated from
    the start position, y taken as predicted."""
    xz = vel[..., [0, 2]].clone()
    xz[:, 0] = 0
    xz = start[:, None, [0, 2]] + torch.cumsum(xz / fps, dim=1)
    return torch.stack((xz[..., 0], vel[..., 1], xz[..., 1]), dim=-1)
