"""The SMPL-X body model as BEAT2, EMAGE and SemTalk call it, plus a fast joints-only path.

`BodyModel` wraps `smplx`'s SMPL-X layer built exactly like the published code builds it
(`gender="NEUTRAL_2020"`, 300 betas, 100 expressions, `use_pca=False`, `flat_hand_mean=False`, no face
contour): the 165 pose values are split into global orientation, body, jaw, eyes and hands, and the model
file's mean hand pose is added to the hand axis-angles. `joints` gives the same 55 joints without
vertices: the rest joints come from `J_regressor` applied to the shaped template (computed once per
shape), followed by forward kinematics on the skeleton.

Inputs are channel-last with leading frame dimensions `...` (typically `(N,)`); a single `(300,)` shape
vector is shared by all frames. All buffers are non-persistent: the model never enters checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from semtalk.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle

NUM_POSE = 165
NUM_BODY_JOINTS = 55
SMPLX_URL = "https://smpl-x.is.tue.mpg.de"


@dataclass
class BodyOutput:
    """Result of a body-model forward pass.

    Attributes:
        vertices: `(..., 10475, 3)` mesh vertices, metres.
        joints: `(..., 55, 3)` skeleton joints, metres.
    """

    vertices: torch.Tensor
    joints: torch.Tensor


def model_file(model_root: str | Path, gender: str = "NEUTRAL_2020") -> Path:
    """Where `smplx` looks for the model: `<model_root>/smplx/SMPLX_<GENDER>.npz`."""
    return Path(model_root) / "smplx" / f"SMPLX_{gender.upper()}.npz"


def _make_non_persistent(module: nn.Module) -> None:
    for sub in module.modules():
        for name in list(sub._buffers):
            buf = sub._buffers.pop(name)
            sub.register_buffer(name, buf, persistent=False)


class BodyModel(nn.Module):
    """SMPL-X with the BEAT2 call convention.

    Args:
        model_root: the folder that contains `smplx/SMPLX_NEUTRAL_2020.npz` (the real licensed model, or
            the synthetic stand-in written by `semtalk make-smplx DIR`).
        gender: the model file's gender tag.
        num_betas: shape coefficients per sequence (BEAT2: 300).
        num_expressions: expression coefficients per frame (BEAT2: 100).
        chunk_size: frames per call of the SMPL-X layer in `forward` (bounds memory).

    Attributes:
        faces: `(20908, 3)` long, the mesh triangles.
        parents: `(55,)` long, the parent of each joint (root -1).
        rest_joints: `(55, 3)` joints of the mean shape in the rest pose.
        layer: the wrapped `smplx` SMPL-X layer.
    """

    def __init__(
        self,
        model_root: str | Path,
        gender: str = "NEUTRAL_2020",
        num_betas: int = 300,
        num_expressions: int = 100,
        chunk_size: int = 128,
    ) -> None:
        super().__init__()
        path = model_file(model_root, gender)
        if not path.is_file():
            raise FileNotFoundError(
                f"SMPL-X model file not found: {path}. Download the licensed SMPL-X model from {SMPLX_URL} "
                f"and place {path.name} in {path.parent}, or write a synthetic stand-in with "
                f"`semtalk make-smplx {model_root}` (for tests and demos only)."
            )
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        import smplx  # imported here: loading smplx is only needed when a model is built

        self.layer = smplx.create(
            str(model_root),
            model_type="smplx",
            gender=gender,
            use_face_contour=False,
            num_betas=num_betas,
            num_expression_coeffs=num_expressions,
            ext="npz",
            use_pca=False,
            flat_hand_mean=False,
            batch_size=1,
            create_global_orient=False,
            create_body_pose=False,
            create_betas=False,
            create_left_hand_pose=False,
            create_right_hand_pose=False,
            create_expression=False,
            create_jaw_pose=False,
            create_leye_pose=False,
            create_reye_pose=False,
            create_transl=False,
        )
        if self.layer.num_betas != num_betas or self.layer.num_expression_coeffs != num_expressions:
            raise ValueError(
                f"{path} provides {self.layer.num_betas} shape and {self.layer.num_expression_coeffs} "
                f"expression coefficients, but {num_betas} and {num_expressions} were requested; the "
                "SMPL-X 2020 model has 300 and 100"
            )
        if self.layer.J_regressor.shape[0] != NUM_BODY_JOINTS:
            raise ValueError(f"{path} has {self.layer.J_regressor.shape[0]} joints, expected {NUM_BODY_JOINTS}")
        _make_non_persistent(self.layer)
        self.model_path = path
        self.num_betas = num_betas
        self.num_expressions = num_expressions
        self.chunk_size = chunk_size

        layer = self.layer
        dirs = torch.cat([layer.shapedirs, layer.expr_dirs], dim=-1)  # (V, 3, B + E)
        self.register_buffer("rest_joints", layer.J_regressor @ layer.v_template, persistent=False)
        self.register_buffer("joint_dirs", torch.einsum("jv,vcl->jcl", layer.J_regressor, dirs), persistent=False)
        self.register_buffer("parents", layer.parents.clone(), persistent=False)
        self.register_buffer("faces", layer.faces_tensor.clone(), persistent=False)
        pose_mean = torch.as_tensor(layer.pose_mean, dtype=layer.v_template.dtype).reshape(NUM_POSE)
        self.register_buffer("pose_mean", pose_mean.clone(), persistent=False)
        self._parent_list = [int(p) for p in self.parents.tolist()]

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def dtype(self) -> torch.dtype:
        return self.rest_joints.dtype

    @property
    def device(self) -> torch.device:
        return self.rest_joints.device

    @property
    def num_vertices(self) -> int:
        return int(self.layer.v_template.shape[0])

    def _flat(self, name: str, x: torch.Tensor, lead: torch.Size, dim: int, shared: bool = False) -> torch.Tensor:
        """`(*lead, dim)` (or `(dim,)` when `shared`) -> `(N, dim)` on the model's device and dtype."""
        x = torch.as_tensor(x)
        if x.shape != (*lead, dim) and not (shared and x.shape == (dim,)):
            also = f" or ({dim},)" if shared else ""
            raise ValueError(f"{name} must have shape {(*lead, dim)}{also}, got {tuple(x.shape)}")
        x = x.to(device=self.device, dtype=self.dtype)
        return x.reshape(-1, dim).expand(lead.numel(), dim)

    def _poses(self, poses: torch.Tensor) -> tuple[torch.Size, torch.Tensor]:
        poses = torch.as_tensor(poses)
        if poses.shape[-1:] != (NUM_POSE,):
            raise ValueError(f"poses must have shape (..., {NUM_POSE}), got {tuple(poses.shape)}")
        return poses.shape[:-1], poses.to(device=self.device, dtype=self.dtype).reshape(-1, NUM_POSE)

    # ------------------------------------------------------------------------------------------ full model
    def forward(
        self,
        poses: torch.Tensor,
        betas: torch.Tensor,
        trans: torch.Tensor | None = None,
        expressions: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Vertices and joints through the SMPL-X layer.

        Args:
            poses: `(..., 165)` axis-angle of the 55 joints (BEAT2 `poses`, without the mean hand).
            betas: `(300,)` shared by all frames, or `(..., 300)`.
            trans: `(..., 3)` root translation in metres; zero when None.
            expressions: `(..., 100)` expression coefficients; zero when None.

        Returns:
            `BodyOutput` with `vertices (..., 10475, 3)` and `joints (..., 55, 3)`.
        """
        lead, p = self._poses(poses)
        b = self._flat("betas", betas, lead, self.num_betas, shared=True)
        t = p.new_zeros(p.shape[0], 3) if trans is None else self._flat("trans", trans, lead, 3)
        e = (
            p.new_zeros(p.shape[0], self.num_expressions)
            if expressions is None
            else self._flat("expressions", expressions, lead, self.num_expressions)
        )
        verts, joints = [], []
        for s in range(0, p.shape[0], self.chunk_size):
            sl = slice(s, s + self.chunk_size)
            pc = p[sl]
            out = self.layer(
                betas=b[sl],
                global_orient=pc[:, 0:3],
                body_pose=pc[:, 3:66],
                jaw_pose=pc[:, 66:69],
                leye_pose=pc[:, 69:72],
                reye_pose=pc[:, 72:75],
                left_hand_pose=pc[:, 75:120],
                right_hand_pose=pc[:, 120:165],
                expression=e[sl],
                transl=t[sl],
                return_verts=True,
                return_shaped=False,
            )
            verts.append(out.vertices)
            joints.append(out.joints[:, :NUM_BODY_JOINTS])
        if not verts:
            return BodyOutput(p.new_zeros(*lead, self.num_vertices, 3), p.new_zeros(*lead, NUM_BODY_JOINTS, 3))
        return BodyOutput(
            torch.cat(verts).reshape(*lead, self.num_vertices, 3),
            torch.cat(joints).reshape(*lead, NUM_BODY_JOINTS, 3),
        )

    # ------------------------------------------------------------------------------------------ joints only
    def shaped_rest_joints(self, betas: torch.Tensor, expressions: torch.Tensor | None = None) -> torch.Tensor:
        """Rest-pose joints of a shape: `J_regressor` on the shaped template.

        Args:
            betas: `(..., 300)`. expressions: `(..., 100)` or None (zero).

        Returns:
            `(..., 55, 3)`.
        """
        b = torch.as_tensor(betas).to(device=self.device, dtype=self.dtype)
        dirs = self.joint_dirs[..., : self.num_betas]
        offset = torch.einsum("...l,jcl->...jc", b, dirs)
        if expressions is not None:
            e = torch.as_tensor(expressions).to(device=self.device, dtype=self.dtype)
            offset = offset + torch.einsum("...l,jcl->...jc", e, self.joint_dirs[..., self.num_betas :])
        return self.rest_joints + offset

    def _kinematics(self, rot: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
        """Forward kinematics: local rotations `(N, 55, 3, 3)`, rest joints `(N or 1, 55, 3)` -> `(N, 55, 3)`."""
        par = self._parent_list
        world_r: list[torch.Tensor] = [rot[:, 0]]
        world_t: list[torch.Tensor] = [rest[:, 0].expand(rot.shape[0], 3)]
        for j in range(1, len(par)):
            p = par[j]
            bone = (rest[:, j] - rest[:, p]).expand(rot.shape[0], 3)
            world_t.append(world_t[p] + (world_r[p] @ bone[..., None])[..., 0])
            world_r.append(world_r[p] @ rot[:, j])
        return torch.stack(world_t, dim=1)

    def _joints_from_rot(
        self,
        rot: torch.Tensor,
        lead: torch.Size,
        betas: torch.Tensor,
        trans: torch.Tensor | None,
        expressions: torch.Tensor | None,
    ) -> torch.Tensor:
        b_in = torch.as_tensor(betas)
        if b_in.ndim == 1 and expressions is None:
            self._flat("betas", b_in, lead, self.num_betas, shared=True)  # validates the shape
            rest = self.shaped_rest_joints(b_in)[None]  # once for every frame
        else:
            b = self._flat("betas", b_in, lead, self.num_betas, shared=True)
            e = None if expressions is None else self._flat("expressions", expressions, lead, self.num_expressions)
            rest = self.shaped_rest_joints(b, e)
        joints = self._kinematics(rot, rest)
        if trans is not None:
            joints = joints + self._flat("trans", trans, lead, 3)[:, None]
        return joints.reshape(*lead, NUM_BODY_JOINTS, 3)

    def joints(
        self,
        poses: torch.Tensor,
        betas: torch.Tensor,
        trans: torch.Tensor | None = None,
        expressions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The 55 joints of `forward` without the mesh (forward kinematics only; same values to float
        precision).

        Args:
            poses: `(..., 165)` axis-angle (the mean hand pose is added, as in `forward`).
            betas: `(300,)` or `(..., 300)`. trans: `(..., 3)` or None. expressions: `(..., 100)` or None.

        Returns:
            `(..., 55, 3)` metres.
        """
        lead, p = self._poses(poses)
        p = p.reshape(-1, NUM_BODY_JOINTS, 3)
        rot = axis_angle_to_matrix(p + self.pose_mean.reshape(NUM_BODY_JOINTS, 3))
        return self._joints_from_rot(rot, lead, betas, trans, expressions)

    def joints_from_matrices(
        self,
        rotations: torch.Tensor,
        betas: torch.Tensor,
        trans: torch.Tensor | None = None,
        expressions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`joints` for poses given as rotation matrices `(..., 55, 3, 3)` (the BEAT2 parameters, i.e.
        without the mean hand pose, which is added to the finger joints' axis-angles as in `forward`).

        Returns:
            `(..., 55, 3)` metres.
        """
        rotations = torch.as_tensor(rotations)
        if rotations.shape[-3:] != (NUM_BODY_JOINTS, 3, 3):
            raise ValueError(f"rotations must have shape (..., 55, 3, 3), got {tuple(rotations.shape)}")
        lead = rotations.shape[:-3]
        rot = rotations.to(device=self.device, dtype=self.dtype).reshape(-1, NUM_BODY_JOINTS, 3, 3)
        mean = self.pose_mean.reshape(NUM_BODY_JOINTS, 3)
        hands = mean.abs().sum(-1) > 0  # joints whose rest rotation is offset by the mean pose
        if bool(hands.any()):
            idx = hands.nonzero()[:, 0]
            offset = axis_angle_to_matrix(matrix_to_axis_angle(rot[:, idx]) + mean[idx])
            rot = rot.clone()
            rot[:, idx] = offset
        return self._joints_from_rot(rot, lead, betas, trans, expressions)

    def extra_repr(self) -> str:
        return f"model_path={self.model_path}, num_betas={self.num_betas}, num_expressions={self.num_expressions}"
