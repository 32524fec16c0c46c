"""Extractor configurations for the benchmarks, in the registry's format (`semtalk.features.registry`).

`tiny` and `demo` use `configs/data/tiny.yaml` (the embedded demo's encoders). `paper` builds the pretrained
encoders' architectures with seeded random weights (nothing to download, same compute as the real weights):
HuBERT-large (24 layers, 1024 wide, as `facebook/hubert-large-ls960-ft`), the CLIP ViT-B/32 text tower (12 layers,
512 wide) and an emotion2vec+ large-sized data2vec 2.0 audio encoder (8 pre-net + 16 blocks, 1024 wide).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

#: the pretrained encoders' sizes, random weights
PAPER_EXTRACTORS: dict[str, Any] = {
    "motion": {"body_model_root": None},
    "hubert": {
        "tiny": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
                 "feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True, "seed": 0},
        "chunk_seconds": 20.0, "normalize": True, "audio_rate_quirk": False,
    },
    "beat": {"amplitude": "per_hop"},
    "words": {"vocab": "auto"},
    "semantic": {"threshold": 0.1},
    "clip_text": {"model": "ViT-B-32", "tiny": {"seed": 0}, "window": 64, "stride": 20, "seed_frames": 4},
    "emotion": {
        "tiny": {"embed_dim": 1024, "depth": 16, "num_heads": 16, "mlp_ratio": 4.0, "seed": 0,
                 "modalities": {"audio": {
                     "feature_encoder_spec": "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2",
                     "conv_pos_width": 95, "conv_pos_groups": 16, "conv_pos_depth": 5, "prenet_depth": 8,
                     "num_alibi_heads": 16, "model_depth": 16, "num_extra_tokens": 10}}},
        "chunk_seconds": 20.0,
    },
}  # fmt: skip


def extractor_config(size: str) -> dict[str, Any]:
    """The extractor configuration (plain data, as the cache manifest stores it) for a benchmark size."""
    from semtalk.features.registry import load_extractor_config

    if size == "paper":
        return load_extractor_config(PAPER_EXTRACTORS)
    return load_extractor_config(yaml.safe_load((CONFIGS / "data" / "tiny.yaml").read_text(encoding="utf-8")))
