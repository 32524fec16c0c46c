"""Rhythm-consistency losses: InfoNCE between motion token latents and speech features.

- Frame level (SemTalk's code): speech features are average-pooled to the token rate, both sides are
  L2-normalised, and for each speech token j a softmax over the motion tokens i of the *same* window
  (temperature tau) must pick i = j. Negatives are the other tokens of the window only.
- Sequence level (the paper's global term, absent from the code): motion and speech are mean-pooled over
  time, L2-normalised, and for each speech sequence a softmax over the motion sequences of the batch must
  pick its own. Negatives are the other sequences of the batch.

No parameters, no projection heads; gradients flow into both sides.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check(motion: torch.Tensor, audio: torch.Tensor) -> int:
    if motion.dim() != 3 or audio.dim() != 3 or motion.shape[0] != audio.shape[0] or motion.shape[2] != audio.shape[2]:
        raise ValueError(f"motion {tuple(motion.shape)} and audio {tuple(audio.shape)} must be (B, T', D), (B, T, D)")
    if audio.shape[1] % motion.shape[1]:
        raise ValueError(f"audio length {audio.shape[1]} is not a multiple of the token count {motion.shape[1]}")
    return audio.shape[1] // motion.shape[1]


def frame_infonce(motion: torch.Tensor, audio: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Frame-level InfoNCE. `motion (B, T', D)` tokens, `audio (B, T, D)` frames with T a multiple of T'.

    sim[b, i, j] = <m_i, a_j> / tau; loss = mean over (b, j) of -log softmax_i(sim[b, :, j])[j]."""
    pool = _check(motion, audio)
    a = F.avg_pool1d(audio.transpose(1, 2), pool).transpose(1, 2)
    m, a = F.normalize(motion, dim=-1), F.normalize(a, dim=-1)
    sim = m @ a.transpose(1, 2) / temperature  # (B, i=motion, j=audio)
    target = torch.arange(sim.shape[1], device=sim.device).expand(sim.shape[0], -1)
    return F.cross_entropy(sim, target)  # class axis = dim 1 = motion index


def sequence_infonce(motion: torch.Tensor, audio: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Sequence-level InfoNCE across the batch. `motion (B, T', D)`, `audio (B, T, D)`.

    sim[p, q] = <mean_t m_p, mean_t a_q> / tau (normalised); loss = mean over q of -log softmax_p(sim[:, q])[q].
    With B = 1 there are no negatives and the loss is 0."""
    _check(motion, audio)
    m = F.normalize(motion.mean(dim=1), dim=-1)
    a = F.normalize(audio.mean(dim=1), dim=-1)
    sim = a @ m.T / temperature  # (audio q, motion p)
    return F.cross_entropy(sim, torch.arange(sim.shape[0], device=sim.device))


class RhythmConsistencyLoss(nn.Module):
    """Sum of the enabled rhythm terms: `frame_weight * frame_infonce + sequence_weight * sequence_infonce`.

    Args:
        temperature: tau of both terms (SemTalk: 0.1).
        frame: include the frame-level term (SemTalk's code).
        sequence: include the sequence-level term (the paper's global term).
        frame_weight, sequence_weight: weights of the two terms.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        frame: bool = True,
        sequence: bool = True,
        frame_weight: float = 1.0,
        sequence_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if not (frame or sequence):
            raise ValueError("RhythmConsistencyLoss needs at least one of frame=True or sequence=True")
        self.temperature = temperature
        self.frame, self.sequence = frame, sequence
        self.frame_weight, self.sequence_weight = frame_weight, sequence_weight

    def forward(self, motion: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """`motion (B, T', D)` token latents, `audio (B, T, D)` frame features -> scalar loss."""
        loss = motion.new_zeros(())
        if self.frame:
            loss = loss + self.frame_weight * frame_infonce(motion, audio, self.temperature)
        if self.sequence:
            loss = loss + self.sequence_weight * sequence_infonce(motion, audio, self.temperature)
        return loss
