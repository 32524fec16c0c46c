"""`semtalk.cuda_graphs.GraphedFunction`: eager on the CPU; on a GPU, graph replays equal eager calls, one capture
per input signature, and a function that cannot be captured falls back to eager execution."""

from __future__ import annotations

import pytest
import torch

from semtalk.cuda_graphs import GraphedFunction

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _net(device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.GELU(), torch.nn.Linear(32, 4)).to(device).eval()


def _fn(net):
    def fn(x: torch.Tensor, y: torch.Tensor) -> dict:
        h = net(x)
        return {"h": h, "codes": (h + y).argmax(-1), "none": None}

    return fn


def test_cpu_tensors_run_eagerly() -> None:
    net = _net("cpu")
    graphed = GraphedFunction(_fn(net))
    x, y = torch.randn(3, 8), torch.randn(3, 4)
    with torch.no_grad():
        out, ref = graphed(x, y), _fn(net)(x, y)
    assert torch.equal(out["h"], ref["h"]) and torch.equal(out["codes"], ref["codes"])
    assert graphed.graphs == {} and graphed.replays == 0


@pytest.mark.gpu
@needs_cuda
def test_replays_equal_eager_calls() -> None:
    net = _net("cuda")
    graphed = GraphedFunction(_fn(net))
    with torch.no_grad():
        outs = []
        for _ in range(4):  # fresh inputs every call: the static buffers must be refilled
            x, y = torch.randn(5, 8, device="cuda"), torch.randn(5, 4, device="cuda")
            out, ref = graphed(x, y), _fn(net)(x, y)
            torch.testing.assert_close(out["h"], ref["h"])
            assert torch.equal(out["codes"], ref["codes"]) and out["none"] is None
            outs.append(out["h"])
        assert len(graphed.graphs) == 1 and graphed.replays == 4
        assert not torch.allclose(outs[0], outs[1])  # returned outputs are copies, not the static buffer
        graphed(torch.randn(7, 8, device="cuda"), torch.randn(7, 4, device="cuda"))  # a new shape: a new graph
        assert len(graphed.graphs) == 2
        with torch.autocast("cuda", dtype=torch.bfloat16):
            x, y = torch.randn(5, 8, device="cuda"), torch.randn(5, 4, device="cuda")
            out, ref = graphed(x, y), _fn(net)(x, y)
        assert out["h"].dtype == torch.bfloat16 and len(graphed.graphs) == 3
        torch.testing.assert_close(out["h"], ref["h"])


@pytest.mark.gpu
@needs_cuda
def test_host_sync_falls_back_to_eager() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return x * float(x.sum().item() > 0)  # a host sync: not capturable

    graphed = GraphedFunction(fn)
    x = torch.ones(4, device="cuda")
    assert torch.equal(graphed(x), x) and graphed.failed and graphed.replays == 0
    assert torch.equal(graphed(-x), torch.zeros_like(x))  # eager from then on, still right
