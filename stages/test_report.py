"""What `semtalk test` writes: motion for every clip of the test split, scored by `evaluate_folder`.

    semtalk test -c configs/trainer.yaml -c configs/data/embedded.yaml -c configs/base.yaml \
        --ckpt_path checkpoints/base.ckpt [--model.init_args.fgd_encoder checkpoints/fgd.pt] \
        [--model.init_args.test_profile corrected]

(the same with configs/sparse.yaml and the sparse checkpoint). Each test clip is generated over its whole sequence,
seeded with its first frames as in the published protocol, and written as a BEAT2-format npz to
`<log dir>/test/motion/<clip>.npz`. At the end of the test epoch the folder is scored against the dataset's
`smplxflame_30/` with `semtalk.metrics.evaluate.evaluate_folder`: speech from `wave16k/`, the body model of the
stage's spec (`smplx_root`), BC's mean joint speeds from the dataset's `weights/mean_vel_smplxflame_30.npy`, and
FGD when an encoder file is given (skipped otherwise, and the table says so). `metrics.json` and `metrics.md` go
to `<log dir>/test/` and state how the checkpoint was selected: `"val split"`, or a warning label when it was
selected on the test split (`Beat2DataModule(selection_split="test")`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from semtalk.atomic import write_text_atomic
from semtalk.data.root import Beat2Root
from semtalk.data.weights import MEAN_VEL_FILE, SMPLX_FILE, smplx_root_of
from semtalk.export import save_smplx_npz
from semtalk.generation import GeneratedMotion
from semtalk.metrics.profiles import get_profile
from semtalk.metrics.tables import metrics_table, scaled

#: the `checkpoint_selection` entry of metrics.json for each `Beat2DataModule.selection_split`
SELECTION_LABELS: dict[str, str] = {
    "val": "val split",
    "test": "test split (selected on the test split itself: these numbers are not an unbiased estimate)",
}
#: the entry when the weights tested are the ones in memory, not a checkpoint file
NO_CHECKPOINT = "none (the weights in memory, not a selected checkpoint)"
REPORT_DIR = "test"


def selection_label(selection_split: str) -> str:
    """`"val"` -> `"val split"`; `"test"` -> a label saying the numbers are not an unbiased estimate."""
    try:
        return SELECTION_LABELS[selection_split]
    except KeyError:
        raise ValueError(
            f"unknown selection split {selection_split!r}; choose one of {sorted(SELECTION_LABELS)}"
        ) from None


def recorded_selection_split(ckpt_path: str | Path) -> str | None:
    """The `selection_split` the checkpoint's datamodule was configured with (`"val"` for checkpoints that
    predate the option), or None when the file records no datamodule."""
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # a checkpoint holding pickled objects: its record cannot be read safely
        rank_zero_warn(f"could not read the datamodule record of {ckpt_path} ({type(exc).__name__}); "
                       "the checkpoint-selection label follows this run's datamodule")  # fmt: skip
        return None
    hparams = ckpt.get("datamodule_hyper_parameters") if isinstance(ckpt, Mapping) else None
    if not isinstance(hparams, Mapping):
        return None
    return str(hparams.get("selection_split", "val"))


def checkpoint_selection(ckpt_path: str | Path | None, datamodule: Any) -> str:
    """How the tested weights were chosen: from the checkpoint's record of its datamodule, else this datamodule's
    `selection_split`; `NO_CHECKPOINT` when no checkpoint file was loaded."""
    if not ckpt_path:
        return NO_CHECKPOINT
    split = recorded_selection_split(ckpt_path) if Path(ckpt_path).is_file() else None
    return selection_label(split or getattr(datamodule, "selection_split", "val"))


def check_test_options(test_profile: str, fgd_encoder: str | None) -> None:
    """Reject an unknown metric profile at construction time (the FGD file is checked when testing starts)."""
    get_profile(test_profile)
    if fgd_encoder is not None and not str(fgd_encoder).strip():
        raise ValueError("fgd_encoder is an empty string; pass a weights file (semtalk train-fgd) or null")


class TestReport:
    """Collects the generated test clips of one `trainer.test` run and scores them at its end.

    Args:
        stage: the LightningModule under test; it needs `test_profile` and `fgd_encoder` attributes and a
            trainer whose datamodule has a BEAT2-format `root` (e.g. `Beat2DataModule`).
    """

    __test__ = False  # not a pytest class

    def __init__(self, stage: L.LightningModule) -> None:
        trainer = stage.trainer
        self.root = Beat2Root(trainer.datamodule.root)
        self.out = Path(trainer.log_dir or trainer.default_root_dir) / REPORT_DIR
        self.motion_dir = self.out / "motion"
        self.profile = get_profile(stage.test_profile)
        self.fgd_path = stage.fgd_encoder
        self.fgd = None
        if self.fgd_path:  # fails before any clip is generated when the file is wrong
            from semtalk.metrics.fgd_training import load_fgd_encoder_file

            self.fgd = load_fgd_encoder_file(self.fgd_path)
        if trainer.is_global_zero:  # a previous run's clips must not be scored with this one's
            for stale in self.motion_dir.glob("*.npz"):
                stale.unlink()
        trainer.strategy.barrier()
        self.clips = 0

    @classmethod
    def for_stage(cls, stage: L.LightningModule) -> TestReport | None:
        """A report for this test run, or None (with a warning) when the data have no BEAT2 root to score against."""
        datamodule = getattr(stage.trainer, "datamodule", None)
        if getattr(datamodule, "root", None) is None:
            rank_zero_warn(
                "the test data come without a BEAT2-format dataset root (use Beat2DataModule): no metrics.json is "
                "written, only the logged losses"
            )
            return None
        return cls(stage)

    def add(self, batch: Mapping[str, Any], result: GeneratedMotion) -> list[Path]:
        """Write each clip of a test batch as `motion/<clip_id>.npz` (BEAT2 keys, the clip's body shape)."""
        ids = batch.get("clip_id")
        if ids is None:
            raise ValueError("test batches need `clip_id` to match the ground truth (Beat2DataModule gives it)")
        ids = [ids] if isinstance(ids, str) else list(ids)
        params = result.params
        paths = []
        for i, clip_id in enumerate(ids):
            betas = batch["betas"][i].float().cpu().numpy() if "betas" in batch else None
            paths.append(
                save_smplx_npz(
                    self.motion_dir / f"{clip_id}.npz",
                    params.poses[i].float().cpu().numpy(),
                    params.trans[i].float().cpu().numpy(),
                    params.expressions[i].float().cpu().numpy(),
                    betas,
                )
            )
        self.clips += len(ids)
        return paths

    def _mean_vel(self, body) -> tuple[Any, str]:
        path = self.root.weights_dir / MEAN_VEL_FILE
        if path.is_file():
            return path, str(path)
        from semtalk.data.weights import compute_mean_velocity

        rank_zero_warn(f"{path} is missing: BC uses mean joint speeds computed from {self.root.root}/smplxflame_30")
        return compute_mean_velocity(self.root.root, body, progress=False), f"computed from {self.root.root}"

    def finish(self, stage: L.LightningModule, extra: Mapping[str, float] | None = None) -> dict | None:
        """Score the written clips and write `metrics.json` and `metrics.md` (rank 0; other ranks return None)."""
        from semtalk.body.face_mesh import FaceMeshBody
        from semtalk.body.model import BodyModel
        from semtalk.metrics.evaluate import evaluate_folder

        trainer = stage.trainer
        trainer.strategy.barrier()  # every rank has written its clips
        if not trainer.is_global_zero:
            return None
        spec = stage.hparams.get("spec") or {}
        smplx_root = Path(spec.get("smplx_root") or smplx_root_of(self.root.root))
        if not (smplx_root / SMPLX_FILE).is_file():
            raise FileNotFoundError(
                f"no SMPL-X model at {smplx_root / SMPLX_FILE} (the spec's smplx_root): the test metrics need the "
                "body model the data were built with (`semtalk make-smplx` writes the synthetic stand-in)"
            )
        body = FaceMeshBody(BodyModel(smplx_root))  # the face metrics' jaw-only meshes take its fast path
        mean_vel, mean_vel_source = self._mean_vel(body)
        results = evaluate_folder(
            self.motion_dir,
            self.root.root / "smplxflame_30",
            audio_dir=self.root.root / "wave16k",
            profile=self.profile,
            body_model=body,
            fgd_encoder=self.fgd,
            mean_vel=mean_vel,
        )
        datamodule = trainer.datamodule
        ckpt = trainer.ckpt_path
        extra = {k: float(v) for k, v in (extra or {}).items()}
        results.update(extra)
        results["scaled"].update(scaled(extra))
        results.update(
            stage=type(stage).__name__,
            dataset=str(self.root.root),
            split=str(getattr(datamodule, "test_split", "test")),
            checkpoint=str(ckpt) if ckpt else None,
            checkpoint_selection=checkpoint_selection(ckpt, datamodule),
            fgd_encoder_file=str(self.fgd_path) if self.fgd_path else None,
            body_model=str(smplx_root),
            mean_vel=mean_vel_source,
            motion_dir=str(self.motion_dir),
        )
        write_text_atomic(self.out / "metrics.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
        write_text_atomic(self.out / "metrics.md", report_markdown(results))
        return results


def report_markdown(results: Mapping[str, Any]) -> str:
    """`metrics.md`: what was tested and how the checkpoint was chosen, then the metrics table."""
    lines = [
        f"# Test metrics: {results['stage']}, {results['split']} split of {results['dataset']}",
        "",
        f"Clips: {results['num_files']} ({results['frames']} frames scored)",
        f"Checkpoint: `{results['checkpoint']}`" if results.get("checkpoint") else "Checkpoint: none",
        f"Checkpoint selection: {results['checkpoint_selection']}",
        "",
    ]
    if results["checkpoint_selection"] == SELECTION_LABELS["test"]:
        lines += ["**Selected on the test split: not an unbiased estimate of test performance.**", ""]
    return "\n".join([*lines, metrics_table(results, results["profile"], results.get("fgd_encoder"))])


def record_test_clip(stage: L.LightningModule, batch: Mapping[str, Any], batch_idx: int, result: GeneratedMotion):
    """Call from `test_step` with the clip's generated motion; the first batch starts a new report."""
    if batch_idx == 0 or not hasattr(stage, "_test_report"):
        stage._test_report = TestReport.for_stage(stage)
    if stage._test_report is not None:
        stage._test_report.add(batch, result)


def write_test_report(stage: L.LightningModule, extra: Mapping[str, float] | None = None) -> dict | None:
    """Call from `on_test_epoch_end`: scores the run's clips and writes metrics.json / metrics.md. `extra`:
    further metrics of the stage (e.g. `gate_accuracy`). Returns the results on rank 0."""
    report = getattr(stage, "_test_report", None)
    if hasattr(stage, "_test_report"):
        del stage._test_report
    return report.finish(stage, extra) if report is not None else None
