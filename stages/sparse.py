"""Stage 3: the sparse (semantic) generator with the Sem-gate, trained beside a frozen base, and the fusion."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import BinaryAccuracy

from semtalk.generation import GeneratedMotion
from semtalk.nn.compiled import compile_blocks
from semtalk.nn.sparse_generator import BODY_PARTS, SparseGenerator, fuse_codes
from semtalk.schedules import check_schedule, lightning_optimizer
from semtalk.tokenizer import file_sha256, load_checkpoint
from stages.base import (
    BASE_KEY,
    BaseStage,
    generator_kwargs,
    level_cross_entropy,
    log_motion_preview,
    mask_ratio,
    prediction_records,
    random_mask,
)
from stages.test_report import check_test_options, record_test_clip, write_test_report

SPARSE_KEY = "semtalk_sparse"


def token_scores(sem: torch.Tensor, frames_per_token: int = 4) -> torch.Tensor:
    """`(B, T)` per-frame semantic scores -> `(B, T/4)` per-token means (the loss weight W_l)."""
    b, t = sem.shape
    return sem[:, : t - t % frames_per_token].reshape(b, -1, frames_per_token).mean(-1)


class SparseStage(L.LightningModule):
    """Trains `SparseGenerator` and its Sem-gate on top of a frozen `BaseStage` checkpoint.

    Args:
        base: path of the stage-2 checkpoint (its tokenizers are loaded by their own paths).
        spec: sizes from the datamodule (`Beat2DataModule.spec`).
        generator: `SparseGenerator` keyword arguments (sizes from the spec and the tokenizers are filled in);
            `use_emotion` and `blend_base` switch the paper's emotion stream and psi-blend (True) against the
            released code's behaviour (False).
        latent_weight, cls_weight, gate_weight: loss weights.
        loss_weighting: W_l, weight reconstruction and code losses per token by the annotated semantic score
            (the paper and the code); False weights every token equally.
        weight_by: what W_l weighs a token by: `score` (the annotated semantic score, the paper) or `presence` (1 on
            every annotated token, 0 elsewhere). Where the score is fixed per class (the embedded dataset, and
            BEAT2's levels), `score` makes the highest-scored class the sparse model's default gesture.
        feature_weighting: W_f, the generator's `feature_weighting` (multiply the semantic features by psi); None
            keeps the generator's setting (True). A stage-level switch so that a config layer can set it without
            restating the `generator` mapping (YAML layers replace mappings).
        gate_every_pass: add the gate cross-entropy in all three passes; False adds it once (the code computes it
            in every pass but adds it only in the second).
        beta: psi threshold of the fusion at generation.
        teacher_forcing, batched_passes, compile_blocks, mask_*, masked_passes: as in `BaseStage`.
        init_from_base: start the motion encoder, body trunk and code predictors from the frozen base generator's
            weights (same widths required) instead of a random initialisation (SemTalk trains them from scratch).
        lr, adam_betas: Adam settings.
            lr_schedule: `constant` (the reference), or `cosine` (per-step warm-up over `warmup` of the run, then
            cosine decay; short runs).
        test_profile, fgd_encoder: what `semtalk test` scores with, as in `BaseStage` (not stored in the
            checkpoint's hyper-parameters).
    """

    def __init__(
        self,
        base: str,
        spec: dict[str, Any] | None = None,
        generator: dict[str, Any] | None = None,
        latent_weight: float = 3.0,
        cls_weight: float = 1.0,
        gate_weight: float = 1.0,
        loss_weighting: bool = True,
        weight_by: str = "score",
        feature_weighting: bool | None = None,
        gate_every_pass: bool = True,
        beta: float = 0.5,
        teacher_forcing: bool = False,
        batched_passes: bool = True,
        compile_blocks: bool = False,
        mask_start: float = 0.05,
        mask_span_epochs: int = 400,
        mask_until: int = 130,
        mask_after: float = 0.35875,
        masked_passes: bool = True,
        init_from_base: bool = False,
        lr: float = 5e-5,
        adam_betas: tuple[float, float] = (0.5, 0.999),
        lr_schedule: str = "constant",
        warmup: float = 0.05,
        test_profile: str = "semtalk2024",
        fgd_encoder: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["test_profile", "fgd_encoder"])
        check_schedule(lr_schedule)
        if weight_by not in ("score", "presence"):
            raise ValueError(f"weight_by must be 'score' or 'presence', got {weight_by!r}")
        check_test_options(test_profile, fgd_encoder)
        self.test_profile, self.fgd_encoder = test_profile, fgd_encoder
        if BASE_KEY not in load_checkpoint(base):  # weights_only; a file that cannot be read is named
            raise ValueError(
                f"{base}: not a stage-2 (base) checkpoint (no '{BASE_KEY}' entry). Fix: set `base` to the checkpoint "
                "the base stage exported (checkpoints/base.ckpt, `make train-base`)"
            )
        self.base = BaseStage.load_from_checkpoint(base, map_location="cpu", weights_only=True)
        self.base.freeze()
        self.base_sha256 = file_sha256(base)
        spec = dict(spec or {})
        kw = generator_kwargs(
            generator,
            spec,
            self.base.codec,
            hubert_dim="hubert_dim",
            vocab_size="vocab_size",
            clip_dim="clip_dim",
            emotion_dim="emotion_dim",
            num_speakers="num_speakers",
            latent_dim="latent_all_dim",
            window="window",
            word_dim="word_embedding_dim",
        )
        if feature_weighting is not None and kw.setdefault("feature_weighting", feature_weighting) != feature_weighting:
            raise ValueError(
                "feature_weighting is set twice with different values (the stage's and generator.feature_weighting): "
                "set it in one place"
            )
        self.generator = SparseGenerator(**kw)
        if spec.get("word_embeddings") and kw.get("word_dim") == spec.get("word_embedding_dim"):
            import numpy as np

            self.generator.set_word_embeddings(torch.from_numpy(np.load(spec["word_embeddings"])))
        if init_from_base:
            self.generator.init_from_base(self.base.generator)
        self.window, self.seed_frames = self.base.window, self.base.seed_frames
        self.val_gate = BinaryAccuracy()
        self.val_loss = MeanMetric()
        self.val_gen_loss = MeanMetric()

    @property
    def codec(self):
        return self.base.codec

    def train(self, mode: bool = True) -> SparseStage:
        super().train(mode)
        self.base.eval()  # frozen, whatever Lightning asks
        return self

    # ------------------------------------------------------------------ set-up
    def configure_model(self) -> None:
        if self.hparams.compile_blocks:
            compile_blocks(self.generator)

    def configure_optimizers(self) -> Any:
        params = [p for p in self.generator.parameters() if p.requires_grad]
        hp = self.hparams
        opt = torch.optim.Adam(params, lr=hp.lr, betas=tuple(hp.adam_betas))
        return lightning_optimizer(opt, hp.lr_schedule, self.trainer.estimated_stepping_batches, hp.warmup)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("base.")}
        checkpoint[SPARSE_KEY] = {"base_sha256": self.base_sha256, "beta": self.hparams.beta}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(SPARSE_KEY, {}).get("base_sha256")
        if saved is not None and saved != self.base_sha256:
            raise ValueError(
                f"the base checkpoint {self.hparams.base} is not the one this sparse checkpoint was trained with "
                "(sha256 differs): retrain stage 3 or point `base` at the original file"
            )
        state = checkpoint["state_dict"]
        for k, v in self.base.state_dict().items():
            state.setdefault(f"base.{k}", v)

    # ---------------------------------------------------------------- losses
    def _inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        emotion = batch.get("emotion")
        return {
            "words": batch["words"].long(),
            "clip": batch["clip_text"].float(),
            "hubert": batch["hubert"].float(),
            "speaker": batch["speaker"].long(),
            "emotion": emotion.float() if emotion is not None and self.generator.use_emotion else None,
        }

    def _code_losses(self, out, codes, vectors, weight):
        hp = self.hparams
        latent = 0.0
        for p in BODY_PARTS:
            err = (out.latents[p] - vectors[p]).pow(2).mean(dim=(2, 3))  # (B, T')
            latent = latent + (err.mean() if weight is None else (err * weight).mean())
        cls = sum(level_cross_entropy(out.logits[p], codes[p], weight) for p in BODY_PARTS)
        return latent * hp.latent_weight / 6.0, cls * hp.cls_weight

    def training_losses(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The three passes. Returns the losses and the pass-1 psi `(B, T')`."""
        hp = self.hparams
        codes, vectors = self.base.targets(batch)
        given = vectors if hp.teacher_forcing else None
        x = self._inputs(batch)
        latent = batch["latent_all"].float()
        seed_mask = self.base.seed_mask(latent)
        sem_tok = token_scores(batch["sem"].float(), self.codec.downsample)
        weight = None
        if hp.loss_weighting:
            weight = sem_tok if hp.get("weight_by", "score") == "score" else (sem_tok > 0).to(sem_tok.dtype)
        gate_target = (sem_tok > 0).long()
        base_latents = None
        if self.generator.blend_base:
            with torch.no_grad():  # the frozen base runs once per step
                base_latents = self.base.generator.forward_latents(
                    batch["hubert"].float(), batch["beat"].float(), latent, seed_mask, x["speaker"]
                )
        losses: dict[str, torch.Tensor] = {}
        ratio = mask_ratio(self.current_epoch, hp.mask_start, hp.mask_span_epochs, hp.mask_until, hp.mask_after)
        masks, audio, names = [seed_mask], [True], ["gen"]
        if hp.get("masked_passes", True):
            mask = random_mask(latent, ratio)
            masks, audio, names = masks + [mask, mask], audio + [False, True], names + ["mask", "audio_mask"]
        outs = self.generator.forward_passes(
            x["words"], x["clip"], x["hubert"], latent, masks, audio, x["speaker"],
            x["emotion"], base_latents, given, batched=hp.batched_passes,
        )  # fmt: skip
        psi = None
        for name, out in zip(names, outs):
            losses[f"latent_{name}"], losses[f"cls_{name}"] = self._code_losses(out, codes, vectors, weight)
            if hp.gate_every_pass or name == "mask" or len(names) == 1:
                gate = F.cross_entropy(out.gate_logits.flatten(0, 1), gate_target.flatten())
                losses[f"gate_{name}"] = hp.gate_weight * gate
            if psi is None:
                psi = out.psi
        return losses, psi

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses, psi = self.training_losses(batch)
        loss = sum(losses.values())
        bs = batch["hubert"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for k, v in losses.items():
            self.log(f"train/{k}", v, batch_size=bs)
        target = token_scores(batch["sem"].float(), self.codec.downsample) > 0
        self.log("train/gate_accuracy", ((psi > self.hparams.beta) == target).float().mean(), batch_size=bs)
        return loss

    # ------------------------------------------------------------ generation
    def window_fn(
        self,
        speaker: torch.Tensor,
        clip: torch.Tensor,
        beta: float,
        psi_scale=None,
        mode: str = "full",
        psi_override=None,
        observe=None,
    ):
        """One fused window. `clip (B, G, Dc)` has one sentence feature per generation window; `psi_override`:
        optional `f(window, tokens) -> (B, tokens)` replacing the gate's psi (W_f, the blend and the fusion);
        `observe`: optional `f(window, base_codes, fused_codes, psi)` called with every window's codes."""
        base = self.base

        def run(feats, latent, mask, k):
            # one pass of the base encoder gives its codes and the latents the sparse generator blends with
            base_codes, base_latents = base.generator.generate_codes_and_latents(
                feats["hubert"], feats["beat"], latent, mask, speaker, base.codes_of
            )
            if mode == "rhythm":
                return base_codes, None
            if not self.generator.blend_base:
                base_latents = None
            emotion = feats.get("emotion") if self.generator.use_emotion else None
            override = None
            if psi_override is not None:
                tokens = feats["hubert"].shape[1] // self.codec.downsample
                override = psi_override(k, tokens).to(feats["hubert"])
            sparse_codes, psi = self.generator.generate_codes(
                feats["words"],
                clip[:, min(k, clip.shape[1] - 1)],
                feats["hubert"],
                latent,
                mask,
                speaker,
                emotion,
                base_latents,
                base.codes_of,
                psi_override=override,
            )
            if psi_scale is not None:
                psi = (psi * psi_scale(k, psi.shape[1])).clamp(0, 1)
            fused = fuse_codes(base_codes, sparse_codes, psi, beta)
            if observe is not None:
                observe(k, base_codes, fused, psi)
            return fused, psi

        return run

    @torch.no_grad()
    def generate(
        self,
        features: dict[str, torch.Tensor],
        clip: torch.Tensor,
        speaker: torch.Tensor,
        frames: int | None = None,
        seed_latent: torch.Tensor | None = None,
        start_trans: torch.Tensor | None = None,
        beta: float | None = None,
        psi_scale=None,
        mode: str = "full",
        psi_override=None,
    ) -> GeneratedMotion:
        """Fused whole-sequence generation.

        Args:
            features: `hubert (B, n, Dh)`, `beat (B, n, 3)`, `words (B, n)`, `emotion (B, n, De)` (optional).
            clip: `(B, G, Dc)` CLIP sentence feature of each generation window (or `(B, Dc)` for all).
            speaker: `(B,)`; frames: n (default: the features' length); seed_latent, start_trans: see BaseStage.
            beta: psi threshold (default: the configured one); psi_scale: optional `f(window, tokens) -> (B, tokens)`
                gain on psi (emphasis control); mode: `full` or `rhythm` (base only); psi_override: optional
                `f(window, tokens) -> (B, tokens)` psi used instead of the gate's (e.g. random psi).
        """
        was = self.generator.training
        self.generator.eval()
        clip = clip[:, None] if clip.dim() == 2 else clip
        beta = self.hparams.beta if beta is None else beta
        feats = {k: (v.float() if v.is_floating_point() else v) for k, v in features.items()}
        window_fn = self.window_fn(speaker, clip.float(), beta, psi_scale, mode, psi_override)
        result = self.base.run_generation(
            window_fn, feats, frames or features["hubert"].shape[1], seed_latent, start_trans
        )
        self.generator.train(was)
        return result

    # ------------------------------------------------------------ validation
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> GeneratedMotion:
        """Gate accuracy and windowed losses of a whole sequence; returns its generated motion."""
        n = int(batch["hubert"].shape[1])
        n -= n % self.codec.downsample
        feats = {k: batch[k][:, :n] for k in ("hubert", "beat", "words", "emotion") if k in batch}
        clip = batch["clip_text"]
        result = self.generate(
            feats,
            clip,
            batch["speaker"].long(),
            n,
            seed_latent=batch["latent_all"][:, : self.seed_frames].float(),
            start_trans=batch["trans"][:, 0].float(),
        )
        target = token_scores(batch["sem"][:, :n].float(), self.codec.downsample) > 0
        psi_tok = result.psi[:, :: self.codec.downsample][:, : target.shape[1]]
        self.val_gate.update(psi_tok > self.hparams.beta, target)
        if batch_idx == 0 and self.logger is not None and hasattr(self.logger.experiment, "add_image"):
            from semtalk.render import psi_plot

            image = psi_plot(result.psi[0].cpu().numpy(), batch["sem"][0, :n].cpu().numpy(), self.hparams.beta)
            self.logger.experiment.add_image("val/psi", image, self.global_step, dataformats="HWC")
            log_motion_preview(self, result.params, batch, "val/preview")
        # the training objective on the sequence cut into windows, for checkpoint selection
        w = self.window
        if n >= w:
            k = n // w
            win = {
                key: batch[key][:, : k * w].reshape(k, w, *batch[key].shape[2:])
                for key in ("hubert", "beat", "words", "sem", "latent_all", "emotion", *self.codec.tokenizers)
                if key in batch
            }
            win["speaker"] = batch["speaker"].expand(k)
            step = w - self.seed_frames
            idx = torch.tensor([min(j * w // step, clip.shape[1] - 1) for j in range(k)])
            win["clip_text"] = clip[0, idx] if clip.dim() == 3 else clip.expand(k, -1)
            losses, _ = self.training_losses(win)
            self.val_loss.update(sum(losses.values()))
            # the generation pass alone (codes and gate): unlike val/loss it does not move with the mask ratio
            self.val_gen_loss.update(losses["latent_gen"] + losses["cls_gen"] + losses.get("gate_gen", 0.0))
        return result

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        record_test_clip(self, batch, batch_idx, self.validation_step(batch, batch_idx))

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Fused whole-sequence generation of the clips of a predict batch (whole sequences), seeded with each
        clip's first frames (the test protocol); one `stages.base.prediction_records` record per clip."""
        n = int(batch["hubert"].shape[1])
        n -= n % self.codec.downsample
        feats = {k: batch[k][:, :n] for k in ("hubert", "beat", "words", "emotion") if k in batch}
        result = self.generate(
            feats,
            batch["clip_text"],
            batch["speaker"].long(),
            n,
            seed_latent=batch["latent_all"][:, : self.seed_frames].float(),
            start_trans=batch["trans"][:, 0].float(),
        )
        return prediction_records(batch, result, mode="full", beta=float(self.hparams.beta))

    def on_test_epoch_end(self) -> None:
        write_test_report(
            self, {"gate_accuracy": float(self.val_gate.compute())} if self.val_gate.update_count else None
        )
        self.on_validation_epoch_end()

    def on_validation_epoch_end(self) -> None:
        self.log("val/gate_accuracy", self.val_gate.compute(), prog_bar=True)
        if self.val_loss.update_count:
            self.log("val/loss", self.val_loss.compute())
            self.log("val/gen_loss", self.val_gen_loss.compute())
        self.val_gate.reset()
        self.val_loss.reset()
        self.val_gen_loss.reset()
