"""The residual quantizer's direct encode / code lookup against vector-quantize-pytorch's own paths."""

from __future__ import annotations

import pytest
import torch

from semtalk.nn.quantizer import ResidualQuantizer


@pytest.fixture(scope="module")
def fitted() -> tuple[ResidualQuantizer, torch.Tensor]:
    """A quantizer whose codebooks were fitted (k-means init, EMA updates) to clustered data, and fresh data."""
    torch.manual_seed(0)
    q = ResidualQuantizer(dim=8, num_quantizers=4, codebook_size=16, kmeans_iters=3)
    centres = torch.randn(12, 8) * 3

    def sample(n: int) -> torch.Tensor:
        return centres[torch.randint(0, 12, (n,))] + 0.5 * torch.randn(n, 8)

    q.train()
    for _ in range(5):
        q(sample(4 * 32).view(4, 32, 8))
    return q.eval(), sample(6 * 50).view(6, 50, 8)


def test_encode_equals_the_library_quantization(fitted) -> None:
    q, x = fitted
    with torch.no_grad():
        _, ref, _ = q.rvq(x)
    ours = q.encode(x)
    assert ours.shape == (6, 50, 4) and ours.dtype == torch.int64
    assert torch.equal(ours, ref)
    assert len(torch.unique(ours[..., 1])) > 4  # the residual levels are in use, not one constant code


def test_level_codes_and_decode_equal_the_library_lookups(fitted) -> None:
    q, x = fitted
    idx = q.encode(x)
    idx[0, :5, 2:] = -1  # absent levels read as zeros
    torch.testing.assert_close(q.level_codes(idx), q.rvq.get_codes_from_indices(idx), rtol=0, atol=0)
    torch.testing.assert_close(q.decode(idx), q.rvq.get_output_from_indices(idx), rtol=0, atol=1e-6)
    assert torch.count_nonzero(q.level_codes(idx)[2, 0, :5]) == 0
    with pytest.raises(ValueError, match="levels"):
        q.level_codes(idx[..., :3])


def test_level_codebook_is_the_library_level(fitted) -> None:
    q, _ = fitted
    for level in range(4):
        assert torch.equal(q.level_codebook(level), q.codebooks[level])


def test_encode_of_a_fresh_quantizer_initialises_it_as_the_library_does() -> None:
    torch.manual_seed(0)
    q = ResidualQuantizer(dim=8, num_quantizers=3, codebook_size=8, kmeans_iters=2)
    fresh_state = {k: v.clone() for k, v in q.state_dict().items()}
    x = torch.randn(2, 40, 8)
    first = q.encode(x)  # k-means on x, through the library
    assert torch.count_nonzero(q.codebooks) > 0 and q.training
    with torch.no_grad():
        assert torch.equal(first, q.eval().rvq(x)[1])
    assert torch.equal(q.encode(x), first)  # now the direct path
    q.load_state_dict(fresh_state)  # empty codebooks again: back to the library's initialisation
    assert q.encode(x).shape == first.shape
    assert torch.count_nonzero(q.codebooks) > 0
