"""`semtalk predict` with `MotionPredictionWriter`, and MP4 videos with sound without a system ffmpeg.

One module fixture lays out a tiny project (relative checkpoint paths, as `make demo` does): a 1-speaker embedded
dataset of three 5 s clips (train, val, test), its feature cache with the tiny extractors, stage 1 trained for one
step, base and sparse stages trained for one step, and YAML layers for them. The predict runs go through the
LightningCLI with the repository's `configs/trainer.yaml` and `configs/predict.yaml`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from semtalk.data.datamodule import Beat2DataModule
from semtalk.data.errors import DataError
from semtalk.export import ffmpeg_binary, read_bvh, render_video

REPO = Path(__file__).resolve().parents[1]
GEN = dict(hidden=32, motion_f=16, heads=2, residual_layers=1, residual_heads=2, motion_encoder_layers=1)
NPZ_KEYS = {"poses", "trans", "betas", "expressions", "model", "gender", "mocap_frame_rate"}


@contextlib.contextmanager
def _cwd(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _datamodule(**kw) -> Beat2DataModule:
    return Beat2DataModule("data/embedded", "data/cache/embedded", "extractors.yaml", device="cpu", progress=False,
                           **kw)  # fmt: skip


def _cli(project: Path, *argv: str):
    from semtalk.lightning_cli import run_cli

    common = ["-c", str(REPO / "configs" / "trainer.yaml"), "-c", "data.yaml", "--trainer.accelerator", "cpu",
              "--trainer.enable_progress_bar", "false"]  # fmt: skip
    with _cwd(project):
        return run_cli([argv[0], *common, *argv[1:]])


@pytest.fixture(scope="module")
def project(tmp_path_factory, smplx_root):
    """A project folder: `data/embedded`, `data/cache/embedded`, `checkpoints/`, and the `data.yaml`, `base.yaml`,
    `sparse.yaml` layers naming them by relative paths; base and sparse trained for one step by `semtalk fit`."""
    from motion_fixtures import train_tiny_stage1
    from semtalk.synth.dataset import make_dataset

    root = tmp_path_factory.mktemp("predict_project")
    extractors = yaml.safe_load((REPO / "configs" / "data" / "tiny.yaml").read_text())
    extractors["motion"]["body_model_root"] = str(smplx_root)
    with _cwd(root):
        Path("extractors.yaml").write_text(yaml.safe_dump(extractors))
        make_dataset("data/embedded", num_speakers=1, clips_per_speaker=3, clip_seconds=5, progress=False)
        _datamodule().prepare_data()
        s1 = train_tiny_stage1(Path("checkpoints"), steps=1)
        data = {"class_path": "semtalk.data.datamodule.Beat2DataModule",
                "init_args": {"root": "data/embedded", "cache_dir": "data/cache/embedded",
                              "extractors": "extractors.yaml", "device": "cpu", "progress": False}}  # fmt: skip
        Path("data.yaml").write_text(yaml.safe_dump({"data": data}))
        vq = {p: s1[p] for p in ("face", "upper", "hands", "lower")}
        base = {"class_path": "stages.base.BaseStage",
                "init_args": {"tokenizers": vq, "global_motion": s1["global_motion"],
                              "generator": dict(GEN, audio_layers=1, face_layers=1)}}  # fmt: skip
        Path("base.yaml").write_text(yaml.safe_dump({"model": base}))
        sparse = {
            "class_path": "stages.sparse.SparseStage",
            "init_args": {"base": "checkpoints/base.ckpt", "generator": dict(GEN, semantic_layers=1, word_dim=8)},
        }
        Path("sparse.yaml").write_text(yaml.safe_dump({"model": sparse}))
    for stage in ("base", "sparse"):
        _cli(root, "fit", "-c", f"{stage}.yaml", "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0",
             "--export", f"checkpoints/{stage}.ckpt")  # fmt: skip
    return root


def _predict(project: Path, stage: str, out: Path, *extra: str):
    """`semtalk predict -c trainer.yaml -c data.yaml -c <stage>.yaml -c predict.yaml --ckpt_path ...`."""
    return _cli(project, "predict", "-c", f"{stage}.yaml", "-c", str(REPO / "configs" / "predict.yaml"),
                "--ckpt_path", f"checkpoints/{stage}.ckpt", "--trainer.default_root_dir", str(out),
                "--trainer.callbacks.init_args.output_dir", str(out / "{stage}"), *extra)  # fmt: skip


def _probe(ffmpeg: str, path: Path) -> str:
    """What `ffmpeg -i FILE` says about a file's streams (it exits 1: no output named)."""
    return subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def _duration(probe: str) -> float:
    h, m, s = re.search(r"Duration: (\d+):(\d+):([\d.]+)", probe).groups()
    return int(h) * 3600 + int(m) * 60 + float(s)


# --------------------------------------------------------------------------------------------- predict
def test_sparse_predict_writes_the_generate_files_and_scores(project, tmp_path, body_model):
    from semtalk.metrics.evaluate import evaluate_folder

    cli = _predict(project, "sparse", tmp_path)
    out = tmp_path / "sparse"
    dm = cli.datamodule
    clips = dm.datasets["predict"]
    assert dm.predict_split == "test" and len(clips) == 1
    item = clips[0]
    clip, n = item["clip_id"], item["length"] - item["length"] % 4
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{clip}.npz", f"{clip}_psi.json", f"{clip}.bvh"])
    with np.load(out / f"{clip}.npz", allow_pickle=False) as d:
        assert set(d.files) == NPZ_KEYS and d["poses"].dtype == np.float32
        assert d["poses"].shape == (n, 165) and d["trans"].shape == (n, 3) and d["expressions"].shape == (n, 100)
        assert np.array_equal(d["betas"], item["betas"].numpy()) and int(d["mocap_frame_rate"]) == 30
        poses, trans = d["poses"], d["trans"]
    # the file holds the stage's own whole-sequence generation, seeded with the clip's first frames
    batch = {k: (v[None] if torch.is_tensor(v) else v) for k, v in item.items()}
    feats = {k: batch[k][:, :n] for k in ("hubert", "beat", "words", "emotion") if k in batch}
    ref = cli.model.generate(feats, batch["clip_text"], batch["speaker"].long(), n,
                             batch["latent_all"][:, :4].float(), batch["trans"][:, 0].float())  # fmt: skip
    assert np.abs(poses - ref.params.poses[0].numpy()).max() < 1e-6
    assert np.abs(trans - ref.params.trans[0].numpy()).max() < 1e-5
    psi = json.loads((out / f"{clip}_psi.json").read_text())
    assert psi["mode"] == "full" and psi["frames"] == n and psi["clip_id"] == clip and psi["split"] == "test"
    assert np.allclose(psi["psi"], ref.psi[0].numpy(), atol=1e-4) and psi["beta"] == 0.5
    assert psi["gate"] == [int(v > 0.5) for v in ref.psi[0].numpy()]
    assert psi["words"] and all({"start", "end", "word", "known"} <= set(w) for w in psi["words"])
    assert psi["audio"].endswith(f"wave16k/{clip}.wav")
    bvh = read_bvh(out / f"{clip}.bvh")
    assert bvh.motion.shape[0] == n and len(bvh.names) == 55
    assert (tmp_path / "config.yaml").is_file()  # the run's configuration, in the predict folder
    # `semtalk evaluate` scores the folder against the dataset's ground truth
    scores = evaluate_folder(out, project / "data" / "embedded" / "smplxflame_30", profile="semtalk2024",
                             body_model=body_model)  # fmt: skip
    assert scores["num_files"] == 1 and 0 < scores["frames"] <= n and np.isfinite(scores["face_mse"])


def test_base_predict_rhythm_only_with_an_mp4_video(project, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    writer = "--trainer.callbacks.init_args."
    cli = _predict(project, "base", tmp_path, "--data.init_args.predict_split", "val", f"{writer}video", "mp4",
                   f"{writer}bvh", "false")  # fmt: skip
    out = tmp_path / "base"
    clip = cli.datamodule.datasets["predict"][0]["clip_id"]
    assert cli.datamodule.predict_split == "val" and clip in {p.stem for p in out.glob("*.npz")}
    assert not list(out.glob("*.bvh"))
    psi = json.loads((out / f"{clip}_psi.json").read_text())
    assert psi["mode"] == "rhythm" and psi["psi"] is None and psi["gate"] is None and psi["split"] == "val"
    probe = _probe(ffmpeg_binary(), out / f"{clip}.mp4")
    assert "Video: h264" in probe and "Audio:" in probe
    assert _duration(probe) == pytest.approx(psi["frames"] / 30, abs=0.1)


def test_predict_split_must_hold_clips(project):
    with _cwd(project):
        dm = _datamodule(predict_split="additional")
        with pytest.raises(DataError, match="no clips of split 'additional'.*predict_split"):
            dm.setup("predict")
    from stages.prediction_writer import MotionPredictionWriter

    with pytest.raises(ValueError, match="video must be one of"):
        MotionPredictionWriter(video="avi")


# --------------------------------------------------------------------------------------------- ffmpeg
def test_mp4_with_sound_without_a_system_ffmpeg(tmp_path, monkeypatch, body_model):
    """No ffmpeg on the PATH: the imageio-ffmpeg binary writes the MP4, with the speech as an audio stream."""
    import soundfile as sf

    from semtalk.export import body_joints_fn

    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("SEMTALK_FFMPEG", raising=False)
    monkeypatch.delenv("IMAGEIO_FFMPEG_EXE", raising=False)
    ffmpeg = ffmpeg_binary()
    assert ffmpeg == imageio_ffmpeg.get_ffmpeg_exe() and Path(ffmpeg).is_file()
    n = 75  # 2.5 s
    t = np.arange(int(2.5 * 16000)) / 16000
    wav = tmp_path / "speech.wav"
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.2, (n, 165)).astype(np.float32)
    trans = np.zeros((n, 3), np.float32)
    joints = body_joints_fn(body_model, poses, trans, np.zeros(300, np.float32))
    res = render_video(tmp_path / "clip", joints, n, audio_path=wav, prefer="mp4", chunk=32)
    assert res.kind == "mp4" and res.frames == n and res.path == tmp_path / "clip.mp4"
    probe = _probe(ffmpeg, res.path)
    assert re.search(r"Audio: aac.*16000 Hz", probe) and "Video: h264" in probe
    assert _duration(probe) == pytest.approx(2.5, abs=0.1)
