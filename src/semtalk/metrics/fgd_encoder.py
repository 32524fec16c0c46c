"""The FGD feature extractor: BEAT2's skeleton-aware convolutional autoencoder.

Architecture and `state_dict` keys match BEAT2's `weights/AESKConv_240_100.bin` (EMAGE's `VAESKConv`),
so that file loads unchanged (after stripping the `module.` prefix of its `model_state`). Only the
encoder is used for FGD; the decoder and the `fc_mu`/`fc_logvar` layers exist so the checkpoint loads
strictly.

Encoder: 4 skeleton residual layers over the SMPL-X edge graph (55 edges, 6 channels per edge = the
rot6d of each joint). Each layer: a masked skeleton convolution (kernel 4, stride 2, padding 1, each
edge sees the edges within graph distance 2) followed by GroupNorm(10), plus a masked 1x1 stride-2
shortcut; the sum is edge-pooled and passed through tanh. Channels per edge 6 -> 6 -> 6 -> 12 -> 12,
edges 55 -> 35 -> 20 -> 20 -> 20. Input `(B, T, 330)` with T a multiple of 16 -> `(B, T/16, 240)`.

The full module's state dict holds 56 tensors (~4.38 M values); the first convolution's weight is
`(330, 330, 4)`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from semtalk.body.joints import NUM_JOINTS, PARENTS
from semtalk.metrics.skeleton_graph import Edge, edge_neighbours, edges_from_parents, plan_pooling
from semtalk.tokenizer import file_sha256

#: Layout of BEAT2's FGD autoencoder (`vae_layer 4, vae_length 240, vae_test_dim 330, vae_grow 1,1,2,1`).
NUM_LAYERS = 4
CHANNEL_GROWTH: tuple[int, ...] = (1, 1, 2, 1)
CHANNELS_PER_EDGE = 6
FEATURE_DIM = 240
INPUT_DIM = NUM_JOINTS * 6
KERNEL_SIZE = 4
NEIGHBOUR_DISTANCE = 2
#: Frames per output feature vector.
TEMPORAL_DOWNSAMPLE = 2**NUM_LAYERS


class SkeletonConv(nn.Module):
    """Temporal convolution in which each edge's output channels see only its neighbour edges' inputs.

    Input `(B, E * C_in, T)` -> `(B, E * C_out, T')` (channels-first, as `nn.Conv1d`). The fixed
    connectivity `mask` is stored in the state dict, as in the pretrained checkpoint.
    """

    def __init__(
        self,
        neighbours: Sequence[Sequence[int]],
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        num_edges = len(neighbours)
        if in_channels % num_edges or out_channels % num_edges:
            raise ValueError(
                f"channels ({in_channels} in, {out_channels} out) must be multiples of the {num_edges} edges"
            )
        self.in_per_edge = in_channels // num_edges
        self.out_per_edge = out_channels // num_edges
        self.stride = stride
        self.padding = padding
        self.blocks: list[tuple[slice, list[int]]] = []
        mask = torch.zeros(out_channels, in_channels, kernel_size)
        for e, neighbour in enumerate(neighbours):
            rows = slice(e * self.out_per_edge, (e + 1) * self.out_per_edge)
            cols = [k * self.in_per_edge + c for k in neighbour for c in range(self.in_per_edge)]
            mask[rows, cols, :] = 1.0
            self.blocks.append((rows, cols))
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("mask", mask)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Kaiming-uniform per edge block over its visible inputs; bias uniform in +-1/sqrt(fan_in)."""
        self.weight.zero_()
        for rows, cols in self.blocks:
            block = torch.empty(self.out_per_edge, len(cols), self.weight.shape[-1])
            nn.init.kaiming_uniform_(block, a=math.sqrt(5))
            self.weight[rows, cols, :] = block
            bound = 1.0 / math.sqrt(len(cols) * self.weight.shape[-1])
            self.bias[rows] = torch.empty(self.out_per_edge).uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv1d(x, self.weight * self.mask, self.bias, stride=self.stride, padding=self.padding)


class SkeletonPool(nn.Module):
    """Averages groups of edges: `(B, E_in * C, T)` -> `(B, E_out * C, T)` by a fixed matrix `weight`."""

    def __init__(self, groups: Sequence[Sequence[int]], num_edges: int, channels_per_edge: int) -> None:
        super().__init__()
        weight = torch.zeros(len(groups) * channels_per_edge, num_edges * channels_per_edge)
        for i, group in enumerate(groups):
            for j in group:
                for c in range(channels_per_edge):
                    weight[i * channels_per_edge + c, j * channels_per_edge + c] = 1.0 / len(group)
        self.register_buffer("weight", weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.weight, x)


class SkeletonResidual(nn.Module):
    """One encoder layer: `tanh(pool(GroupNorm(conv_k4_s2(x)) + conv_k1_s2(x)))`; halves T."""

    def __init__(
        self,
        edges: Sequence[Edge],
        neighbours: Sequence[Sequence[int]],
        in_channels: int,
        out_channels: int,
        last: bool,
    ) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            SkeletonConv(neighbours, in_channels, out_channels, KERNEL_SIZE, stride=2, padding=1),
            nn.GroupNorm(10, out_channels),
        )
        self.shortcut = SkeletonConv(neighbours, in_channels, out_channels, 1, stride=2, padding=0)
        pooling = plan_pooling(edges, last=last)
        common: list[nn.Module] = []
        if len(pooling.groups) != len(edges):
            common.append(SkeletonPool(pooling.groups, len(edges), out_channels // len(neighbours)))
        common.append(nn.Tanh())
        self.common = nn.Sequential(*common)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.common(self.residual(x) + self.shortcut(x))


class SkeletonEncoder(nn.Module):
    """The FGD encoder: `(B, T, E * 6)` rot6d, T a multiple of 16 -> `(B, T/16, 240)` features."""

    def __init__(self, parents: Sequence[int] = PARENTS) -> None:
        super().__init__()
        edges: list[Edge] = edges_from_parents(parents)
        per_edge = [CHANNELS_PER_EDGE]
        for g in CHANNEL_GROWTH:
            per_edge.append(per_edge[-1] * g)
        self.input_dim = len(edges) * CHANNELS_PER_EDGE
        self.edge_counts: list[int] = [len(edges)]
        self.layers = nn.ModuleList()
        for i in range(NUM_LAYERS):
            last = i == NUM_LAYERS - 1
            neighbours = edge_neighbours(edges, NEIGHBOUR_DISTANCE)
            block = SkeletonResidual(
                edges,
                neighbours,
                in_channels=per_edge[i] * len(edges),
                out_channels=per_edge[i + 1] * len(edges),
                last=last,
            )
            self.layers.append(nn.Sequential(block))
            if not last:
                edges = list(plan_pooling(edges).new_edges)
                self.edge_counts.append(len(edges))
        self.output_dim = per_edge[-1] * self.edge_counts[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.input_dim:
            raise ValueError(f"FGD encoder expects (B, T, {self.input_dim}) rot6d, got {tuple(x.shape)}")
        if x.shape[1] % TEMPORAL_DOWNSAMPLE:
            raise ValueError(
                f"FGD encoder needs T to be a multiple of {TEMPORAL_DOWNSAMPLE}, got T={x.shape[1]}; "
                "trim the sequence first (see semtalk.metrics.profiles.fgd_length)"
            )
        out = x.transpose(1, 2)
        for layer in self.layers:
            out = layer(out)
        return out.transpose(1, 2)


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(
            nn.Conv1d(channels, channels, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.model(x)


class FeatureDecoder(nn.Module):
    """The autoencoder's decoder (unused by FGD): `(B, T/16, 240)` -> `(B, T, 330)`."""

    def __init__(self, feature_dim: int = FEATURE_DIM, output_dim: int = INPUT_DIM) -> None:
        super().__init__()
        channels = [feature_dim] * NUM_LAYERS + [output_dim]
        layers: list[nn.Module] = [_ResBlock(feature_dim), _ResBlock(feature_dim)]
        for i in range(NUM_LAYERS):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(channels[i], channels[i + 1], 3, padding=1),
                nn.LeakyReLU(0.2),
            ]
        layers.append(nn.Conv1d(output_dim, output_dim, 3, padding=1))
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.transpose(1, 2)).transpose(1, 2)


class FGDAutoencoder(nn.Module):
    """BEAT2's FGD autoencoder (`VAESKConv`, deterministic). Calling it returns encoder features.

    Attributes:
        identity: which weights these are, e.g. `"AESKConv_240_100.bin sha256:1a2b3c4d5e6f"` or
            `"random-init seed=0"`; FGD results carry it.
    """

    def __init__(self, parents: Sequence[int] = PARENTS, identity: str = "random-init") -> None:
        super().__init__()
        self.encoder = SkeletonEncoder(parents)
        self.decoder = FeatureDecoder(FEATURE_DIM, self.encoder.input_dim)
        self.fc_mu = nn.Linear(FEATURE_DIM, FEATURE_DIM)
        self.fc_logvar = nn.Linear(FEATURE_DIM, FEATURE_DIM)
        self.identity = identity
        if self.encoder.output_dim != FEATURE_DIM:
            raise ValueError(
                f"this skeleton gives {self.encoder.output_dim}-d features, not {FEATURE_DIM}; "
                "the FGD encoder needs the SMPL-X parent list"
            )

    def forward(self, rot6d: torch.Tensor) -> torch.Tensor:
        """`(B, T, 330)` rot6d (first two rows of each joint's rotation matrix), T a multiple of 16
        -> `(B, T/16, 240)`."""
        return self.encoder(rot6d)

    map2latent = forward

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """`(B, T/16, 240)` -> `(B, T, 330)`."""
        return self.decoder(features)


def random_fgd_encoder(seed: int = 0, parents: Sequence[int] = PARENTS) -> FGDAutoencoder:
    """A randomly initialised FGD autoencoder (eval mode, frozen) for tests and for runs without the
    BEAT2 weights. Its FGD values are not comparable with published ones."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FGDAutoencoder(parents, identity=f"random-init seed={seed}")
    return model.eval().requires_grad_(False)


def strip_module_prefix(state: Mapping[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Remove a leading `module.` (left by DataParallel/DDP) from each key."""
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}


def load_fgd_state(
    model: FGDAutoencoder, state: Mapping[str, torch.Tensor], source: str = "state dict"
) -> FGDAutoencoder:
    """Strictly load `state` (a `model_state` dict, `module.` prefixes allowed) into `model`.

    Raises:
        ValueError: naming the missing, unexpected and wrongly shaped keys.
    """
    state = strip_module_prefix(state)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or wrong_shape:
        lines = [f"{source} does not match the BEAT2 FGD autoencoder (VAESKConv, 56 tensors):"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if wrong_shape:
            lines.append(f"  wrong shapes ({len(wrong_shape)}): {'; '.join(wrong_shape)}")
        lines.append("  Use BEAT2's weights/AESKConv_240_100.bin and build the model on the SMPL-X parent list.")
        raise ValueError("\n".join(lines))
    model.load_state_dict(state, strict=True)
    return model


def file_digest(path: str | Path, length: int = 12) -> str:
    """First `length` hex digits of the file's SHA-256."""
    return file_sha256(path)[:length]


def state_digest(state: Mapping[str, torch.Tensor], length: int = 12) -> str:
    """First `length` hex digits of a SHA-256 over a state dict's names, dtypes, shapes and values: the same for
    equal weights whatever else the file holds (training time, metadata, the pickle's layout)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:length]


def load_fgd_encoder(path: str | Path, parents: Sequence[int] = PARENTS, trust_pickle: bool = False) -> FGDAutoencoder:
    """Load BEAT2's `AESKConv_240_100.bin` (or any checkpoint with the same keys) for FGD.

    The file may be a dict with a `model_state` entry (as BEAT2 ships it) or a bare state dict. It is read
    with `torch.load(weights_only=True)`; `trust_pickle=True` allows arbitrary pickled objects in a file
    you trust. Returns the autoencoder in eval mode with gradients off; `identity` names the file and
    its SHA-256 prefix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"FGD encoder weights not found at {path}; download BEAT2's weights/AESKConv_240_100.bin"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:  # torch raises several types for unpicklable content
        raise ValueError(
            f"could not read {path} as a torch checkpoint ({type(exc).__name__}: {exc}); if the file is "
            "trusted and holds pickled objects beyond tensors, pass trust_pickle=True"
        ) from exc
    if isinstance(blob, Mapping) and "model_state" in blob:
        blob = blob["model_state"]
    if not isinstance(blob, Mapping):
        raise ValueError(f"{path} holds a {type(blob).__name__}, not a state dict or a dict with 'model_state'")
    model = FGDAutoencoder(parents, identity=f"{path.name} sha256:{file_digest(path)}")
    load_fgd_state(model, blob, source=str(path))
    return model.eval().requires_grad_(False)
