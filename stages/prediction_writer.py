"""`MotionPredictionWriter`: the files `semtalk generate` writes, per dataset clip, from `semtalk predict`.

`semtalk predict -c configs/trainer.yaml -c configs/data/embedded.yaml -c configs/sparse.yaml -c configs/predict.yaml
--ckpt_path checkpoints/sparse.ckpt` runs the stage's `predict_step` (whole-sequence generation, seeded with each
clip's first frames) over the clips of the datamodule's `predict_split`; this callback writes, per clip, with the
exporters of `semtalk.export`:

- `<clip>.npz`: SMPL-X motion with BEAT2's keys and the clip's body shape (`semtalk evaluate` scores the folder
  against the dataset's `smplxflame_30/`);
- `<clip>_psi.json`: per-frame ψ and gate decisions (null in rhythm mode), β, the clip's words;
- `<clip>.bvh`: the 55-joint skeleton (`bvh: false` switches it off);
- `<clip>.mp4` / `.gif`: the stick-figure video with the clip's speech (`video: auto|mp4|gif`; off by default).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from semtalk.body.joints import FPS
from semtalk.export import body_joints_fn, ffmpeg_binary, render_video, save_psi_json, save_smplx_npz, write_bvh

VIDEO_CHOICES = ("none", "auto", "mp4", "gif")


def stage_name(module: LightningModule) -> str:
    """`BaseStage` -> `base`, `SparseStage` -> `sparse` (the `{stage}` of the output folder)."""
    name = type(module).__name__
    return (name[: -len("Stage")] if name.endswith("Stage") and len(name) > 5 else name).lower()


class MotionPredictionWriter(BasePredictionWriter):
    """Writes the predicted motion of every clip as it is generated (one batch at a time: memory stays flat).

    Args:
        output_dir: output folder; `{stage}` is replaced by the stage's name (`base`, `sparse`).
        bvh: write the BVH skeleton.
        video: `none` (default), `auto` (MP4 when an ffmpeg binary is available, else GIF), `mp4` or `gif`.
        smplx: SMPL-X model root for the BVH offsets and the video (holds `smplx/SMPLX_NEUTRAL_2020.npz`);
            default: the stage's training body model (`spec.smplx_root`), the datamodule's, else the synthetic
            stand-in with a notice.
        words: put the clip's words (its TextGrid in the dataset) in the ψ file.
    """

    def __init__(
        self,
        output_dir: str = "outputs/predict/{stage}",
        bvh: bool = True,
        video: str = "none",
        smplx: str | None = None,
        words: bool = True,
    ) -> None:
        super().__init__(write_interval="batch")
        if video not in VIDEO_CHOICES:
            raise ValueError(f"video must be one of {VIDEO_CHOICES}, got {video!r}")
        self.output_dir, self.bvh, self.video, self.smplx, self.words = output_dir, bvh, video, smplx, words
        self.out: Path | None = None
        self.written: list[dict[str, str]] = []
        self._body = None
        self._body_notice: str | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._vocab = None

    # ------------------------------------------------------------------------------------------ set-up
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.out = Path(self.output_dir.format(stage=stage_name(pl_module)))
        self.out.mkdir(parents=True, exist_ok=True)
        self.written = []

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp, self._body = None, None

    def _body_model(self, pl_module: LightningModule, trainer: Trainer):
        """The SMPL-X body of the exports: `smplx`, the stage's training body model, or the synthetic stand-in."""
        if self._body is not None:
            return self._body
        from semtalk.body.model import BodyModel, model_file

        candidates = []
        if self.smplx:
            if not model_file(self.smplx).is_file():
                raise FileNotFoundError(
                    f"{model_file(self.smplx)}: SMPL-X model not found (MotionPredictionWriter smplx): point it at the "
                    "folder that holds smplx/SMPLX_NEUTRAL_2020.npz"
                )
            candidates.append(self.smplx)
        candidates.append((pl_module.hparams.get("spec") or {}).get("smplx_root"))
        dm = getattr(trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "spec"):
            candidates.append(dm.spec.get("smplx_root"))
        for c in filter(None, candidates):
            if model_file(c).is_file():
                self._body = BodyModel(c)
                return self._body
        from semtalk.body.synthetic_model import write_synthetic_smplx

        self._tmp = tempfile.TemporaryDirectory(prefix="semtalk-smplx-")
        write_synthetic_smplx(Path(self._tmp.name), seed=0)
        self._body_notice = "no SMPL-X model found (smplx): the BVH offsets and the video use the synthetic stand-in"
        rank_zero_warn(self._body_notice)
        self._body = BodyModel(self._tmp.name)
        return self._body

    def _dataset_files(self, trainer: Trainer, clip_id: str) -> tuple[Path | None, Path | None]:
        """The clip's speech and TextGrid in the datamodule's dataset root (None where absent)."""
        root = getattr(getattr(trainer, "datamodule", None), "root", None)
        if root is None or not Path(root).is_dir():
            return None, None
        from semtalk.data.root import Beat2Root

        r = Beat2Root(root)
        wav, tg = r.audio_path(clip_id), r.textgrid_path(clip_id)
        return (wav if wav.is_file() else None), (tg if tg.is_file() else None)

    def _word_summary(self, trainer: Trainer, textgrid: Path | None, seconds: float) -> list[dict[str, Any]]:
        if not self.words or textgrid is None:
            return []
        from semtalk.data.beat2 import load_textgrid
        from semtalk.features.vocab import Vocab
        from semtalk.inference import WordTrack

        if self._vocab is None:
            cache = getattr(getattr(trainer, "datamodule", None), "cache_dir", None)
            path = Path(cache) / "vocab.json" if cache is not None else None
            self._vocab = Vocab.load_json(path) if path is not None and path.is_file() else False
        words = [w for w in load_textgrid(textgrid) if w.start < seconds]
        return WordTrack(words, self._vocab or None).summary()

    # ------------------------------------------------------------------------------------------ writing
    def write_on_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        records = prediction if isinstance(prediction, list) else [prediction]
        for record in records:
            self.written.append(self.write_clip(record, trainer, pl_module))

    def write_clip(self, record: dict[str, Any], trainer: Trainer, pl_module: LightningModule) -> dict[str, str]:
        """Write the files of one `stages.base.prediction_records` record; returns kind -> path."""
        assert self.out is not None, "setup() names the output folder"
        clip, n = record["clip_id"], int(record["poses"].shape[0])
        poses, trans, betas = record["poses"], record["trans"], record["betas"]
        written = {"npz": save_smplx_npz(self.out / f"{clip}.npz", poses, trans, record["expressions"], betas)}
        psi = record.get("psi")
        beta = record.get("beta")
        gate = None if psi is None or beta is None else psi > beta
        wav, textgrid = self._dataset_files(trainer, clip)
        notices: list[str] = []
        if self.bvh or self.video != "none":
            body = self._body_model(pl_module, trainer)
            if self._body_notice:
                notices.append(self._body_notice)
        if self.bvh:
            rest = body.shaped_rest_joints(torch.from_numpy(np.asarray(betas, np.float32))).cpu().numpy()
            mean = body.pose_mean.cpu().numpy().reshape(55, 3)
            written["bvh"] = write_bvh(self.out / f"{clip}.bvh", poses, trans, rest, mean)
        if self.video != "none":
            prefer = ("mp4" if ffmpeg_binary() else "gif") if self.video == "auto" else self.video
            rendered = render_video(self.out / clip, body_joints_fn(body, poses, trans, betas), n, psi=psi,
                                    gate=gate, audio_path=wav, prefer=prefer)  # fmt: skip
            notices += [m for m in rendered.notes if "separate wav" not in m]
            written[rendered.kind] = rendered.path
        dm = getattr(trainer, "datamodule", None)
        extra = {"clip_id": clip, "split": getattr(dm, "predict_split", None), "speaker_index": record.get("speaker"),
                 "audio": None if wav is None else str(wav), "checkpoint": getattr(trainer, "ckpt_path", None),
                 "seed": "the clip's first frames (ground truth)"}  # fmt: skip
        written["psi"] = save_psi_json(self.out / f"{clip}_psi.json", psi=psi, gate=gate,
                                       gain=np.ones(n, dtype=np.float32), beta=beta, mode=record.get("mode", "full"),
                                       words=self._word_summary(trainer, textgrid, n / FPS), notices=notices,
                                       extra=extra)  # fmt: skip
        return {k: str(v) for k, v in written.items()}

    def on_predict_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_predict_epoch_end(trainer, pl_module)
        rank_zero_info(f"wrote the motion of {len(self.written)} clips to {self.out}")
