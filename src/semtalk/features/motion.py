"""Motion features of a clip: SMPL-X parameters, foot contact from the body model, and the speaker index.

Foot contact is computed on the whole clip: SMPL-X joints with the clip's betas, translation and
expressions, then `semtalk.body.kinematics.foot_contact` (ankle/foot displacement < 0.01 m per frame).
The part features (face 106, upper 78, hands 180, lower 61) and `latent_all` (337) are cheap rotations of
these arrays; the Datasets compute them per window (`semtalk.data.windows.motion_parts`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from semtalk.data.beat2 import speaker_index
from semtalk.data.errors import DataError
from semtalk.features.base import ClipInput, resolve_device


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class MotionFeatures:
    """`poses (T,165)`, `trans (T,3)`, `expressions (T,100)`, `betas (300,)`, `contact (T,4)` float32 and
    `speaker (1,)` int64 (BEAT2 speaker index 0-24).

    Args:
        body_model_root: folder holding `smplx/SMPLX_NEUTRAL_2020.npz` (the registry defaults it to the
            dataset's `weights/smplx_models`).
        chunk_frames: frames per body-model forward pass.
        device: `"auto"`, `"cpu"`, `"cuda"`, ...
    """

    name: ClassVar[str] = "motion"
    sources: ClassVar[tuple[str, ...]] = ("motion",)
    version: ClassVar[int] = 1
    runtime_keys: ClassVar[tuple[str, ...]] = ("chunk_frames", "device")

    def __init__(self, body_model_root: str, chunk_frames: int = 256, device: str = "auto") -> None:
        self.body_model_root = Path(body_model_root)
        self.chunk_frames = int(chunk_frames)
        self.device = resolve_device(device)
        model_file = self.body_model_root / "smplx" / "SMPLX_NEUTRAL_2020.npz"
        if not model_file.is_file():
            raise DataError(model_file, "SMPL-X body model not found (needed for foot contact)",
                            "put SMPLX_NEUTRAL_2020.npz (SMPL-X site / SemTalk's weights bundle) there, set "
                            "motion.body_model_root, or run `semtalk make-smplx` for a synthetic stand-in")  # fmt: skip
        from semtalk.body.model import BodyModel

        self.body = BodyModel(self.body_model_root)
        if isinstance(self.body, torch.nn.Module):
            self.body = self.body.to(self.device)

    @classmethod
    def output_dims(cls, **kwargs: Any) -> dict[str, int]:
        return {"poses": 165, "trans": 3, "expressions": 100, "betas": 300, "contact": 4}

    @torch.no_grad()
    def joints(self, poses: np.ndarray, betas: np.ndarray, trans: np.ndarray, expressions: np.ndarray) -> torch.Tensor:
        """`(T, 55, 3)` SMPL-X joint positions, computed in chunks."""
        dev = self.device if isinstance(self.body, torch.nn.Module) else torch.device("cpu")
        b = torch.from_numpy(betas).to(dev)
        out = []
        for s in range(0, len(poses), self.chunk_frames):
            e = s + self.chunk_frames
            j = self.body.joints(
                torch.from_numpy(poses[s:e]).to(dev), b,
                trans=torch.from_numpy(trans[s:e]).to(dev), expressions=torch.from_numpy(expressions[s:e]).to(dev),
            )  # fmt: skip
            out.append(j.float().cpu() if isinstance(j, torch.Tensor) else torch.from_numpy(np.asarray(j)).float())
        return torch.cat(out)

    def __call__(self, item: ClipInput) -> dict[str, np.ndarray]:
        from semtalk.body.kinematics import foot_contact

        m, n = item.clip.motion, item.num_frames
        contact = _numpy(foot_contact(self.joints(m.poses, m.betas, m.trans, m.expressions))).astype(np.float32)
        return {
            "poses": m.poses[:n],
            "trans": m.trans[:n],
            "expressions": m.expressions[:n],
            "betas": m.betas,
            "contact": contact[:n],
            "speaker": np.array([speaker_index(item.clip.speaker)], dtype=np.int64),
        }
