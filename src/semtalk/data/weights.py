"""The `weights/` folder of a BEAT2 root: body model location and the mean joint speeds used by BC."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from semtalk.atomic import atomic_path
from semtalk.data.beat2 import load_motion

MEAN_VEL_FILE = "mean_vel_smplxflame_30.npy"
SMPLX_FILE = Path("smplx") / "SMPLX_NEUTRAL_2020.npz"


def smplx_root_of(root: str | Path) -> Path:
    """The body-model folder of a dataset root: `<root>/weights/smplx_models` (holds smplx/SMPLX_NEUTRAL_2020.npz)."""
    return Path(root) / "weights" / "smplx_models"


def save_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    """Write `array` to `path` through a temporary file, so a crash never leaves half a file."""
    with atomic_path(path, ".npy.tmp") as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def compute_mean_velocity(root: str | Path, body_model, progress: bool = True) -> np.ndarray:
    """Mean speed (m/s) of each of the 55 joints over every `smplxflame_30/*.npz` of a root -> `(55,)`.

    This is how BEAT2's `weights/mean_vel_smplxflame_30.npy` (the BC normaliser) is defined: joints from
    an SMPL-X forward pass with the clip's betas, translation kept, at 30 fps.
    """
    from semtalk.body.kinematics import mean_joint_speed

    files = sorted((Path(root) / "smplxflame_30").glob("*.npz"))
    if not files:
        raise FileNotFoundError(f"{root}/smplxflame_30 holds no npz files")
    joints = []
    with torch.no_grad():
        for f in tqdm(files, desc="mean joint speed", disable=not progress, unit="clip"):
            m = load_motion(f)
            joints.append(
                body_model.joints(torch.from_numpy(m.poses), torch.from_numpy(m.betas), torch.from_numpy(m.trans))
            )
    return mean_joint_speed(joints, fps=30).numpy().astype(np.float32)
