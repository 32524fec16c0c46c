"""Load the trained stages for generation: `load_pipeline(checkpoints_dir)` -> `semtalk.inference.Pipeline`.

The stage checkpoints name their upstream files by path (a stage-3 checkpoint its base, a stage-2 checkpoint its
tokenizers and global-motion net), usually relative to the project folder (`checkpoints/vq_face.ckpt`). The
loader resolves them against the working directory, the checkpoint folder's parent and the checkpoint folder, so
`semtalk generate` works from anywhere; the stages still check every upstream file's sha256.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from semtalk.data.errors import DataError
from semtalk.inference import FRONTEND_FILE, FrontendSpec, Pipeline
from semtalk.tokenizer import load_checkpoint

BASE_FILE = "base.ckpt"
SPARSE_FILE = "sparse.ckpt"
DEFAULT_CACHE = Path("data") / "cache" / "embedded"


@contextlib.contextmanager
def _working_directory(folder: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def _project_root(ckdir: Path, upstream: dict[str, str], hashes: dict[str, str]) -> Path:
    """The folder against which the upstream checkpoint paths name the files the checkpoint was trained with:
    the checkpoint folder's parent (the usual project layout), the working directory, or the checkpoint folder.
    A folder qualifies when every file exists and, where the checkpoint recorded one, has the same sha256."""
    from semtalk.tokenizer import file_sha256

    candidates = list(dict.fromkeys([ckdir.resolve().parent, Path.cwd().resolve(), ckdir.resolve()]))
    for root in candidates:
        ok = True
        for name, rel in upstream.items():
            path = Path(rel) if Path(rel).is_absolute() else root / rel
            if not path.is_file() or (name in hashes and file_sha256(path) != hashes[name]):
                ok = False
                break
        if ok:
            return root
    raise FileNotFoundError(
        f"{ckdir / BASE_FILE}: the upstream checkpoints it was trained with ({', '.join(upstream.values())}) were "
        f"not found relative to {', '.join(str(c) for c in candidates)} (or differ: sha256). Fix: keep the "
        "checkpoints folder next to the files it names, or run from the project folder that trained them"
    )


def resolve_frontend(ckdir: Path, root: Path, cache: str | Path | None, spec: dict[str, Any]) -> FrontendSpec:
    """The feature settings to generate with: `--cache DIR` when given, else `<checkpoints>/frontend.json`, else
    the cache named by the stage's word-embedding path, else `data/cache/embedded` of the project folder (the one
    the checkpoints' upstream paths resolve against)."""
    if cache is not None:
        return FrontendSpec.from_cache(cache)
    shipped = ckdir / FRONTEND_FILE
    if shipped.is_file():
        return FrontendSpec.load(shipped)
    guesses = []
    if spec.get("word_embeddings"):
        guesses.append(Path(spec["word_embeddings"]).parent)
    guesses.append(root / DEFAULT_CACHE)
    for g in guesses:
        if (g / "manifest.json").is_file():
            return FrontendSpec.from_cache(g)
    raise DataError(
        root / DEFAULT_CACHE / "manifest.json",
        "no feature settings for these checkpoints (generation must extract features exactly as training did)",
        f"pass --cache DIR (the feature cache the stages were trained on), or write {shipped} with "
        "`FrontendSpec.from_cache(DIR).save(PATH)` from semtalk.inference",
    )


def check_frontend(frontend: FrontendSpec, spec: dict[str, Any], sparse_spec: dict[str, Any] | None) -> None:
    """Refuse a front end whose feature widths differ from those the stages were trained with."""
    pairs = [("hubert", "hubert_dim", spec), ("beat", "beat_dim", spec)]
    if sparse_spec is not None:
        pairs += [
            ("vocab_size", "vocab_size", sparse_spec),
            ("clip_text", "clip_dim", sparse_spec),
            ("emotion", "emotion_dim", sparse_spec),
        ]
    bad = []
    for dim_key, spec_key, s in pairs:
        want, have = int(s.get(spec_key) or 0), int(frontend.dims.get(dim_key, 0))
        if want and have != want:
            bad.append(f"{dim_key}: checkpoints {want}, features {have}")
    if bad:
        raise DataError(
            frontend.source or "front end",
            f"the feature settings do not match the checkpoints ({'; '.join(bad)})",
            "use the cache the stages were trained on (--cache DIR)",
        )


def load_pipeline(
    checkpoints: str | Path = "checkpoints",
    *,
    mode: str = "full",
    cache: str | Path | None = None,
    device: str = "cpu",
) -> Pipeline:
    """Load `base.ckpt` (and `sparse.ckpt` for `mode="full"`) from `checkpoints`, frozen, in eval mode.

    Without `sparse.ckpt` the pipeline runs rhythm-only, with a notice. `cache`: the feature cache the stages were
    trained on (see `resolve_frontend`). `device`: `cpu`, `cuda` or `auto`.
    """
    from stages.base import BASE_KEY, BaseStage
    from stages.sparse import SPARSE_KEY, SparseStage

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    ckdir = Path(checkpoints)
    base_path = ckdir / BASE_FILE
    if not base_path.is_file():
        raise FileNotFoundError(
            f"{base_path}: no stage-2 checkpoint. Fix: train it (`make train-base`) or pass --checkpoints DIR"
        )
    base_ckpt = load_checkpoint(base_path, mmap=True)  # entries only: the stage reads the weights
    if BASE_KEY not in base_ckpt:
        raise ValueError(
            f"{base_path}: not a stage-2 (base) checkpoint (no '{BASE_KEY}' entry). Fix: put the checkpoint "
            f"`make train-base` exports there, or pass --checkpoints DIR"
        )
    base_hp = base_ckpt.get("hyper_parameters", {})
    upstream = dict(base_hp.get("tokenizers") or {})
    if base_hp.get("global_motion"):
        upstream["global_motion"] = base_hp["global_motion"]
    cards = (base_ckpt.get(BASE_KEY) or {}).get("tokenizers") or {}
    del base_ckpt
    root = _project_root(ckdir, upstream, {p: c["sha256"] for p, c in cards.items() if c.get("sha256")})
    notices: list[str] = []
    sparse_path = ckdir / SPARSE_FILE
    want_sparse = mode == "full"
    if want_sparse and not sparse_path.is_file():
        notices.append(f"{sparse_path} not found: rhythm mode (base generator only)")
        want_sparse = False
    base_abs, sparse_abs = base_path.resolve(), sparse_path.resolve()
    with _working_directory(root):
        sparse = None
        if want_sparse:
            sparse_ckpt = load_checkpoint(sparse_abs, mmap=True)  # entries only: the stage reads the weights
            if SPARSE_KEY not in sparse_ckpt:
                raise ValueError(
                    f"{sparse_path}: not a stage-3 (sparse) checkpoint (no '{SPARSE_KEY}' entry). Fix: put the "
                    "checkpoint `make train-sparse` exports there, or use --mode rhythm"
                )
            sparse_hp = sparse_ckpt.get("hyper_parameters", {})
            del sparse_ckpt
            spec = dict(sparse_hp.get("spec") or {})
            spec["word_embeddings"] = None  # the trained table is in the checkpoint; the cache file is not needed
            sparse = SparseStage.load_from_checkpoint(sparse_abs, map_location="cpu", base=str(base_abs), spec=spec)
            sparse.eval().to(device)
            base = sparse.base
        else:
            base = BaseStage.load_from_checkpoint(base_abs, map_location="cpu")
            base.eval().to(device)
    base.freeze()
    if sparse is not None:
        sparse.freeze()
    base_spec = dict(base.hparams.get("spec") or {})
    sparse_spec = dict(sparse.hparams.get("spec") or {}) if sparse is not None else None
    frontend = resolve_frontend(ckdir, root, cache, sparse_spec or base_spec)
    check_frontend(frontend, base_spec, sparse_spec)
    return Pipeline(
        base=base,
        sparse=sparse,
        frontend=frontend,
        beta=float(sparse.hparams.beta) if sparse is not None else 0.5,
        device=device,
        num_speakers=int(base.generator.num_speakers),
        notices=notices,
        root=str(root),
    )
