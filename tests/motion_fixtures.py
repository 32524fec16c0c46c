"""Small, smooth, random part-feature windows for stage tests (no dataset needed)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from semtalk.body.parts import SMPLXParams, split_parts


def smooth_params(frames: int, seed: int) -> SMPLXParams:
    """A smooth random motion: sums of slow sinusoids per pose dimension."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames, dtype=torch.float32)[:, None] / 30.0
    def wave(dims: int, amp: float) -> torch.Tensor:
        freq = torch.rand(dims, generator=g) * 1.5 + 0.2
        phase = torch.rand(dims, generator=g) * 6.28
        return amp * torch.sin(t * freq * 6.28 + phase)
    contact = (wave(4, 1.0) > 0).float()
    trans = wave(3, 0.05) + torch.tensor([0.0, 1.25, 0.0])
    return SMPLXParams(poses=wave(165, 0.3), expressions=wave(100, 1.0), trans=trans, contact=contact)


class PartWindows(Dataset):
    """`n` windows of `frames` frames; item = {part name: (frames, D)} plus betas (300,)."""

    def __init__(self, n: int = 16, frames: int = 32, seed: int = 0) -> None:
        self.items = []
        for i in range(n):
            parts = split_parts(smooth_params(frames, seed * 1000 + i))
            parts["betas"] = torch.zeros(300)
            self.items.append(parts)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.items[i]
