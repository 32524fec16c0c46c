"""Stage 2: the base (rhythm) generator of face, upper, hands and lower codes from speech."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from semtalk.body.parts import PART_NAMES, parts_to_latent_all
from semtalk.body.rotations import joint_rotation_error, rot6d_to_matrix
from semtalk.codec import MotionCodec
from semtalk.generation import GeneratedMotion, decode_generated, generate_codes_autoregressive
from semtalk.nn.base_generator import BaseGenerator
from semtalk.nn.compiled import compile_blocks
from semtalk.nn.rhythm import RhythmConsistencyLoss
from semtalk.schedules import check_schedule, lightning_optimizer
from stages.test_report import check_test_options, record_test_clip, write_test_report

BASE_KEY = "semtalk_base"


def generator_kwargs(
    generator: dict[str, Any] | None, spec: dict[str, Any], codec: MotionCodec, **spec_keys: str
) -> dict[str, Any]:
    """Generator keyword arguments: the configured ones, widths from the datamodule's spec (argument name =
    spec key, unless configured) and the codebook geometry of the frozen tokenizers (always)."""
    kwargs = dict(generator or {})
    for key, spec_key in spec_keys.items():
        if spec.get(spec_key):
            kwargs.setdefault(key, int(spec[spec_key]))
    kwargs.update(codebook_size=codec.codebook_size, num_quantizers=codec.num_quantizers, code_dim=codec.code_dim)
    kwargs.setdefault("audio_f", codec.code_dim)
    return kwargs


def mask_ratio(epoch: int, start: float = 0.05, span_epochs: int = 400, until: int = 130, after: float = 0.35875):
    """The masking schedule of passes 2 and 3: `start + (1 - start) epoch / span` before `until`, then `after`."""
    return start + (1.0 - start) * epoch / span_epochs if epoch < until else after


def random_mask(latent: torch.Tensor, ratio: float, spans: int = 0) -> torch.Tensor:
    """A random training mask shaped like `latent (B, T, D)`, 1 = masked: element by element with probability
    `ratio` (`spans=0`), or whole frames in runs of `spans` frames, each run masked with probability `ratio`."""
    if spans <= 0:
        return (torch.rand_like(latent) < ratio).float()
    b, t, d = latent.shape
    runs = -(-t // spans)
    hit = (torch.rand(b, runs, 1, device=latent.device) < ratio).to(latent.dtype)
    return hit.repeat_interleave(spans, dim=1)[:, :t].expand(b, t, d).contiguous()


def level_cross_entropy(
    logits: torch.Tensor, codes: torch.Tensor, weight: torch.Tensor | None = None, stale_index: bool = False
) -> torch.Tensor:
    """Sum over levels i of CE_i / (i + 1). `logits (B, T', Q, C)`, `codes (B, T', Q)`, `weight (B, T')`.

    `stale_index=True` reproduces the reference's pass-2 bug: every term reads level Q-1, which adds up to one
    level-(Q-1) cross-entropy."""
    q_levels = logits.shape[2]
    if stale_index:  # Q terms of CE_{Q-1} / Q
        logits, codes = logits[:, :, -1:], codes[:, :, -1:]
    ce = F.cross_entropy(logits.flatten(0, 2), codes.flatten(), reduction="none").view(codes.shape)  # (B, T', Q)
    if weight is not None:
        ce = ce * weight[..., None]
    per_level = ce.mean((0, 1))  # (Q,) or (1,)
    if stale_index:
        return per_level[0]
    return (per_level / torch.arange(1, q_levels + 1, device=ce.device, dtype=ce.dtype)).sum()


class BaseStage(L.LightningModule):
    """Trains `BaseGenerator` against codes of the frozen stage-1 tokenizers.

    Args:
        tokenizers: checkpoint path per part (face, upper, hands, lower) from stage 1.
        global_motion: checkpoint of the global-motion net (translation at generation); None uses the lower
            tokenizer's translation channels.
        spec: sizes from the datamodule (`Beat2DataModule.spec`): hubert_dim, beat_dim, window, seed_frames, ...
        generator: `BaseGenerator` keyword arguments (hidden, heads, layers, ...); sizes that come from the
            spec or the tokenizers are filled in.
        latent_weight, cls_weight, rhythm_weight: loss weights (reference: 3 per part /6, 1, 1).
        rhythm_frame, rhythm_sequence: the frame-level InfoNCE (the code) and the sequence-level term (the paper).
        stale_index_bug: reproduce the reference's pass-2 cross-entropy bug.
        teacher_forcing: feed ground-truth code vectors to the residual levels in training (the reference feeds
            the model's own latents).
        batched_passes: run the three training passes as one batched call of the generator (speech encoders once,
            one call per layer: 2.6x fewer operations per step); False runs them one after another, as the
            reference does (its audio BatchNorm statistics then update three times per step).
        mask_start, mask_span_epochs, mask_until, mask_after: the masking schedule of passes 2 and 3.
        mask_spans: 0 masks passes 2 and 3 element by element (the reference); n > 0 masks whole frames (every
            channel) in runs of n frames, so a masked stretch has to be inferred from the speech and the context.
        masked_passes: False trains the generation pass (pass 1) alone: a step costs about half (demo size), and
            every update is one the speech is needed for.
        compile_blocks: `torch.compile` the generator block by block when a run starts (`configure_model`); the
            parameter names, and so the checkpoints, are unchanged. Off by default: on the CPU it gains nothing
            (demo base step 709 vs 650 ms after about 1.5 min of compilation); not yet measured on a GPU.
        lr, adam_betas: Adam settings (reference: 5e-5, (0.5, 0.999); clip gradients at 0.99 in the trainer).
            lr_schedule: `constant` (the reference), or `cosine` (per-step warm-up over `warmup` of the run, then
            cosine decay; short runs).
        test_profile, fgd_encoder: what `semtalk test` scores with (`stages.test_report`): the metric profile
            (`semtalk2024` or `corrected`) and an FGD encoder file (None skips FGD). Test-time settings: not
            stored in the checkpoint's hyper-parameters, so the command line always decides them.
    """

    def __init__(
        self,
        tokenizers: dict[str, str],
        global_motion: str | None = None,
        spec: dict[str, Any] | None = None,
        generator: dict[str, Any] | None = None,
        latent_weight: float = 3.0,
        cls_weight: float = 1.0,
        rhythm_weight: float = 1.0,
        rhythm_frame: bool = True,
        rhythm_sequence: bool = True,
        stale_index_bug: bool = False,
        teacher_forcing: bool = False,
        batched_passes: bool = True,
        compile_blocks: bool = False,
        mask_start: float = 0.05,
        mask_span_epochs: int = 400,
        mask_until: int = 130,
        mask_after: float = 0.35875,
        mask_spans: int = 0,
        masked_passes: bool = True,
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
        if mask_spans < 0:
            raise ValueError(f"mask_spans must be 0 (element-wise masks) or a span length in frames, got {mask_spans}")
        check_test_options(test_profile, fgd_encoder)
        self.test_profile, self.fgd_encoder = test_profile, fgd_encoder
        spec = dict(spec or {})
        self.window = int(spec.get("window", 64))
        self.seed_frames = int(spec.get("seed_frames", 4))
        self.codec, self.tokenizer_cards = MotionCodec.from_checkpoints(
            tokenizers, global_motion, fps=spec.get("fps", 30)
        )
        gen_kwargs = generator_kwargs(
            generator,
            spec,
            self.codec,
            hubert_dim="hubert_dim",
            beat_dim="beat_dim",
            num_speakers="num_speakers",
            latent_dim="latent_all_dim",
            window="window",
        )
        self.generator = BaseGenerator(**gen_kwargs)
        self.rhythm = RhythmConsistencyLoss(frame=rhythm_frame, sequence=rhythm_sequence)
        # the default seed pose shipped with the checkpoint: mean of the training windows' seed frames
        self.register_buffer("seed_sum", torch.zeros(self.seed_frames, self.generator.latent_dim, dtype=torch.float64))
        self.register_buffer("seed_count", torch.zeros((), dtype=torch.float64))
        self.val_joint_error = MeanMetric()
        self.val_mean_pose_error = MeanMetric()
        self._accuracy: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ set-up
    def configure_model(self) -> None:
        if self.hparams.compile_blocks:
            compile_blocks(self.generator)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = torch.optim.Adam(self.generator.parameters(), lr=hp.lr, betas=tuple(hp.adam_betas))
        return lightning_optimizer(opt, hp.lr_schedule, self.trainer.estimated_stepping_batches, hp.warmup)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the tokenizers are loaded by path: their weights are not duplicated here, their hashes are recorded
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("codec.")}
        checkpoint[BASE_KEY] = {
            "tokenizers": self.tokenizer_cards,
            "window": self.window,
            "seed_frames": self.seed_frames,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(BASE_KEY, {}).get("tokenizers", {})
        for part, card in saved.items():
            now = self.tokenizer_cards.get(part, {})
            if card.get("sha256") != now.get("sha256"):
                raise ValueError(
                    f"the {part} tokenizer at {self.hparams.tokenizers.get(part)} is not the one this checkpoint was "
                    "trained with (sha256 differs): retrain stage 2 or point `tokenizers` at the original files"
                )
        state = checkpoint["state_dict"]
        for k, v in self.codec.state_dict().items():
            state.setdefault(f"codec.{k}", v)

    # ---------------------------------------------------------------- losses
    def targets(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Ground-truth codes part -> `(B, T', Q)` and per-level code vectors part -> `(B, T', Q, D)`."""
        parts = {p: batch[p].float() for p in PART_NAMES}
        codes = self.codec.encode(parts)
        return codes, {p: self.codec.level_codes(p, c) for p, c in codes.items()}

    def _code_losses(self, out, codes, vectors, weight=None, stale_index=False):
        hp = self.hparams
        latent = sum(F.mse_loss(out.latents[p], vectors[p]) for p in out.latents) * hp.latent_weight / 6.0
        cls = sum(level_cross_entropy(out.logits[p], codes[p], weight, stale_index) for p in out.logits)
        return latent, cls * hp.cls_weight

    def seed_mask(self, like: torch.Tensor) -> torch.Tensor:
        mask = torch.ones_like(like)
        mask[:, : self.seed_frames] = 0
        return mask

    def training_losses(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        codes, vectors = self.targets(batch)
        given = vectors if hp.teacher_forcing else None
        hubert, beat, latent = batch["hubert"].float(), batch["beat"].float(), batch["latent_all"].float()
        speaker = batch["speaker"].long()
        losses: dict[str, torch.Tensor] = {}
        # pass 1: generation from the seed frames; passes 2 (without the body's audio attention) and 3: random
        # element-wise masks (seed frames included). The three run as one batched pass over the generator.
        ratio = mask_ratio(self.current_epoch, hp.mask_start, hp.mask_span_epochs, hp.mask_until, hp.mask_after)
        masks, audio = [self.seed_mask(latent)], [True]
        if hp.masked_passes:
            mask = random_mask(latent, ratio, hp.mask_spans)
            masks, audio = masks + [mask, mask], audio + [False, True]
        outputs = self.generator.forward_passes(hubert, beat, latent, masks, audio, speaker, given, hp.batched_passes)
        gen = outputs[0]
        losses["latent_gen"], losses["cls_gen"] = self._code_losses(gen, codes, vectors)
        with torch.no_grad():
            self._accuracy = {p: (gen.logits[p].argmax(-1) == codes[p]).float().mean(dim=(0, 1)) for p in gen.logits}
        losses["rhythm"] = hp.rhythm_weight * (
            self.rhythm(gen.prezq["face"], gen.hubert_face) + self.rhythm(gen.prezq["hands"], gen.hubert_body)
        )
        if hp.masked_passes:
            masked, audio_masked = outputs[1:]
            losses["latent_mask"], losses["cls_mask"] = self._code_losses(
                masked, codes, vectors, None, hp.stale_index_bug
            )
            losses["latent_audio_mask"], losses["cls_audio_mask"] = self._code_losses(audio_masked, codes, vectors)
        return losses

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self.training_losses(batch)
        loss = sum(losses.values())
        bs = batch["hubert"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        for k, v in losses.items():
            self.log(f"train/{k}", v, batch_size=bs)
        for p, acc in self._accuracy.items():
            for level, a in enumerate(acc):
                self.log(f"train/code_acc_{p}_l{level}", a, batch_size=bs)
        with torch.no_grad():
            self.seed_sum += batch["latent_all"][:, : self.seed_frames].double().sum(0)
            self.seed_count += bs
        return loss

    # ------------------------------------------------------------ generation
    def default_seed(self, batch_size: int) -> torch.Tensor:
        """`(B, seed_frames, 337)` the mean training seed (rot6d re-orthonormalised downstream)."""
        seed = (self.seed_sum / self.seed_count.clamp(min=1)).float()
        return seed.expand(batch_size, *seed.shape).clone()

    def codes_of(self, part: str, level: int, indices: torch.Tensor) -> torch.Tensor:
        return self.codec.tokenizers[part].quantizer.level_codebook(level)[indices]

    def window_fn(self, speaker: torch.Tensor):
        def run(feats, latent, mask, k):
            codes = self.generator.generate_codes(feats["hubert"], feats["beat"], latent, mask, speaker, self.codes_of)
            return codes, None

        return run

    @torch.no_grad()
    def generate(
        self,
        hubert: torch.Tensor,
        beat: torch.Tensor,
        speaker: torch.Tensor,
        frames: int | None = None,
        seed_latent: torch.Tensor | None = None,
        start_trans: torch.Tensor | None = None,
    ) -> GeneratedMotion:
        """Whole-sequence generation. `hubert (B, n, Dh)`, `beat (B, n, 3)`, `speaker (B,)` -> motion of n frames.
        Seed: `seed_latent (B, 4, 337)` or the default pose; translation starts at `start_trans (B, 3)`."""
        was_training = self.generator.training
        self.generator.eval()
        feats = {"hubert": hubert.float(), "beat": beat.float()}
        result = self.run_generation(
            self.window_fn(speaker), feats, frames or hubert.shape[1], seed_latent, start_trans
        )
        self.generator.train(was_training)
        return result

    @torch.no_grad()
    def run_generation(
        self,
        window_fn,
        features: dict[str, torch.Tensor],
        frames: int,
        seed_latent: torch.Tensor | None,
        start_trans: torch.Tensor | None,
    ) -> GeneratedMotion:
        """Seed (given, or the default pose), autoregressive codes from `window_fn`, decoded to `frames` frames."""
        b = next(iter(features.values())).shape[0]
        device = next(iter(features.values())).device
        seed = seed_latent if seed_latent is not None else self.default_seed(b).to(device)
        codes, psi = generate_codes_autoregressive(
            window_fn, features, seed.float(), self.codec, frames, self.window, self.seed_frames
        )
        start = start_trans if start_trans is not None else seed[:, 0, 330:333]
        return decode_generated(self.codec, codes, psi, start, frames)

    # ------------------------------------------------------------ validation
    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> GeneratedMotion:
        """Losses and rotation errors of a whole sequence; returns its generated motion."""
        n = int(batch["hubert"].shape[1])
        n -= n % self.codec.downsample
        seq = {k: v[:, :n] for k, v in batch.items() if torch.is_tensor(v) and v.dim() >= 2 and v.shape[1] >= n}
        seq["speaker"] = batch["speaker"]
        losses = self.training_losses(seq)
        self.log("val/loss", sum(losses.values()), prog_bar=True, batch_size=1, sync_dist=True)
        # the generation pass alone: unlike val/loss it does not move with the epoch's mask ratio
        gen_loss = losses["latent_gen"] + losses["cls_gen"] + losses["rhythm"]
        self.log("val/gen_loss", gen_loss, batch_size=1, sync_dist=True)
        result = self.generate(
            seq["hubert"],
            seq["beat"],
            seq["speaker"].long(),
            n,
            seed_latent=seq["latent_all"][:, : self.seed_frames].float(),
            start_trans=seq["trans"][:, 0].float(),
        )
        gt = seq["latent_all"].float()
        self.val_joint_error.update(rotation_error(parts_to_latent_all(result.parts)[:, :n], gt))
        if batch_idx == 0:
            log_motion_preview(self, result.params, seq, "val/preview")
        mean_pose = self.default_seed(1).to(gt)[:, :1].expand_as(gt)
        self.val_mean_pose_error.update(rotation_error(mean_pose, gt))
        return result

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        record_test_clip(self, batch, batch_idx, self.validation_step(batch, batch_idx))

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, Any]]:
        """Rhythm-only whole-sequence generation of the clips of a predict batch (whole sequences, as
        `Beat2DataModule.predict_dataloader` gives them), seeded with each clip's first frames (the test protocol).
        Returns one `prediction_records` record per clip, for `stages.prediction_writer.MotionPredictionWriter`."""
        n = int(batch["hubert"].shape[1])
        n -= n % self.codec.downsample
        result = self.generate(
            batch["hubert"][:, :n],
            batch["beat"][:, :n],
            batch["speaker"].long(),
            n,
            seed_latent=batch["latent_all"][:, : self.seed_frames].float(),
            start_trans=batch["trans"][:, 0].float(),
        )
        return prediction_records(batch, result, mode="rhythm", beta=None)

    def on_test_epoch_end(self) -> None:
        write_test_report(
            self,
            {"rotation_error": float(self.val_joint_error.compute())} if self.val_joint_error.update_count else None,
        )
        self.on_validation_epoch_end()

    def on_validation_epoch_end(self) -> None:
        err, base = self.val_joint_error.compute(), self.val_mean_pose_error.compute()
        self.log("val/rotation_error", err)
        self.log("val/mean_pose_rotation_error", base)
        self.val_joint_error.reset()
        self.val_mean_pose_error.reset()


def prediction_records(
    batch: dict[str, Any], result: GeneratedMotion, mode: str, beta: float | None
) -> list[dict[str, Any]]:
    """One record per clip of a predict batch (numpy, on the CPU): `clip_id`, `poses (n, 165)`, `trans (n, 3)`,
    `expressions (n, 100)`, `psi (n,)` (None in rhythm mode), `betas (300,)`, `speaker` (embedding index), `mode`,
    `beta`."""
    params = result.params
    ids = batch.get("clip_id") or [f"clip_{i}" for i in range(params.poses.shape[0])]
    records = []
    for i, clip_id in enumerate(ids):
        betas = batch["betas"][i] if "betas" in batch else torch.zeros(300)  # the mean shape
        records.append(
            {
                "clip_id": str(clip_id),
                "poses": params.poses[i].float().cpu().numpy(),
                "trans": params.trans[i].float().cpu().numpy(),
                "expressions": params.expressions[i].float().cpu().numpy(),
                "psi": None if result.psi is None else result.psi[i].float().cpu().numpy(),
                "betas": betas.float().cpu().numpy(),
                "speaker": int(batch["speaker"][i]),
                "mode": mode,
                "beta": beta,
            }
        )
    return records


def log_motion_preview(stage: L.LightningModule, params, seq: dict[str, torch.Tensor], tag: str) -> None:
    """Stick figures of the generated and the ground-truth motion of a validation clip, to TensorBoard."""
    logger = stage.logger
    smplx_root = (stage.hparams.get("spec") or {}).get("smplx_root")
    if logger is None or not hasattr(logger.experiment, "add_image") or not smplx_root:
        return
    from semtalk.body.model import BodyModel
    from semtalk.render import skeleton_panel

    if getattr(stage, "_preview_body", None) is None:
        stage._preview_body = BodyModel(smplx_root)
    body = stage._preview_body
    n = params.poses.shape[1]
    betas = seq["betas"][0].float().cpu() if "betas" in seq else torch.zeros(300)
    gen = body.joints(params.poses[0].float().cpu(), betas).numpy()
    gt = body.joints(seq["poses"][0, :n].float().cpu(), betas).numpy() if "poses" in seq else None
    frames = [int(f) for f in torch.linspace(0, n - 1, 6)]
    rows = [("generated", gen)] + ([("ground truth", gt)] if gt is not None else [])
    image = skeleton_panel(rows, frames)
    logger.experiment.add_image(tag, image, stage.global_step, dataformats="HWC")


def rotation_error(pred_latent: torch.Tensor, gt_latent: torch.Tensor) -> torch.Tensor:
    """Mean rotation angle (radians) over the 53 modelled joints between two `(B, T, 337)` motions."""
    pred = rot6d_to_matrix(pred_latent[..., :330].reshape(*pred_latent.shape[:-1], 55, 6))
    gt = rot6d_to_matrix(gt_latent[..., :330].reshape(*gt_latent.shape[:-1], 55, 6))
    return joint_rotation_error(pred, gt).mean()
