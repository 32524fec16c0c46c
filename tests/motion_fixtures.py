"""Small, smooth, random part-feature windows for stage tests (no dataset needed)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from semtalk.body.parts import SMPLXParams, latent_all, split_parts


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


HUBERT_DIM, CLIP_DIM, EMOTION_DIM, VOCAB = 24, 12, 8, 20


class PartWindows(Dataset):
    """`n` windows of `frames` frames shaped like `Beat2DataModule` training items: parts, latent_all, trans,
    betas, speaker, and speech features (random HuBERT, beat, words, semantic scores, CLIP, emotion)."""

    def __init__(self, n: int = 16, frames: int = 32, seed: int = 0) -> None:
        self.items = []
        g = torch.Generator().manual_seed(seed + 12345)
        for i in range(n):
            params = smooth_params(frames, seed * 1000 + i)
            item = split_parts(params)
            sem = (torch.rand(frames // 4, generator=g) > 0.6).float().repeat_interleave(4) * 0.5
            item.update(
                latent_all=latent_all(params),
                trans=params.trans,
                betas=torch.zeros(300),
                speaker=torch.tensor(i % 3),
                hubert=torch.randn(frames, HUBERT_DIM, generator=g),
                beat=torch.rand(frames, 3, generator=g),
                words=torch.randint(0, VOCAB, (frames,), generator=g),
                sem=sem,
                clip_text=torch.randn(CLIP_DIM, generator=g),
                emotion=torch.randn(frames, EMOTION_DIM, generator=g),
            )
            self.items.append(item)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.items[i]


TINY_VQ = dict(width=32, code_dim=16, depth=1, num_quantizers=3, codebook_size=16, dropout=0.0)


def train_tiny_stage1(out_dir, steps: int = 2, **vq_overrides) -> dict[str, str]:
    """Fit tiny VQ stages for the four parts and the global-motion net for a few steps; returns their paths
    by name (face, upper, hands, lower, global_motion)."""
    from pathlib import Path

    import lightning as L
    from torch.utils.data import DataLoader

    from stages.global_motion import GlobalMotionStage
    from stages.vq import VQStage

    out = Path(out_dir)
    loader = DataLoader(PartWindows(8, 32), batch_size=4)
    paths = {}
    stages = {p: VQStage(p, **{**TINY_VQ, **vq_overrides}) for p in ("face", "upper", "hands", "lower")}
    stages["global_motion"] = GlobalMotionStage(width=16, layers=1)
    for name, stage in stages.items():
        trainer = L.Trainer(
            default_root_dir=out,
            accelerator="cpu",
            max_steps=steps,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(stage, loader)
        paths[name] = str(out / f"{name}.ckpt")
        trainer.save_checkpoint(paths[name])
    return paths


def motion_arrays(t: int = 60, **override) -> dict[str, np.ndarray]:
    """The arrays of a BEAT2 motion npz (`t` frames of the rest pose); `override` replaces them, None drops one."""
    arrays = {
        "poses": np.zeros((t, 165), np.float32),
        "trans": np.zeros((t, 3), np.float64),
        "betas": np.zeros(300, np.float32),
        "expressions": np.zeros((t, 100), np.float64),
        "model": np.array("smplx2020"),
        "gender": np.array("neutral"),
        "mocap_frame_rate": np.array(30, np.int32),
    }
    arrays.update(override)
    return {k: v for k, v in arrays.items() if v is not None}
