"""emotion2vec frame features (the paper's emotion stream), via funasr's `AutoModel`, resampled to 30 fps.

Real runs point `model` at a local emotion2vec folder (`config.yaml` + `model.pt`, e.g.
`iic/emotion2vec_plus_large` from the ModelScope or Hugging Face cache). Tests and the offline demo write a
tiny emotion2vec (funasr's `Emotion2vec` class, seeded random weights) into a temporary folder in the same
layout and load it through the same `AutoModel` call.

funasr side effects are contained: `disable_update=True` (no PyPI query), `ncpu` defaults to the current
torch thread count, and the global random states it re-seeds are restored.
"""

from __future__ import annotations

import copy
import logging
import random
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from semtalk.body.joints import FPS, SAMPLE_RATE
from semtalk.features.base import (
    ClipInput,
    audio_chunks,
    encoder_frame_times,
    interpolate_frames,
    resolve_device,
    run_in_batches,
)
from semtalk.features.hubert import conv_hop_and_field
from semtalk.features.weights import MissingWeightsError, modelscope_candidates

log = logging.getLogger(__name__)

#: A complete emotion2vec `model_conf` at toy size (data2vec-2 audio layout: 7 strided convs = 320 hop).
TINY_CONF: dict[str, Any] = {
    "loss_beta": 0.0, "loss_scale": None, "depth": 1, "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0,
    "num_heads": 2, "norm_eps": 1e-5, "norm_affine": True, "encoder_dropout": 0.1, "post_mlp_drop": 0.1,
    "attention_dropout": 0.1, "activation_dropout": 0.0, "dropout_input": 0.0, "layerdrop": 0.0,
    "embed_dim": 32, "mlp_ratio": 2.0, "layer_norm_first": False, "average_top_k_layers": 1,
    "end_of_block_targets": False, "clone_batch": 1, "normalize": True,
    "modalities": {"audio": {
        "feature_encoder_spec": "[(16, 10, 5)] + [(16, 3, 2)] * 4 + [(16, 2, 2)] * 2",
        "extractor_mode": "layer_norm", "conv_pos_width": 15, "conv_pos_groups": 4, "conv_pos_depth": 2,
        "conv_pos_pre_ln": False, "prenet_depth": 1, "prenet_layerdrop": 0.0, "prenet_dropout": 0.0,
        "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0, "num_extra_tokens": 2,
        "init_extra_token_zero": True, "use_alibi_encoder": True, "learned_alibi": False, "alibi_max_pos": None,
        "learned_alibi_scale": True, "learned_alibi_scale_per_head": True, "learned_alibi_scale_per_layer": True,
        "num_alibi_heads": 2, "model_depth": 1, "alibi_scale": 1.0, "local_grad_mult": 1.0,
        "mask_noise_std": 0.01, "mask_prob_min": None, "mask_prob": 0.7, "inverse_mask": False,
        "mask_prob_adjust": 0.0, "keep_masked_pct": 0.0, "mask_length": 5, "add_masks": False,
        "remove_masks": False, "mask_dropout": 0.0, "encoder_zero_mask": True, "mask_channel_prob": 0.0,
        "mask_channel_length": 64, "ema_local_encoder": False, "decoder": None,
    }},
}  # fmt: skip

#: funasr's Hugging Face names of the ModelScope emotion2vec ids
HF_NAMES = {"iic/emotion2vec_plus_large": "emotion2vec/emotion2vec_plus_large",
            "iic/emotion2vec_plus_base": "emotion2vec/emotion2vec_plus_base",
            "iic/emotion2vec_plus_seed": "emotion2vec/emotion2vec_plus_seed",
            "iic/emotion2vec_base": "emotion2vec/emotion2vec_base"}  # fmt: skip


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny_conf(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """`TINY_CONF` with `overrides` merged in (nested dicts merge key by key)."""
    return _merge(TINY_CONF, overrides or {})


def write_emotion2vec_dir(folder: str | Path, model_conf: dict[str, Any], seed: int = 0) -> Path:
    """Write a random-weight emotion2vec in funasr's model-folder layout (`config.yaml`, `model.pt`)."""
    import yaml
    from funasr.models.emotion2vec.model import Emotion2vec

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Emotion2vec(model_conf=model_conf)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": "Emotion2vec", "model_conf": model_conf}))
    torch.save(net.state_dict(), folder / "model.pt")
    return folder


def local_emotion2vec_dir(model: str) -> Path:
    """A folder with `config.yaml` and `model.pt` for `model` (a folder, or a ModelScope/HF id in a local cache)."""
    candidates = [Path(model).expanduser()]
    hf = HF_NAMES.get(model, model)
    try:
        from huggingface_hub import snapshot_download

        candidates.append(Path(snapshot_download(repo_id=hf, local_files_only=True)))
    except Exception:
        pass
    candidates += modelscope_candidates(model)
    for c in candidates:
        if (c / "config.yaml").is_file() and (c / "model.pt").is_file():
            return c
    raise MissingWeightsError(
        f"emotion2vec '{model}' was not found on this machine (looked in {', '.join(str(c) for c in candidates)}). "
        f'Fix: download it once with network (`python -c "from funasr import AutoModel; '
        f"AutoModel(model='{model}')\"`, or `huggingface-cli download {hf}`), or set emotion.model to a folder "
        "holding its config.yaml and model.pt"
    )


@contextmanager
def _kept_global_state():
    """Restore what importing and building with funasr changes globally: the Python/NumPy/torch random
    states, torch's thread count, and the root logger's level and handlers."""
    py, npy, pt, threads = random.getstate(), np.random.get_state(), torch.get_rng_state(), torch.get_num_threads()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(pt)
        torch.set_num_threads(threads)
        root.setLevel(level)
        root.handlers[:] = handlers


class EmotionFeatures:
    """`emotion`: `(T, D)` float32 emotion2vec frame features at 30 fps.

    Args:
        model: local folder or emotion2vec id (`iic/emotion2vec_plus_large`), found in local caches only.
            Exactly one of `model` and `tiny`.
        tiny: overrides of `TINY_CONF` (plus optional `seed`) for a random-weight emotion2vec.
        chunk_seconds: audio is encoded in chunks of this length; equal chunks run as one batch.
        batch_size: chunks per forward pass.
        ncpu: CPU threads funasr may use (default: the current torch setting).
        device: `"auto"`, `"cpu"`, `"cuda"`, ...
    """

    name: ClassVar[str] = "emotion"
    sources: ClassVar[tuple[str, ...]] = ("audio",)
    version: ClassVar[int] = 1
    runtime_keys: ClassVar[tuple[str, ...]] = ("batch_size", "ncpu", "device")

    def __init__(
        self,
        model: str | None = None,
        tiny: dict[str, Any] | None = None,
        chunk_seconds: float = 20.0,
        batch_size: int = 8,
        ncpu: int | None = None,
        device: str = "auto",
    ) -> None:
        if (model is None) == (tiny is None):
            raise ValueError("emotion: give exactly one of `model` (pretrained) and `tiny` (random config)")
        self.model_id, self.tiny = model, dict(tiny) if tiny is not None else None
        self.chunk_seconds, self.batch_size = float(chunk_seconds), int(batch_size)
        self.device = resolve_device(device)
        ncpu = int(ncpu) if ncpu else torch.get_num_threads()
        with tempfile.TemporaryDirectory(prefix="semtalk-emotion2vec-") as tmp, _kept_global_state():
            if model is not None:
                folder = local_emotion2vec_dir(model)
            else:
                over = dict(self.tiny or {})
                seed = int(over.pop("seed", 0))
                folder = write_emotion2vec_dir(tmp, tiny_conf(over), seed=seed)
            from funasr import AutoModel

            auto = AutoModel(model=str(folder), disable_update=True, ncpu=ncpu, device=str(self.device),
                             log_level="WARNING", disable_pbar=True)  # fmt: skip
        self.net = auto.model.eval()
        self.normalize = bool(self.net.cfg.get("normalize", False))
        layers = self.net.modality_encoders["AUDIO"].feature_enc_layers
        self.hop, self.field = conv_hop_and_field(tuple(k for _, k, _ in layers), tuple(s for _, _, s in layers))
        self.dim = int(self.net.cfg.get("embed_dim"))

    @classmethod
    def output_dims(cls, model: str | None = None, tiny: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, int]:
        if tiny is not None:
            over = {k: v for k, v in tiny.items() if k != "seed"}
            return {"emotion": int(tiny_conf(over)["embed_dim"])}
        import yaml

        conf = yaml.safe_load((local_emotion2vec_dir(str(model)) / "config.yaml").read_text())
        return {"emotion": int(conf["model_conf"]["embed_dim"])}

    @torch.no_grad()
    def _encode(self, x: torch.Tensor) -> np.ndarray:
        x = x.to(self.device)
        if self.normalize:  # funasr normalises each utterance over its samples
            x = torch.stack([F.layer_norm(row, row.shape) for row in x])
        return self.net.extract_features(x, padding_mask=None)["x"].float().cpu().numpy()

    def __call__(self, item: ClipInput) -> dict[str, np.ndarray]:
        if len(item.audio) < self.field:
            raise ValueError(f"{item.clip.clip_id}: audio of {len(item.audio)} samples is too short for emotion2vec")
        chunks = audio_chunks(item.audio, int(self.chunk_seconds * SAMPLE_RATE))
        feats = run_in_batches([c for _, c in chunks], self._encode, self.batch_size)
        times = np.concatenate(
            [encoder_frame_times(off, len(f), self.hop, self.field) for (off, _), f in zip(chunks, feats)]
        )
        return {"emotion": interpolate_frames(np.concatenate(feats), times, item.num_frames, FPS)}
