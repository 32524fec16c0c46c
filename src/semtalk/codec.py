"""Frozen stage-1 models as one codec: part features <-> RVQ codes, and codes -> SMPL-X parameters.

Downstream stages and generation load the tokenizers by checkpoint path (the path is the source of truth),
check each checkpoint's card against what they expect, and keep them frozen: in eval mode whatever
`.train()` asks, with no trainable parameters, so EMA codebooks cannot move.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from semtalk.body.parts import PART_DIMS, PART_NAMES, SMPLXParams, merge_parts
from semtalk.nn.global_motion import GlobalMotionNet, integrate_translation
from semtalk.nn.rvqvae import RVQVAE
from semtalk.tokenizer import TOKENIZER_KEY, check_compatible, file_sha256, load_checkpoint

_RVQVAE_ARGS = ("width", "code_dim", "down_t", "depth", "growth", "dropout", "num_quantizers", "codebook_size")
_QUANTIZER_ARGS = (
    "decay", "kmeans_init", "threshold_ema_dead_code", "rotation_trick", "stochastic_sample_codes",
    "sample_codebook_temp", "quantize_dropout",
)  # fmt: skip


def _sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_tokenizer(path: str | Path, **expected: Any) -> tuple[RVQVAE, dict[str, Any]]:
    """Rebuild a frozen `RVQVAE` from a stage-1 checkpoint, after checking its card against `expected`
    (e.g. `part="face", num_quantizers=6, codebook_size=256, fps=30`). Returns the model and its card
    (with the file's sha256 added)."""
    ckpt = load_checkpoint(path)
    card = ckpt.get(TOKENIZER_KEY)
    if card is None:
        raise ValueError(f"{path}: not a stage-1 tokenizer checkpoint (no '{TOKENIZER_KEY}' entry)")
    check_compatible(card, path, **expected)
    hp = ckpt.get("hyper_parameters", {})
    kwargs = {k: hp[k] for k in _RVQVAE_ARGS if k in hp}
    qkw = {k: hp[k] for k in _QUANTIZER_ARGS if k in hp}
    model = RVQVAE(card["dim"], **kwargs, **qkw)
    model.load_state_dict(_sub_state(ckpt["state_dict"], "model."))
    model.eval().requires_grad_(False)
    return model, {**card, "sha256": file_sha256(path)}


def load_global_motion(path: str | Path) -> GlobalMotionNet:
    """Rebuild the frozen global-motion network from its checkpoint."""
    ckpt = load_checkpoint(path)
    if "semtalk_global_motion" not in ckpt:
        raise ValueError(f"{path}: not a global-motion checkpoint (no 'semtalk_global_motion' entry)")
    hp = ckpt.get("hyper_parameters", {})
    net = GlobalMotionNet(hp.get("width", 256), hp.get("layers", 4), hp.get("use_contacts", True))
    net.load_state_dict(_sub_state(ckpt["state_dict"], "net."))
    return net.eval().requires_grad_(False)


class MotionCodec(nn.Module):
    """The four part tokenizers and the global-motion net, frozen.

    Args:
        tokenizers: one `RVQVAE` per part (face, upper, hands, lower).
        global_motion: root velocity/height from the lower body; None keeps the lower tokenizer's translation.
        fps: frame rate.
    """

    def __init__(self, tokenizers: dict[str, RVQVAE], global_motion: GlobalMotionNet | None = None, fps: int = 30):
        super().__init__()
        missing = set(PART_NAMES) - set(tokenizers)
        if missing:
            raise ValueError(f"tokenizers missing for parts {sorted(missing)}")
        self.tokenizers = nn.ModuleDict({p: tokenizers[p] for p in PART_NAMES})
        self.global_motion = global_motion
        self.fps = fps
        first = self.tokenizers["face"].quantizer
        self.num_quantizers, self.codebook_size, self.code_dim = first.num_quantizers, first.codebook_size, first.dim
        self.downsample = self.tokenizers["face"].downsample
        for p, tok in self.tokenizers.items():
            q = tok.quantizer
            if (q.num_quantizers, q.codebook_size, q.dim, tok.downsample) != (
                self.num_quantizers, self.codebook_size, self.code_dim, self.downsample
            ):  # fmt: skip
                raise ValueError(f"tokenizer '{p}' differs from 'face' in levels, codebook size, code width or rate")
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_checkpoints(
        cls,
        vq_paths: dict[str, str],
        global_motion_path: str | None = None,
        num_quantizers: int | None = None,
        codebook_size: int | None = None,
        fps: int = 30,
    ) -> tuple[MotionCodec, dict[str, Any]]:
        """Load every part tokenizer by path, checking part, levels, codebook size and fps. Returns the codec
        and the cards (with sha256) by part."""
        expected: dict[str, Any] = {"fps": fps}
        if num_quantizers is not None:
            expected["num_quantizers"] = num_quantizers
        if codebook_size is not None:
            expected["codebook_size"] = codebook_size
        toks, cards = {}, {}
        for part in PART_NAMES:
            if part not in vq_paths:
                raise ValueError(f"no tokenizer checkpoint given for part '{part}'")
            toks[part], cards[part] = load_tokenizer(vq_paths[part], part=part, dim=PART_DIMS[part], **expected)
        gm = load_global_motion(global_motion_path) if global_motion_path else None
        return cls(toks, gm, fps), cards

    def train(self, mode: bool = True) -> MotionCodec:  # frozen: always eval
        return super().train(False)

    @torch.no_grad()
    def encode(self, parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`{part: (B, T, D)}` -> `{part: (B, T/4, Q)}` int64 indices."""
        return {p: self.tokenizers[p].encode(x) for p, x in parts.items() if p in self.tokenizers}

    @torch.no_grad()
    def level_codes(self, part: str, indices: torch.Tensor) -> torch.Tensor:
        """`(B, T', Q)` -> `(B, T', Q, D)` per-level code vectors (channel-last, level before width)."""
        return self.tokenizers[part].level_codes(indices).permute(1, 2, 0, 3)

    @torch.no_grad()
    def decode(self, codes: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`{part: (B, T', Q)}` -> `{part: (B, 4 T', D)}` part features."""
        return {p: self.tokenizers[p].decode(idx) for p, idx in codes.items()}

    @torch.no_grad()
    def to_smplx(self, parts: dict[str, torch.Tensor], start_trans: torch.Tensor) -> SMPLXParams:
        """Part features -> SMPL-X parameters; translation from the global-motion net integrated from
        `start_trans` `(B, 3)` (or the lower tokenizer's own channels without one), contacts clamped to [0, 1]."""
        lower = parts["lower"]
        if self.global_motion is not None:
            vel = self.global_motion(lower)
            trans = integrate_translation(vel[..., :3], start_trans, self.fps)
        else:
            trans = lower[..., 54:57]
        params = merge_parts(parts)
        params.trans = trans
        params.contact = params.contact.clamp(0, 1)
        return params
