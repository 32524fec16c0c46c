"""Build what the metrics score from SMPL-X parameters: rot6d for FGD, joints for BC/Diversity, face
vertices for MSE/LVD.

The body model is any object with `forward(poses, betas, trans, expressions)` taking `(N, 165)`,
`(N, 300)`, `(N, 3)`, `(N, 100)` float tensors and returning an object (or mapping) with `vertices`
`(N, V, 3)` and `joints` `(N, >=55, 3)` - e.g. `semtalk.body.model.BodyModel`, or a thin wrapper around an
`smplx` SMPL-X layer (`use_pca=False`, `flat_hand_mean=False`, 300 betas, 100 expressions). When it also
has `joints(poses, betas) -> (N, 55, 3)` (BodyModel's forward-kinematics path, exact for SMPL-X joints),
joint positions are taken from there without building the mesh.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from semtalk.body.joints import JAW_JOINT, NUM_JOINTS
from semtalk.body.rotations import axis_angle_to_rot6d, matrix_to_rot6d, rot6d_to_matrix

#: Frames per body-model call (bounds memory: 256 x 10,475 x 3 floats).
CHUNK_FRAMES = 256


class BodyModelLike(Protocol):
    def forward(
        self, poses: torch.Tensor, betas: torch.Tensor, trans: torch.Tensor, expressions: torch.Tensor
    ) -> Any: ...


def _tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))


def fgd_rot6d(poses: np.ndarray | torch.Tensor) -> torch.Tensor:
    """`(..., T, 165)` axis-angle -> `(..., T, 330)` float32 rot6d of all 55 joints, joint-major, after the
    6d -> matrix -> 6d round trip the published evaluation applied."""
    p = _tensor(poses).to(torch.float32)
    if p.shape[-1] != NUM_JOINTS * 3:
        raise ValueError(f"poses must end in {NUM_JOINTS * 3} axis-angle values, got shape {tuple(p.shape)}")
    d6 = axis_angle_to_rot6d(p.reshape(*p.shape[:-1], NUM_JOINTS, 3))
    d6 = matrix_to_rot6d(rot6d_to_matrix(d6))
    return d6.flatten(-2)


def _model_dtype_device(model: object) -> tuple[torch.dtype, torch.device]:
    if isinstance(model, torch.nn.Module):
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                return t.dtype, t.device
    return torch.float32, torch.device("cpu")


def _field(out: Any, name: str) -> torch.Tensor:
    value = getattr(out, name, None)
    if value is None and isinstance(out, dict):
        value = out.get(name)
    if value is None:
        raise TypeError(f"the body model's output has no '{name}'; it must expose vertices and joints")
    return value


def run_body_model(
    model: BodyModelLike,
    poses: np.ndarray | torch.Tensor,
    betas: np.ndarray | torch.Tensor,
    expressions: np.ndarray | torch.Tensor,
    field: str,
    chunk: int = CHUNK_FRAMES,
) -> np.ndarray:
    """Call the body model with zero translation in chunks and return one output field as float32 numpy.

    Args:
        poses: `(T, 165)` axis-angle. betas: `(300,)` or `(T, 300)`. expressions: `(T, 100)`.
        field: `"vertices"` or `"joints"`.
    """
    dtype, device = _model_dtype_device(model)
    p = _tensor(poses)
    e = _tensor(expressions)
    b = _tensor(betas)
    n = p.shape[0]
    if b.ndim == 1:
        b = b[None].expand(n, -1)
    if e.shape[0] != n or b.shape[0] != n:
        raise ValueError(f"poses ({n} frames), expressions ({e.shape[0]}) and betas ({b.shape[0]}) differ")
    outs = []
    with torch.no_grad():
        for s in range(0, n, chunk):
            sl = slice(s, min(n, s + chunk))
            m = sl.stop - sl.start
            out = model.forward(
                p[sl].to(device=device, dtype=dtype),
                b[sl].to(device=device, dtype=dtype),
                torch.zeros(m, 3, device=device, dtype=dtype),
                e[sl].to(device=device, dtype=dtype),
            )
            outs.append(_field(out, field).detach().to("cpu", torch.float32).numpy())
    return np.concatenate(outs, axis=0)


def body_joints(model: BodyModelLike, poses: np.ndarray | torch.Tensor, betas: np.ndarray | torch.Tensor) -> np.ndarray:
    """Joint positions BC and Diversity score: `(T, 55, 3)` metres from the full pose (global orientation
    kept), zero translation, zero expressions, the given (ground-truth) shape."""
    n = poses.shape[0]
    fast = getattr(model, "joints", None)
    if callable(fast):
        dtype, device = _model_dtype_device(model)
        b = _tensor(betas).to(device=device, dtype=dtype)
        with torch.no_grad():
            out = fast(_tensor(poses).to(device=device, dtype=dtype), b if b.ndim == 1 else b[:n])
        joints = out.detach().to("cpu", torch.float32).numpy()
    else:
        joints = run_body_model(model, poses, betas, np.zeros((n, 100), np.float32), "joints")
    if joints.shape[1] < NUM_JOINTS:
        raise ValueError(f"the body model returned {joints.shape[1]} joints; need at least {NUM_JOINTS}")
    return joints[:, :NUM_JOINTS]


def face_vertices(
    model: BodyModelLike,
    poses: np.ndarray | torch.Tensor,
    expressions: np.ndarray | torch.Tensor,
    betas: np.ndarray | torch.Tensor,
) -> np.ndarray:
    """Mesh vertices the face metrics score: `(T, V, 3)` with only the jaw pose (from `poses`) and the
    expressions set; every other pose zero, zero translation, the given (ground-truth) shape."""
    p = _tensor(poses).to(torch.float32)
    jaw_only = torch.zeros_like(p)
    jaw_only[:, 3 * JAW_JOINT : 3 * JAW_JOINT + 3] = p[:, 3 * JAW_JOINT : 3 * JAW_JOINT + 3]
    return run_body_model(model, jaw_only, betas, expressions, "vertices")
