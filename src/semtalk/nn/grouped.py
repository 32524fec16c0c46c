"""Grouped layers: G independent copies of a layer, applied to G inputs with one batched kernel per operation.

The body parts' code predictors have identical shapes but their own weights; running them part after part costs
G times the operator calls (on a GPU, G times the host time) for the same arithmetic. Each layer here holds the
G copies' parameters stacked on a leading group axis, under the names and per-group shapes of the PyTorch layer
it replaces (`weight (G, out, in)` for `nn.Linear`'s `(out, in)`, `in_proj_weight (G, 3D, D)` for
`nn.MultiheadAttention`'s, ...), so a state dict of G separate layers converts by stacking
(`stack_group_state`).

Inputs and outputs are channel-last with the group axis first: `(G, ..., D)`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F


def _dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    return F.dropout(x, p, training) if training and p > 0 else x


def _per_group(param: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`(G, D)` -> `(G, 1, ..., 1, D)` broadcastable against `x (G, ..., D)`."""
    return param.view(param.shape[0], *([1] * (x.dim() - 2)), param.shape[-1])


def grouped_affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`x @ weight[g].T + bias[g]` for every group g: `(G, ..., in)`, `(G, out, in)`, `(G, out)` -> `(G, ..., out)`.

    One batched matrix product, except on the CPU when the G groups do not divide evenly over its threads: a
    batched product there hands whole groups to threads (3 groups on 2 threads take as long as 4), so the groups
    then run one product after another, each on every thread."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    if x.device.type == "cpu" and len(flat) % torch.get_num_threads():
        y = torch.stack([F.linear(flat[g], weight[g], None if bias is None else bias[g]) for g in range(len(flat))])
    else:
        wt = weight.transpose(1, 2)
        y = torch.bmm(flat, wt) if bias is None else torch.baddbmm(bias.unsqueeze(1), flat, wt)
    return y.view(*x.shape[:-1], weight.shape[1])


class GroupedLinear(nn.Module):
    """G `nn.Linear(in_dim, out_dim)`: `(G, ..., in_dim)` -> `(G, ..., out_dim)`; initialised as `nn.Linear`."""

    def __init__(self, groups: int, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, out_dim, in_dim))
        self.bias = nn.Parameter(torch.empty(groups, out_dim)) if bias else None
        for g in range(groups):
            nn.init.kaiming_uniform_(self.weight[g], a=math.sqrt(5))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -1 / math.sqrt(in_dim), 1 / math.sqrt(in_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grouped_affine(x, self.weight, self.bias)


class GroupedPatchConv1d(nn.Module):
    """G `nn.Conv1d(in_dim, out_dim, kernel, stride=kernel)` (non-overlapping windows) on channel-last sequences:
    `(G, B, T, in_dim)` -> `(G, B, T // kernel, out_dim)` (trailing frames that fill no window are dropped, as
    the convolution does). Weights keep `nn.Conv1d`'s per-group layout, `weight (G, out, in, kernel)`."""

    def __init__(self, groups: int, in_dim: int, out_dim: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.empty(groups, out_dim, in_dim, kernel))
        self.bias = nn.Parameter(torch.empty(groups, out_dim))
        for g in range(groups):
            nn.init.kaiming_uniform_(self.weight[g], a=math.sqrt(5))
        nn.init.uniform_(self.bias, -1 / math.sqrt(in_dim * kernel), 1 / math.sqrt(in_dim * kernel))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g, b, t, c = x.shape
        k = self.kernel
        windows = x[:, :, : t // k * k].reshape(g, b, t // k, k * c)  # frame j of a window: channels j*c..j*c+c-1
        weight = self.weight.transpose(2, 3).reshape(g, -1, k * c)  # (G, out, k*in) in the same order
        return grouped_affine(windows, weight, self.bias)


class GroupedLayerNorm(nn.Module):
    """G `nn.LayerNorm(dim, eps)`: `(G, ..., dim)` -> same."""

    def __init__(self, groups: int, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(groups, dim))
        self.bias = nn.Parameter(torch.zeros(groups, dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        return torch.addcmul(_per_group(self.bias, y), y, _per_group(self.weight, y))


class GroupedMLP(nn.Module):
    """G `semtalk.nn.attention.MLP`s (Linear -> LeakyReLU(0.2) -> Linear): `(G, ..., in_dim)` -> `(G, ..., out_dim)`."""

    def __init__(self, groups: int, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            GroupedLinear(groups, in_dim, hidden), nn.LeakyReLU(0.2), GroupedLinear(groups, hidden, out_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GroupedAttention(nn.Module):
    """G `nn.MultiheadAttention(dim, heads, dropout, batch_first=True)` without masks, run as one SDPA call.

    `forward(query (G, B, T, D), memory (G, B, S, D) or None for self-attention) -> (G, B, T, D)`."""

    def __init__(self, groups: int, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads, self.dropout = heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(groups, 3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(groups, 3 * dim))
        self.out_proj = GroupedLinear(groups, dim, dim)
        for g in range(groups):
            nn.init.xavier_uniform_(self.in_proj_weight[g])
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
        """`(G, B, T, n*D)` -> n tensors `(G*B, heads, T, D/heads)`."""
        g, b, t, _ = x.shape
        x = x.view(g * b, t, n, self.heads, -1).permute(2, 0, 3, 1, 4)
        return x.unbind(0)

    def forward(self, query: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        g, b, t, d = query.shape
        if memory is None:
            q, k, v = self._heads(grouped_affine(query, self.in_proj_weight, self.in_proj_bias), 3)
        else:
            w, bias = self.in_proj_weight, self.in_proj_bias
            (q,) = self._heads(grouped_affine(query, w[:, :d], bias[:, :d]), 1)
            k, v = self._heads(grouped_affine(memory, w[:, d:], bias[:, d:]), 2)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (G*B, heads, T, D/heads)
        return self.out_proj(out.transpose(1, 2).reshape(g, b, t, d))


class GroupedDecoderLayer(nn.Module):
    """G `nn.TransformerDecoderLayer(dim, heads, ff, dropout, batch_first=True)` (post-norm, ReLU, no masks):
    `(tgt (G, B, T, D), memory (G, B, S, D))` -> `(G, B, T, D)`."""

    def __init__(self, groups: int, dim: int, heads: int, ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.self_attn = GroupedAttention(groups, dim, heads, dropout)
        self.multihead_attn = GroupedAttention(groups, dim, heads, dropout)
        self.linear1 = GroupedLinear(groups, dim, ff)
        self.linear2 = GroupedLinear(groups, ff, dim)
        self.norm1, self.norm2, self.norm3 = (GroupedLayerNorm(groups, dim) for _ in range(3))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        p, train = self.dropout, self.training
        x = self.norm1(x + _dropout(self.self_attn(x), p, train))
        x = self.norm2(x + _dropout(self.multihead_attn(x, memory), p, train))
        hidden = _dropout(F.relu(self.linear1(x)), p, train)
        return self.norm3(x + _dropout(self.linear2(hidden), p, train))


class GroupedDecoder(nn.Module):
    """`layers` `GroupedDecoderLayer`s (G `semtalk.nn.attention.decoder_stack`s):
    `(tgt (G, B, T, D), memory (G, B, S, D))` -> `(G, B, T, D)`."""

    def __init__(self, groups: int, dim: int, heads: int, ff: int, layers: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(GroupedDecoderLayer(groups, dim, heads, ff, dropout) for _ in range(layers))

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, memory)
        return x


def stack_group_state(
    module: nn.Module,
    groups: Sequence[str],
    state: Mapping[str, torch.Tensor],
    prefix: str = "",
    separate_prefix: str | None = None,
) -> list[str]:
    """Convert a state dict of G separate modules into `module`'s grouped one, in place.

    `state` holds, for every name `n` of `module`'s state dict, either `prefix + n` (already grouped: kept) or
    `separate_prefix + group + "." + n` for every group (G separate modules with the same layout, e.g. an
    `nn.ModuleDict` of the PyTorch layers; `separate_prefix` defaults to `prefix`): those are stacked on a new
    leading axis, in `groups` order, and removed. Partial sets are left alone for the loader to report. Returns
    the names converted."""
    separate_prefix = prefix if separate_prefix is None else separate_prefix
    converted = []
    for name in module.state_dict():
        separate = [f"{separate_prefix}{g}.{name}" for g in groups]
        if prefix + name in state or not all(k in state for k in separate):
            continue
        state[prefix + name] = torch.stack([state.pop(k) for k in separate])
        converted.append(name)
    return converted


def stacked(
    make_grouped: Callable[[], nn.Module], modules: Iterable[nn.Module], names: Sequence[str] | None = None
) -> nn.Module:
    """The grouped module `make_grouped()` holding the weights of the G separate `modules`, stacked in order.

    Building G PyTorch layers and stacking them initialises the group exactly as the separate layers were
    (same random draws, in the same order); `make_grouped` runs with the random state restored afterwards, so
    what is built after is initialised as it was before as well. With the groups' `names`, the grouped module also
    loads state dicts written by the separate modules (`<its prefix><name>.<parameter>`, e.g. an `nn.ModuleDict`
    of them), stacking them on load."""
    modules = list(modules)
    with torch.random.fork_rng(devices=[]):
        grouped = make_grouped()
    keys = [str(g) for g in range(len(modules))]
    state = {f"{g}.{k}": v for g, m in zip(keys, modules) for k, v in m.state_dict().items()}
    stack_group_state(grouped, keys, state)
    grouped.load_state_dict(state)
    if names is not None:
        grouped.register_load_state_dict_pre_hook(functools.partial(_stack_on_load, tuple(names)))
    return grouped


def _stack_on_load(names: tuple[str, ...], module: nn.Module, state, prefix: str, *args) -> None:
    """Load-state-dict pre-hook of `stacked(..., names)` (a module-level function: the module stays picklable)."""
    stack_group_state(module, names, state, prefix)
