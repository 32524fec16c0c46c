"""`torch.compile` of a network block by block.

The stages call methods other than `forward` on the generators (`forward_passes`, `generate_codes`, ...), which
compiling the whole module would not reach; compiling each top-level block (each entry of a `ModuleDict`) in place
covers every path, and keeps the parameter names, so checkpoints are unchanged.
"""

from __future__ import annotations

from torch import nn


def compile_blocks(network: nn.Module, **options) -> int:
    """Compile every top-level block of `network` in place (`nn.Module.compile(**options)`), skipping blocks
    compiled already, so calling it again (a later `fit` or `test` of the same module) changes nothing; returns
    the count compiled now."""
    count = 0
    for child in network.children():
        for block in child.values() if isinstance(child, nn.ModuleDict) else [child]:
            if getattr(block, "_compiled_call_impl", None) is None:
                block.compile(**options)
                count += 1
    return count
