"""The stages at a chosen size with random weights, without the dataset.

Sizes come from the stage YAML files the Makefile uses: `demo` is `configs/<stage>.yaml` (stage 1:
`configs/vq/default.yaml` + the part file), `paper` layers `configs/paper/<stage>.yaml` over it, `tiny` shrinks the
demo size further for the tests. Feature widths follow the extractors the sizes are trained with (demo:
`configs/data/tiny.yaml` on the embedded data; paper: HuBERT-large 1024, CLIP ViT-B/32 512, emotion2vec+ large
1024, BEAT2's 11,195-word vocabulary). Upstream checkpoints (the four tokenizers, the global-motion net and, for
stage 3, the base) are written with random weights into a folder, as training would leave them; batches have the
keys and shapes `Beat2DataModule` gives (`semtalk.data.windows.WindowDataset`).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml

from semtalk.body.joints import NUM_BETAS
from semtalk.body.parts import PART_NAMES
from semtalk.data.beat2 import NUM_SPEAKERS
from semtalk.data.windows import motion_parts

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
WINDOW, SEED_FRAMES, STRIDE = 64, 4, 20
STAGES: tuple[str, ...] = (*(f"vq_{p}" for p in PART_NAMES), "global_motion", "base", "sparse")

#: feature widths per size (vocabulary size, CLIP and emotion widths, HuBERT width, word-embedding width)
FEATURE_DIMS: dict[str, dict[str, int]] = {
    "tiny": {"hubert": 64, "beat": 3, "vocab_size": 40, "clip_text": 32, "emotion": 32, "word_dim": 0},
    "demo": {"hubert": 64, "beat": 3, "vocab_size": 201, "clip_text": 32, "emotion": 32, "word_dim": 0},
    "paper": {"hubert": 1024, "beat": 3, "vocab_size": 11195, "clip_text": 512, "emotion": 1024, "word_dim": 300},
}

#: test size: the demo configs shrunk (stage 1 and the generators)
TINY: dict[str, dict[str, Any]] = {
    "vq": dict(width=32, code_dim=16, depth=1, num_quantizers=3, codebook_size=16, dropout=0.0),
    "global_motion": dict(width=16, layers=1),
    "generator": {"hidden": 32, "motion_f": 16, "heads": 2, "audio_layers": 1, "face_layers": 1, "semantic_layers": 1,
                  "residual_layers": 1, "residual_heads": 2, "motion_encoder_layers": 1, "word_dim": 8},
}  # fmt: skip


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def config_files(stage: str, size: str) -> list[Path]:
    """The YAML files that configure `stage` (`vq_<part>`, `global_motion`, `base`, `sparse`) at `size`."""
    if stage.startswith("vq_"):
        files = [CONFIGS / "vq" / "default.yaml", CONFIGS / "vq" / f"{stage[3:]}.yaml"]
        paper = CONFIGS / "paper" / "vq.yaml"
    elif stage == "global_motion":
        files, paper = [CONFIGS / "vq" / "global_motion.yaml"], CONFIGS / "paper" / "global_motion.yaml"
    elif stage in ("base", "sparse"):
        files, paper = [CONFIGS / f"{stage}.yaml"], CONFIGS / "paper" / f"{stage}.yaml"
    else:
        raise ValueError(f"unknown stage {stage!r}; one of {STAGES}")
    return [*files, paper] if size == "paper" else files


def stage_config(stage: str, size: str) -> dict[str, Any]:
    """The merged configuration of a stage: `{"model": init_args, "trainer": {...}, "batch_size": int}`."""
    merged: dict[str, Any] = {}
    for f in config_files(stage, size):
        merged = deep_merge(merged, _yaml(f))
    model = dict((merged.get("model") or {}).get("init_args") or {})
    batch = int(((merged.get("data") or {}).get("init_args") or {}).get("batch_size") or 0)
    if not batch:
        batch = int(_yaml(CONFIGS / "data" / "embedded.yaml")["data"]["init_args"]["batch_size"])
    if size == "tiny":
        if stage.startswith("vq_"):
            model.update(TINY["vq"])
        elif stage == "global_motion":
            model.update(TINY["global_motion"])
        else:
            gen = {k: v for k, v in TINY["generator"].items() if k in _generator_keys(stage)}
            model["generator"] = {**(model.get("generator") or {}), **gen}
        batch = 4
    model.pop("tokenizers", None)
    model.pop("global_motion", None)
    model.pop("base", None)
    return {"model": model, "trainer": dict(merged.get("trainer") or {}), "batch_size": batch}


def _generator_keys(stage: str) -> set[str]:
    import inspect

    from semtalk.nn.base_generator import BaseGenerator
    from semtalk.nn.sparse_generator import SparseGenerator

    cls = BaseGenerator if stage == "base" else SparseGenerator
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


def make_spec(size: str, smplx_root: str | Path | None = None) -> dict[str, Any]:
    """The datamodule's `spec` for features of `size` (`Beat2DataModule.spec` keys)."""
    from semtalk.body.parts import LATENT_ALL_DIM, PART_DIMS

    d = FEATURE_DIMS[size]
    return {
        "fps": 30, "window": WINDOW, "stride": STRIDE, "seed_frames": SEED_FRAMES, "token_frames": 4,
        "tokens_per_window": WINDOW // 4, "generation_step": WINDOW - SEED_FRAMES, "part_dims": dict(PART_DIMS),
        "latent_all_dim": LATENT_ALL_DIM, "pose_dim": 165, "expression_dim": 100, "betas_dim": NUM_BETAS,
        "contact_dim": 4, "hubert_dim": d["hubert"], "beat_dim": d["beat"], "vocab_size": d["vocab_size"],
        "word_embedding_dim": d["word_dim"], "word_embeddings": None, "clip_dim": d["clip_text"],
        "emotion_dim": d["emotion"], "num_speakers": NUM_SPEAKERS, "speakers": None,
        "smplx_root": str(smplx_root) if smplx_root is not None else None,
    }  # fmt: skip


# ============================================================================================== batches
def synthetic_batch(size: str, batch_size: int, frames: int = WINDOW, seed: int = 0) -> dict[str, torch.Tensor]:
    """A training batch with the keys and shapes of `WindowDataset` items stacked by the default collate:
    smooth random motion (sums of slow sinusoids) and random speech features of the widths of `size`."""
    g = torch.Generator().manual_seed(seed)
    d = FEATURE_DIMS[size]
    b, t = batch_size, frames
    time = torch.arange(t, dtype=torch.float32)[None, :, None] / 30.0

    def wave(dims: int, amp: float) -> torch.Tensor:
        freq = torch.rand(b, 1, dims, generator=g) * 1.5 + 0.2
        phase = torch.rand(b, 1, dims, generator=g) * 6.28
        return amp * torch.sin(time * freq * 6.28 + phase)

    poses, expressions = wave(165, 0.3), wave(100, 1.0)
    trans = wave(3, 0.05) + torch.tensor([0.0, 1.25, 0.0])
    contact = (wave(4, 1.0) > 0).float()
    sem = (torch.rand(b, t // 4, generator=g) > 0.6).float().repeat_interleave(4, dim=1) * 0.5
    out: dict[str, torch.Tensor] = {
        "poses": poses, "trans": trans, "expressions": expressions, "contact": contact,
        "betas": torch.zeros(b, NUM_BETAS), "speaker": torch.randint(0, NUM_SPEAKERS, (b,), generator=g),
        "hubert": torch.randn(b, t, d["hubert"], generator=g), "beat": torch.rand(b, t, d["beat"], generator=g),
        "words": torch.randint(0, d["vocab_size"], (b, t), generator=g), "sem": sem,
        "sem_token": sem[:, ::4], "clip_text": torch.randn(b, d["clip_text"], generator=g),
        "emotion": torch.randn(b, t, d["emotion"], generator=g),
    }  # fmt: skip
    out.update(motion_parts(poses, trans, expressions, contact))
    return out


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


# ============================================================================================== checkpoints
def save_checkpoint(stage: L.LightningModule, path: Path) -> str:
    """Write `stage` as a Lightning checkpoint (state, hyper-parameters and the stage's own entries)."""
    ckpt: dict[str, Any] = {
        "state_dict": stage.state_dict(),
        "hyper_parameters": dict(stage.hparams),
        "pytorch-lightning_version": L.__version__,
    }
    stage.on_save_checkpoint(ckpt)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return str(path)


def build_vq(part: str, size: str, spec: dict[str, Any] | None = None, smplx_root: str | None = None):
    """A `VQStage` at `size` with its normalisation statistics set from a synthetic batch."""
    from stages.vq import VQStage

    args = dict(stage_config(f"vq_{part}", size)["model"])
    args["part"] = part
    args["smplx_root"] = smplx_root
    stage = VQStage(**args, spec=spec)
    x = synthetic_batch(size, 8, seed=1)[part]
    flat = x.flatten(0, 1)
    stage.model.set_statistics(flat.mean(0), flat.std(0))
    return stage


def write_stage1(folder: Path, size: str) -> dict[str, str]:
    """Random-weight tokenizers (codebooks set by their k-means initialisation on one synthetic batch) and a
    global-motion net at `size`; returns the checkpoint paths by name."""
    from stages.global_motion import GlobalMotionStage

    paths: dict[str, str] = {}
    for part in PART_NAMES:
        stage = build_vq(part, size)
        tokens = 2 * stage.hparams.codebook_size  # k-means sees twice as many vectors as codes
        x = synthetic_batch(size, max(4, tokens * 4 // WINDOW), seed=2)[part]
        with torch.no_grad():
            stage.model.train()(x)  # initialises the codebooks (k-means) as the first training step does
        stage.eval()
        paths[part] = save_checkpoint(stage, folder / f"vq_{part}.ckpt")
    gm_args = dict(stage_config("global_motion", size)["model"])
    paths["global_motion"] = save_checkpoint(GlobalMotionStage(**gm_args), folder / "global_motion.ckpt")
    return paths


def upstream_stage1(folder: Path, size: str) -> dict[str, str]:
    """The stage-1 checkpoints in `folder`, written by `write_stage1` unless they are there already."""
    names = [*PART_NAMES, "global_motion"]
    paths = {n: folder / (f"vq_{n}.ckpt" if n in PART_NAMES else f"{n}.ckpt") for n in names}
    if all(p.is_file() for p in paths.values()):
        return {n: str(p) for n, p in paths.items()}
    return write_stage1(folder, size)


def build_base(size: str, stage1: dict[str, str], spec: dict[str, Any]):
    from stages.base import BaseStage

    args = dict(stage_config("base", size)["model"])
    vq = {p: stage1[p] for p in PART_NAMES}
    return BaseStage(vq, stage1["global_motion"], spec=spec, **args)


def build_sparse(size: str, base_path: str, spec: dict[str, Any]):
    from stages.sparse import SparseStage

    args = dict(stage_config("sparse", size)["model"])
    return SparseStage(base_path, spec=spec, **args)


def write_base(folder: Path, size: str, stage1: dict[str, str], spec: dict[str, Any]) -> str:
    """A random-weight stage-2 checkpoint (default seed: the mean seed frames of one synthetic batch)."""
    stage = build_base(size, stage1, spec)
    batch = synthetic_batch(size, 8, seed=3)
    with torch.no_grad():
        stage.seed_sum += batch["latent_all"][:, :SEED_FRAMES].double().sum(0)
        stage.seed_count += batch["latent_all"].shape[0]
    return save_checkpoint(stage, folder / "base.ckpt")


def build_stage(name: str, size: str, folder: Path, smplx_root: str | None = None) -> L.LightningModule:
    """The LightningModule of `name` (one of `STAGES`) at `size`; its upstream checkpoints are written to `folder`
    (or taken from there when an earlier call wrote them)."""
    spec = make_spec(size, smplx_root)
    if name.startswith("vq_"):
        return build_vq(name[3:], size, spec, smplx_root)
    if name == "global_motion":
        from stages.global_motion import GlobalMotionStage

        return GlobalMotionStage(**stage_config("global_motion", size)["model"], spec=spec)
    stage1 = upstream_stage1(folder, size)
    if name == "base":
        return build_base(size, stage1, spec)
    if name == "sparse":
        base = folder / "base.ckpt"
        return build_sparse(size, str(base) if base.is_file() else write_base(folder, size, stage1, spec), spec)
    raise ValueError(f"unknown stage {name!r}; one of {STAGES}")


def parameter_count(module: torch.nn.Module, trainable: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)
