"""`trainer.test` of the base and sparse stages writes motion for every test clip and metrics.json / metrics.md
(tiny dataset: 1 speaker x 5 clips x 8 s, tiny random encoders without emotion, tiny stages trained one step)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from motion_fixtures import train_tiny_stage1
from semtalk.data.datamodule import Beat2DataModule
from semtalk.data.root import Beat2Root
from semtalk.features.registry import load_extractor_config
from stages.base import BaseStage
from stages.sparse import SparseStage
from stages.test_report import NO_CHECKPOINT, SELECTION_LABELS, checkpoint_selection, selection_label

REPO = Path(__file__).resolve().parents[1]
TINY_GEN = dict(
    hidden=32, motion_f=16, heads=2, audio_layers=1, face_layers=1, residual_layers=1, residual_heads=2,
    motion_encoder_layers=1,
)  # fmt: skip
SPARSE_GEN = dict(
    hidden=32, motion_f=16, heads=2, semantic_layers=1, residual_layers=1, residual_heads=2, motion_encoder_layers=1,
    use_emotion=False,
)  # fmt: skip
#: metrics every report holds with a body model, speech, mean joint speeds and an FGD encoder
SCORED = ("fgd", "bc", "diversity", "face_mse", "lvd", "bc_contrast", "lipsync_z", "gesture_sync_z")


def _trainer(root: Path, **kw) -> L.Trainer:
    return L.Trainer(
        default_root_dir=root,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kw,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The dataset root (with its synthetic SMPL-X model and mean joint speeds), its cache and extractors."""
    from semtalk.body.model import BodyModel
    from semtalk.body.synthetic_model import write_synthetic_smplx
    from semtalk.data.weights import MEAN_VEL_FILE, SMPLX_FILE, compute_mean_velocity, save_npy_atomic, smplx_root_of
    from semtalk.synth.dataset import make_dataset

    base = tmp_path_factory.mktemp("report")
    root = base / "beat2"
    make_dataset(root, num_speakers=1, clips_per_speaker=5, clip_seconds=8.0, seed=3, progress=False)
    write_synthetic_smplx(smplx_root_of(root) / SMPLX_FILE, seed=0)
    mean_vel = compute_mean_velocity(root, BodyModel(smplx_root_of(root)), progress=False)
    save_npy_atomic(root / "weights" / MEAN_VEL_FILE, mean_vel)
    extractors = load_extractor_config(REPO / "configs" / "data" / "tiny.yaml")
    extractors.pop("emotion")  # the stages here run without the emotion stream
    dm = Beat2DataModule(str(root), str(base / "cache"), extractors, batch_size=8, progress=False)
    dm.prepare_data()
    return {"root": root, "cache": base / "cache", "extractors": extractors, "base": base}


def datamodule(data, **kw) -> Beat2DataModule:
    return Beat2DataModule(str(data["root"]), str(data["cache"]), data["extractors"], batch_size=8, progress=False,
                           **kw)  # fmt: skip


@pytest.fixture(scope="module")
def stage1(data):
    torch.manual_seed(0)  # the checkpoints (and the metrics below) must not depend on which tests ran before
    return train_tiny_stage1(data["base"] / "stage1")


def base_stage(stage1, dm, **kw) -> BaseStage:
    vq = {p: stage1[p] for p in ("face", "upper", "hands", "lower")}
    return BaseStage(vq, stage1["global_motion"], spec=dm.spec, generator=TINY_GEN, **kw)


def fit_one_step(stage, dm, out: Path) -> str:
    trainer = _trainer(out, max_steps=1)
    trainer.fit(stage, datamodule=dm)
    trainer.save_checkpoint(out / "stage.ckpt")
    return str(out / "stage.ckpt")


@pytest.fixture(scope="module")
def fgd_file(data):
    from semtalk.metrics.fgd_training import train_fgd_encoder

    return str(train_fgd_encoder(data["root"], data["base"] / "fgd.pt", epochs=1, batch_size=8, progress=False))


@pytest.fixture(scope="module")
def base_ckpt(data, stage1):
    torch.manual_seed(0)
    dm = datamodule(data)
    return fit_one_step(base_stage(stage1, dm), dm, data["base"] / "base")


def _check_report(out: Path, test_ids: list[str]) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_files"] == len(test_ids) and sorted(metrics["files"]) == test_ids
    assert sorted(p.stem for p in (out / "motion").glob("*.npz")) == test_ids
    for cid in test_ids:
        with np.load(out / "motion" / f"{cid}.npz") as npz:
            assert npz["poses"].shape[1] == 165 and npz["poses"].shape[0] >= metrics["files"][cid]
            assert npz["expressions"].shape == (npz["poses"].shape[0], 100) and npz["betas"].shape == (300,)
    assert metrics["frames"] == sum(metrics["files"].values()) > 120
    return metrics


def test_base_stage_test_writes_metrics(data, stage1, base_ckpt, fgd_file, tmp_path):
    dm = datamodule(data)
    test_ids = Beat2Root(data["root"]).clip_ids(("test",))
    stale = tmp_path / "test" / "motion" / "0_old_clip.npz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"a previous run")
    stage = base_stage(stage1, dm, fgd_encoder=fgd_file)
    _trainer(tmp_path).test(stage, datamodule=dm, ckpt_path=base_ckpt)
    out = tmp_path / "test"
    metrics = _check_report(out, test_ids)  # the stale clip is gone and not scored
    for key in (*SCORED, "rotation_error"):
        assert math.isfinite(metrics[key]), key
    # a one-step model may move too little for any motion beat (BC 0); BC's values are tested in test_metrics
    assert metrics["fgd"] > 0 and metrics["diversity"] > 0 and 0 <= metrics["bc"] <= 1
    assert metrics["profile"] == "semtalk2024" and metrics["stage"] == "BaseStage" and metrics["split"] == "test"
    assert metrics["checkpoint"] == base_ckpt and metrics["checkpoint_selection"] == "val split"
    assert metrics["fgd_encoder"].startswith("trained:beat2:") and metrics["fgd_encoder_file"] == fgd_file
    assert metrics["mean_vel"].endswith("weights/mean_vel_smplxflame_30.npy")
    assert metrics["body_model"] == dm.spec["smplx_root"]
    md = (out / "metrics.md").read_text()
    assert "Checkpoint selection: val split" in md and "| FGD |" in md and "trained:beat2:" in md
    assert "not an unbiased estimate" not in md


def test_selection_on_the_test_split_is_labelled(data, stage1, fgd_file, tmp_path):
    picked_on_test = datamodule(data, selection_split="test")
    picked_on_test.setup("fit")
    test_ids = Beat2Root(data["root"]).clip_ids(("test",))
    assert picked_on_test.val_dataloader().dataset.clip_ids == test_ids  # validation runs on the test split
    ckpt = fit_one_step(base_stage(stage1, picked_on_test), picked_on_test, tmp_path / "fit")
    # tested with the default datamodule: the label comes from what the checkpoint records
    dm = datamodule(data)
    stage = base_stage(stage1, dm, test_profile="corrected")
    _trainer(tmp_path / "run").test(stage, datamodule=dm, ckpt_path=ckpt)
    out = tmp_path / "run" / "test"
    metrics = _check_report(out, test_ids)
    assert metrics["checkpoint_selection"] == SELECTION_LABELS["test"] == selection_label("test")
    assert "not an unbiased estimate" in metrics["checkpoint_selection"] and metrics["profile"] == "corrected"
    assert "fgd" not in metrics and metrics["fgd_encoder"] is None  # no encoder given: FGD skipped
    md = (out / "metrics.md").read_text()
    assert "FGD not computed" in md and "**Selected on the test split" in md and "| FGD |" not in md
    # the label follows the checkpoint's record, then this datamodule's setting; weights in memory say so
    assert checkpoint_selection(ckpt, dm) == SELECTION_LABELS["test"]
    assert checkpoint_selection(tmp_path / "missing.ckpt", picked_on_test) == SELECTION_LABELS["test"]
    assert checkpoint_selection(tmp_path / "missing.ckpt", dm) == "val split"
    assert checkpoint_selection(None, picked_on_test) == NO_CHECKPOINT


def test_sparse_stage_test_writes_metrics_with_gate_accuracy(data, base_ckpt, fgd_file, tmp_path):
    dm = datamodule(data)
    stage = SparseStage(base_ckpt, spec=dm.spec, generator=SPARSE_GEN)
    ckpt = fit_one_step(stage, dm, tmp_path / "fit")
    tested = SparseStage(base_ckpt, spec=dm.spec, generator=SPARSE_GEN, fgd_encoder=fgd_file)
    _trainer(tmp_path / "run").test(tested, datamodule=dm, ckpt_path=ckpt)
    out = tmp_path / "run" / "test"
    metrics = _check_report(out, Beat2Root(data["root"]).clip_ids(("test",)))
    for key in (*SCORED, "gate_accuracy"):
        assert math.isfinite(metrics[key]), key
    assert 0 <= metrics["gate_accuracy"] <= 1 and metrics["stage"] == "SparseStage"
    assert "| Gate accuracy |" in (out / "metrics.md").read_text()


def test_bad_test_options_are_refused(data, stage1):
    dm = datamodule(data)
    with pytest.raises(ValueError, match="unknown metric profile 'paper'"):
        base_stage(stage1, dm, test_profile="paper")
    with pytest.raises(ValueError, match="selection_split must be 'val' or 'test'"):
        datamodule(data, selection_split="train")
    with pytest.raises(ValueError, match="unknown selection split"):
        selection_label("train")
