"""CLIP sentence features: the open_clip text tower applied to the words of each window.

A window's sentence is the words of its frames with blank marks dropped, consecutive repeats collapsed and
the rest joined by spaces. The cache keeps one feature per training window (`clip_text`, windows of
`window` frames every `stride` frames) and one per generation window (`clip_text_gen`, every
`window - seed_frames` frames), as `encode_text` gives it (not L2-normalised).

Real runs: `model: ViT-B-32`, `pretrained: openai`, from the local Hugging Face / open_clip cache (or a
checkpoint file). Offline tests: the same open_clip factory with a tiny random config. The BPE tokenizer
ships with open_clip.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from semtalk.data.beat2 import WordInterval
from semtalk.data.windows import generation_starts, sequence_length, train_starts
from semtalk.features.base import ClipInput, resolve_device
from semtalk.features.weights import MissingWeightsError
from semtalk.features.words import frame_marks

log = logging.getLogger(__name__)


def window_sentence(marks: Sequence[str | None]) -> str:
    """Words of a window: blanks dropped, consecutive repeats collapsed, joined by spaces."""
    words: list[str] = []
    for m in marks:
        if m is None or not m.strip():
            continue
        if not words or words[-1] != m:
            words.append(m)
    return " ".join(words)


def window_sentences(words: Sequence[WordInterval], num_frames: int, starts: Sequence[int], window: int) -> list[str]:
    marks = frame_marks(words, num_frames)
    return [window_sentence(marks[s : s + window]) for s in starts]


def local_clip_checkpoint(model: str, pretrained: str) -> str:
    """Path of open_clip weights `pretrained` (a file, or a tag such as `openai`) found on this machine."""
    if Path(pretrained).expanduser().is_file():
        return str(Path(pretrained).expanduser())
    import open_clip
    from huggingface_hub import hf_hub_download

    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        raise ValueError(
            f"clip_text: '{pretrained}' is neither a file nor an open_clip tag of {model} "
            f"(tags: {open_clip.list_pretrained_tags_by_model(model)})"
        )
    tried = []
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])  # 'org/repo/' names no file: the default ones
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for name in names:
            tried.append(f"{repo}/{name}")
            try:
                return hf_hub_download(repo_id=repo, filename=name, local_files_only=True)
            except Exception:
                continue
    if cfg.get("url"):
        path = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        tried.append(str(path))
        if path.is_file():
            return str(path)
    raise MissingWeightsError(
        f"open_clip weights {model}/{pretrained} are not on this machine (looked for {', '.join(tried)}). Fix: on a "
        f"machine with network run `python -c \"import open_clip; open_clip.create_model('{model}', "
        f"pretrained='{pretrained}')\"` (same HF_HOME), or set clip_text.pretrained to a checkpoint file"
    )


class ClipTextFeatures:
    """`clip_text`: `(W, D)` per training window; `clip_text_gen`: `(G, D)` per generation window.

    Args:
        model: open_clip architecture name (`ViT-B-32`).
        pretrained: weights tag or checkpoint file (`openai`), looked up locally only. Exactly one of
            `pretrained` and `tiny`.
        tiny: open_clip model overrides for a random-weight model (`embed_dim`, `text_cfg`, `vision_cfg`,
            optional `seed`).
        window, stride, seed_frames: window bookkeeping (must match the DataModule's).
        batch_size: sentences per forward pass.
        device: `"auto"`, `"cpu"`, `"cuda"`, ...
    """

    name: ClassVar[str] = "clip_text"
    sources: ClassVar[tuple[str, ...]] = ("textgrid",)
    version: ClassVar[int] = 1
    runtime_keys: ClassVar[tuple[str, ...]] = ("batch_size", "device")

    def __init__(
        self,
        model: str = "ViT-B-32",
        pretrained: str | None = None,
        tiny: dict[str, Any] | None = None,
        window: int = 64,
        stride: int = 20,
        seed_frames: int = 4,
        batch_size: int = 64,
        device: str = "auto",
    ) -> None:
        import open_clip

        if (pretrained is None) == (tiny is None):
            raise ValueError("clip_text: give exactly one of `pretrained` (e.g. openai) and `tiny` (random config)")
        self.model_name, self.pretrained = model, pretrained
        self.tiny = dict(tiny) if tiny is not None else None
        self.window, self.stride, self.seed_frames = int(window), int(stride), int(seed_frames)
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        if pretrained is not None:
            net = open_clip.create_model(model, pretrained=local_clip_checkpoint(model, pretrained))
        else:
            overrides = dict(self.tiny or {})
            seed = int(overrides.pop("seed", 0))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = open_clip.create_model(model, pretrained=None, **overrides)
        if hasattr(net, "visual"):
            net.visual = None  # only the text tower is used
        self.net = net.eval().to(self.device)
        self.tokenizer = open_clip.get_tokenizer(model)
        self.dim = int(self.net.text_projection.shape[1]) if self.net.text_projection is not None else int(
            self.net.token_embedding.weight.shape[1])  # fmt: skip

    @classmethod
    def output_dims(cls, model: str = "ViT-B-32", tiny: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, int]:
        import open_clip

        if tiny is not None and "embed_dim" in tiny:
            return {"clip_text": int(tiny["embed_dim"])}
        cfg = open_clip.get_model_config(model)
        if cfg is None:
            raise ValueError(f"clip_text: unknown open_clip model {model!r}")
        return {"clip_text": int(cfg["embed_dim"])}

    @torch.no_grad()
    def encode(self, sentences: Sequence[str]) -> np.ndarray:
        """`[str] * N -> (N, D)` float32; repeated sentences are encoded once."""
        unique = sorted(set(sentences))
        feats: dict[str, np.ndarray] = {}
        for b in range(0, len(unique), self.batch_size):
            batch = unique[b : b + self.batch_size]
            tokens = self.tokenizer(batch).to(self.device)
            out = self.net.encode_text(tokens, normalize=False).float().cpu().numpy()
            feats.update(zip(batch, out))
        if not sentences:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([feats[s] for s in sentences]).astype(np.float32)

    def __call__(self, item: ClipInput) -> dict[str, np.ndarray]:
        n = item.num_frames
        train = window_sentences(item.clip.words, n, train_starts(n, self.window, self.stride), self.window)
        gen_starts = generation_starts(sequence_length(n), self.window, self.seed_frames)
        gen = window_sentences(item.clip.words, n, gen_starts, self.window)
        feats = self.encode(train + gen)
        return {"clip_text": feats[: len(train)], "clip_text_gen": feats[len(train) :]}
