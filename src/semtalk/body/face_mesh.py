"""A fast path through the SMPL-X layer for the face meshes the face metrics score (face MSE, LVD)."""

from __future__ import annotations

import torch
from torch import nn

from semtalk.body.joints import JAW_JOINT
from semtalk.body.model import BodyModel, BodyOutput


class FaceMeshBody(nn.Module):
    """`BodyModel` with a fast path for the face-only meshes the face metrics score.

    `semtalk.metrics.motion_inputs.face_vertices` poses only the jaw (every other joint zero, zero translation)
    with one shape and per-frame expressions. Then every joint but the jaw and the hands (whose rest rotation is
    the model's mean hand pose) keeps the identity rotation, and linear blend skinning reduces to a constant mesh
    per shape (shaped template plus the hands' pose-corrective offsets) plus, per frame, the expression offsets
    (on the vertices the expression basis moves), the jaw's pose-corrective offsets (on the vertices its basis
    moves) and the skinning of the vertices weighted to the jaw, the hands and their descendants. The result
    equals the SMPL-X layer's to float precision (see the tests). Other inputs go through the SMPL-X layer;
    `joints` is `BodyModel.joints`.
    """

    def __init__(self, body: BodyModel) -> None:
        super().__init__()
        from smplx.lbs import batch_rigid_transform, batch_rodrigues

        self.body = body
        self._rodrigues, self._rigid = batch_rodrigues, batch_rigid_transform
        layer = body.layer
        parents = [int(p) for p in layer.parents.tolist()]
        mean = body.pose_mean.reshape(-1, 3)
        moving = {JAW_JOINT} | {j for j in range(len(parents)) if bool(mean[j].abs().sum() > 0)}
        active: set[int] = set()
        for j, p in enumerate(parents):  # parents precede their children
            if j in moving or (p >= 0 and p in active):
                active.add(j)
        weights = layer.lbs_weights
        jaw_dirs = layer.posedirs[(JAW_JOINT - 1) * 9 : JAW_JOINT * 9].reshape(9, -1, 3)
        groups = {
            "expr": (layer.expr_dirs.abs().sum((1, 2)) > 0).nonzero()[:, 0],
            "jaw": (jaw_dirs.abs().sum((0, 2)) > 0).nonzero()[:, 0],
            "skin": (weights[:, sorted(active)] > 0).any(1).nonzero()[:, 0],
        }
        moved = torch.unique(torch.cat(list(groups.values())))  # sorted vertex ids that change per frame
        position = torch.full((weights.shape[0],), -1, dtype=torch.long)
        position[moved] = torch.arange(len(moved))
        self.register_buffer("moved", moved, False)
        for name, ids in groups.items():
            self.register_buffer(f"{name}_ids", ids, False)
            self.register_buffer(f"{name}_pos", position[ids], False)
        self.register_buffer("weight_sum", weights.sum(1), False)
        self.register_buffer("jaw_dirs", jaw_dirs[:, groups["jaw"]].reshape(9, -1).clone(), False)
        rest = self._rodrigues(mean.reshape(-1, 3))  # (55, 3, 3)
        feature = rest[1:] - torch.eye(3, dtype=rest.dtype)
        feature[JAW_JOINT - 1] = 0
        self.register_buffer("hand_offsets", (feature.reshape(1, -1) @ layer.posedirs).reshape(-1, 3), False)
        self._shape_key: bytes | None = None
        self._static: torch.Tensor | None = None  # (V, 3) the mesh with zero jaw and expression
        self._static_joints: torch.Tensor | None = None  # (55, 3) its rest joints

    def joints(self, *args, **kwargs) -> torch.Tensor:
        return self.body.joints(*args, **kwargs)

    def _set_shape(self, betas: torch.Tensor) -> None:
        key = betas.detach().cpu().numpy().tobytes()
        if key != self._shape_key:
            layer = self.body.layer
            shaped = layer.v_template + torch.einsum("l,vcl->vc", betas, layer.shapedirs)
            self._static_joints = layer.J_regressor @ shaped
            self._static = shaped + self.hand_offsets
            self._shape_key = key

    def forward(
        self,
        poses: torch.Tensor,
        betas: torch.Tensor,
        trans: torch.Tensor | None = None,
        expressions: torch.Tensor | None = None,
    ) -> BodyOutput:
        """As `BodyModel.forward`; `(N, 165)` jaw-only poses, zero `trans` and one shape take the fast path."""
        dtype, device = self.body.dtype, self.body.device
        p = torch.as_tensor(poses).to(device=device, dtype=dtype)
        b = torch.as_tensor(betas).to(device=device, dtype=dtype)
        jaw = slice(3 * JAW_JOINT, 3 * JAW_JOINT + 3)
        fast = p.ndim == 2 and p.shape[-1] == 165 and len(p) > 0
        if fast:
            others = p.clone()
            others[:, jaw] = 0
            one_shape = b.ndim == 1 or (b.ndim == 2 and bool((b == b[:1]).all()))
            still = trans is None or not bool(torch.as_tensor(trans).any())
            fast = one_shape and still and not bool(others.any())
        if not fast:
            return self.body(poses, betas, trans, expressions)
        layer = self.body.layer
        n = p.shape[0]
        self._set_shape(b.reshape(-1, b.shape[-1])[0])
        e = torch.zeros(n, self.body.num_expressions, dtype=dtype, device=device)
        if expressions is not None:
            e = torch.as_tensor(expressions).to(device=device, dtype=dtype).reshape(n, -1)
        expr = torch.einsum("nl,vcl->nvc", e, layer.expr_dirs[self.expr_ids])
        rot = self._rodrigues((p + self.body.pose_mean).reshape(-1, 3)).reshape(n, -1, 3, 3)
        jaw_feature = (rot[:, JAW_JOINT] - torch.eye(3, dtype=dtype, device=device)).reshape(n, 9)
        # v_posed of the vertices that move, zero jaw and expression elsewhere
        posed = self._static[self.moved].expand(n, -1, -1).clone()
        posed[:, self.expr_pos] += expr
        posed[:, self.jaw_pos] += (jaw_feature @ self.jaw_dirs).reshape(n, -1, 3)
        rest_joints = self._static_joints + torch.einsum("jv,nvc->njc", layer.J_regressor[:, self.expr_ids], expr)
        posed_joints, transforms = self._rigid(rot, rest_joints, layer.parents, dtype=dtype)
        wsum = self.weight_sum
        out = posed * wsum[self.moved, None]
        t = (layer.lbs_weights[self.skin_ids] @ transforms.reshape(n, -1, 16)).reshape(n, -1, 4, 4)
        out[:, self.skin_pos] = (t[..., :3, :3] @ posed[:, self.skin_pos, :, None])[..., 0] + t[..., :3, 3]
        vertices = (self._static * wsum[:, None]).expand(n, -1, -1).clone()
        vertices[:, self.moved] = out
        return BodyOutput(vertices, posed_joints)
