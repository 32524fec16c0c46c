"""Shared fixtures: a synthetic SMPL-X model, the body model on it, and the real BEAT2 sample when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: `/work/shared` next to the repository: reference data that is never copied into the repository
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BEAT2_SAMPLE = SHARED / "data" / "beat2-sample"
BEAT2_CLIP = "2_scott_0_1_1"


@pytest.fixture(scope="session")
def smplx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model root holding `smplx/SMPLX_NEUTRAL_2020.npz` (the synthetic stand-in, seed 0)."""
    from semtalk.body.synthetic_model import write_synthetic_smplx

    root = tmp_path_factory.mktemp("smplx_models")
    write_synthetic_smplx(root / "smplx" / "SMPLX_NEUTRAL_2020.npz", seed=0)
    return root


@pytest.fixture(scope="session")
def body_model(smplx_root: Path):
    """`semtalk.body.model.BodyModel` on the synthetic model (CPU, float32)."""
    from semtalk.body.model import BodyModel

    return BodyModel(smplx_root)


@pytest.fixture(scope="session")
def beat2_sample() -> Path:
    """The folder holding the real BEAT2 clip `2_scott_0_1_1.{npz,wav}`; skips when it is absent."""
    if not (BEAT2_SAMPLE / f"{BEAT2_CLIP}.npz").is_file():
        pytest.skip(f"the real BEAT2 sample is not available at {BEAT2_SAMPLE}")
    return BEAT2_SAMPLE
