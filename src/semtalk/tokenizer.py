"""The contract between stage 1 and the generators: what a tokenizer checkpoint says about itself.

A stage-1 checkpoint carries a plain-data card under `TOKENIZER_KEY` (part, feature width, levels, codebook
size, code width, frames per token, fps). Downstream stages read it before building anything and refuse a
checkpoint that does not match what they were configured for, naming the mismatch.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import torch

TOKENIZER_KEY = "semtalk_tokenizer"


def tokenizer_card(
    *, part: str, dim: int, num_quantizers: int, codebook_size: int, code_dim: int, downsample: int, fps: int
) -> dict[str, Any]:
    """The self-description stored in every stage-1 checkpoint (plain data)."""
    return {
        "part": part,
        "dim": dim,
        "num_quantizers": num_quantizers,
        "codebook_size": codebook_size,
        "code_dim": code_dim,
        "downsample": downsample,
        "fps": fps,
    }


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """`torch.load` a checkpoint safely (`weights_only=True`: no pickled code runs), with clear errors.

    `mmap=True` maps the tensors instead of reading them: reading the hyper-parameters and entries of a large
    checkpoint costs almost nothing then. Drop the result soon (its tensors read the file until then, which must
    not be rewritten meanwhile)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found; train the stage that writes it (see `make help`)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:  # pickled code or classes: refused, never run
        lines = [ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln or "global" in ln.lower()]
        detail = (lines[-1] if lines else str(exc).splitlines()[0])[:200]
        raise ValueError(
            f"{path}: not a loadable checkpoint: it holds pickled objects beyond tensors and plain data ({detail}), "
            "which could run code when loaded, so it is refused. Fix: re-train it, or re-download it from a source "
            "you trust"
        ) from exc
    except Exception as exc:  # RuntimeError (zip), EOFError ...
        raise ValueError(
            f"{path}: not a loadable checkpoint ({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}). "
            "Only plain tensors and data are accepted (weights_only); re-train or re-download it"
        ) from exc


def read_tokenizer_card(path: str | Path) -> dict[str, Any]:
    """The tokenizer card of a stage-1 checkpoint; refuses checkpoints of other stages."""
    ckpt = load_checkpoint(path)
    card = ckpt.get(TOKENIZER_KEY)
    if card is None:
        raise ValueError(f"{path}: not a stage-1 tokenizer checkpoint (no '{TOKENIZER_KEY}' entry)")
    return card


def check_compatible(card: dict[str, Any], path: str | Path, **expected: Any) -> None:
    """Raise `ValueError` listing every field of `card` that differs from `expected`."""
    diffs = [f"{k}: checkpoint has {card.get(k)!r}, expected {v!r}" for k, v in expected.items() if card.get(k) != v]
    if diffs:
        raise ValueError(f"{path}: tokenizer does not match this configuration ({'; '.join(diffs)})")
