"""CUDA-graph replay of a fixed-shape tensor function (a generation window), to remove the per-operation launch
cost that dominates small-batch generation on a GPU.

`GraphedFunction(fn)` captures `fn(*tensors) -> pytree of tensors` into a CUDA graph on the first call for each
input signature (shapes, dtypes, device, autocast state), after a few eager warm-up calls on a side stream; later
calls copy the inputs into the graph's static buffers, replay it and return clones of its outputs. The function
must not synchronise with the CPU (no `.item()`, no data-dependent Python branches) and must not change state
outside its outputs. A function that cannot be captured (the capture raises) runs eagerly from then on, with a
warning: a graph is a speed-up, never a change of result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_map

log = logging.getLogger(__name__)

_Signature = tuple[Any, ...]


def _autocast_state(device: torch.device) -> tuple[bool, torch.dtype | None]:
    if not torch.is_autocast_enabled(device.type):
        return False, None
    return True, torch.get_autocast_dtype(device.type)


class GraphedFunction:
    """`fn` replayed as a CUDA graph per input signature (see the module docstring).

    Args:
        fn: the function of positional tensors, all on one CUDA device.
        warmup: eager calls on a side stream before the capture (lazy initialisations, cuBLAS workspaces).
    """

    def __init__(self, fn: Callable[..., Any], warmup: int = 2) -> None:
        self.fn, self.warmup = fn, int(warmup)
        self.graphs: dict[_Signature, tuple[list[torch.Tensor], Any, torch.cuda.CUDAGraph]] = {}
        self.failed: set[_Signature] = set()
        self.pool = None  # one memory pool shared by all captures of this function
        self.replays = 0

    def _signature(self, args: tuple[torch.Tensor, ...]) -> _Signature:
        device = args[0].device
        return (*((tuple(a.shape), a.dtype, a.device) for a in args), _autocast_state(device))

    def _capture(self, args: tuple[torch.Tensor, ...]) -> tuple[list[torch.Tensor], Any, torch.cuda.CUDAGraph]:
        device = args[0].device
        enabled, dtype = _autocast_state(device)
        static = [a.clone() for a in args]
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        # the autocast weight cache would free the casts the graph reads when the outer autocast exits
        with torch.autocast(device.type, dtype=dtype, enabled=enabled, cache_enabled=False):
            with torch.cuda.stream(stream):
                for _ in range(self.warmup):
                    self.fn(*static)
            torch.cuda.current_stream(device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            if self.pool is None:
                self.pool = torch.cuda.graph_pool_handle()
            with torch.cuda.graph(graph, pool=self.pool):
                out = self.fn(*static)
        return static, out, graph

    def __call__(self, *args: torch.Tensor) -> Any:
        if not args or args[0].device.type != "cuda":
            return self.fn(*args)
        key = self._signature(args)
        if key in self.failed:
            return self.fn(*args)
        entry = self.graphs.get(key)
        if entry is None:
            try:
                entry = self._capture(args)
            except Exception as exc:  # noqa: BLE001 - any capture failure falls back to eager execution
                log.warning("CUDA graph capture failed (%s: %s); running eagerly", type(exc).__name__, exc)
                self.failed.add(key)
                torch.cuda.synchronize(args[0].device)
                return self.fn(*args)
            self.graphs[key] = entry
        static, out, graph = entry
        for buffer, a in zip(static, args):
            buffer.copy_(a)
        graph.replay()
        self.replays += 1
        return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, out)
