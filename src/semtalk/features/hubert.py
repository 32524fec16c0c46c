"""HuBERT frame features: the last hidden state of a `transformers.HubertModel`, resampled to 30 fps.

Real runs use `facebook/hubert-large-ls960-ft` (1024-d, 50 Hz) from the local Hugging Face cache or a local
folder; tests and the offline demo build the same class from a tiny `HubertConfig` with seeded random
weights. Audio is fed at its true 16 kHz (the reference fed 22.05 kHz audio labelled 16 kHz; that quirk is
reachable with `audio_rate_quirk=True`).
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import numpy as np
import torch

from semtalk.body.joints import FPS, SAMPLE_RATE
from semtalk.features.base import (
    ClipInput,
    audio_chunks,
    encoder_frame_times,
    interpolate_frames,
    resolve_device,
    run_in_batches,
)
from semtalk.features.weights import MissingWeightsError, hf_local_dir

log = logging.getLogger(__name__)

REFERENCE_RATE = 22050


def conv_hop_and_field(kernels: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, int]:
    """Total stride and receptive field (samples) of a stack of 1-D convolutions."""
    hop, field = 1, 1
    for k, s in zip(kernels, strides):
        field += (k - 1) * hop
        hop *= s
    return hop, field


class HubertFeatures:
    """`hubert`: `(T, D)` float32 HuBERT last hidden state at 30 fps.

    Args:
        model: hub id (looked up in the local Hugging Face cache only) or local folder of a pretrained
            HuBERT, e.g. `facebook/hubert-large-ls960-ft`. Exactly one of `model` and `tiny`.
        tiny: `HubertConfig` keyword arguments (plus optional `seed`) for a random-weight model.
        chunk_seconds: audio is encoded in chunks of this length (memory bound); chunks of equal length
            run as one batch.
        batch_size: chunks per forward pass.
        normalize: zero-mean/unit-variance each chunk first, as the ls960 feature extractor does.
        audio_rate_quirk: resample to 22.05 kHz and feed it as if 16 kHz, like the reference code.
        device: `"auto"`, `"cpu"`, `"cuda"`, ...
    """

    name: ClassVar[str] = "hubert"
    sources: ClassVar[tuple[str, ...]] = ("audio",)
    version: ClassVar[int] = 1
    runtime_keys: ClassVar[tuple[str, ...]] = ("batch_size", "device")

    def __init__(
        self,
        model: str | None = None,
        tiny: dict[str, Any] | None = None,
        chunk_seconds: float = 20.0,
        batch_size: int = 8,
        normalize: bool = True,
        audio_rate_quirk: bool = False,
        device: str = "auto",
    ) -> None:
        from transformers import HubertConfig, HubertModel

        if (model is None) == (tiny is None):
            raise ValueError("hubert: give exactly one of `model` (pretrained) and `tiny` (random config)")
        self.model_id, self.tiny = model, dict(tiny) if tiny is not None else None
        self.chunk_seconds, self.batch_size = float(chunk_seconds), int(batch_size)
        self.normalize, self.audio_rate_quirk = bool(normalize), bool(audio_rate_quirk)
        self.device = resolve_device(device)
        if model is not None:
            folder = hf_local_dir(model, what="HuBERT", config_key="hubert.model")
            try:
                net = HubertModel.from_pretrained(str(folder), local_files_only=True)
            except OSError as exc:
                raise MissingWeightsError(f"HuBERT weights in {folder} cannot be loaded ({exc})") from exc
        else:
            cfg = dict(self.tiny or {})
            seed = int(cfg.pop("seed", 0))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = HubertModel(HubertConfig(**cfg))
        self.net = net.eval().to(self.device)
        conf = self.net.config
        self.hop, self.field = conv_hop_and_field(tuple(conf.conv_kernel), tuple(conf.conv_stride))
        self.dim = int(conf.hidden_size)

    @classmethod
    def output_dims(cls, model: str | None = None, tiny: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, int]:
        if tiny is not None:
            from transformers import HubertConfig

            return {"hubert": int(tiny.get("hidden_size", HubertConfig().hidden_size))}
        folder = hf_local_dir(str(model), what="HuBERT", config_key="hubert.model")
        return {"hubert": int(json.loads((folder / "config.json").read_text())["hidden_size"])}

    @torch.no_grad()
    def _encode(self, x: torch.Tensor) -> np.ndarray:
        x = x.to(self.device)
        if self.normalize:
            x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(x.var(dim=1, keepdim=True, correction=0) + 1e-7)
        return self.net(x).last_hidden_state.float().cpu().numpy()

    def __call__(self, item: ClipInput) -> dict[str, np.ndarray]:
        audio, rate = item.audio, SAMPLE_RATE
        if self.audio_rate_quirk:
            import librosa

            audio = librosa.resample(audio, orig_sr=SAMPLE_RATE, target_sr=REFERENCE_RATE)
            rate = REFERENCE_RATE
        if len(audio) < self.field:
            raise ValueError(f"{item.clip.clip_id}: audio of {len(audio)} samples is shorter than HuBERT's window")
        chunks = audio_chunks(audio, int(self.chunk_seconds * rate))
        feats = run_in_batches([c for _, c in chunks], self._encode, self.batch_size)
        times = np.concatenate(
            [encoder_frame_times(off, len(f), self.hop, self.field, rate) for (off, _), f in zip(chunks, feats)]
        )
        return {"hubert": interpolate_frames(np.concatenate(feats), times, item.num_frames, FPS)}
