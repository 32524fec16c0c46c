"""Kill and resume, and DDP, for every training stage through the real `semtalk` command on a tiny embedded dataset.

One module-scoped tiny project: `semtalk make-dataset` (2 speakers x 3 clips of ~4 s), `semtalk cache` (killed
with SIGKILL in the middle of a clip, then resumed, compared byte for byte with an uninterrupted build), tiny
stage-1 tokenizers. Each stage (vq, global_motion, base, sparse) then

- fits two epochs uninterrupted (`semtalk fit` in this process),
- fits the same configuration as a subprocess that saves `last.ckpt` every few steps and is SIGKILLed in the
  middle of its second epoch, then resumes with `--ckpt_path last.ckpt` and must end at the same `global_step`,
- fits one epoch with two gloo processes on CPU (`--trainer.devices 2 --trainer.strategy ddp`): both ranks finish
  with identical parameters.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from motion_fixtures import train_tiny_stage1
from semtalk.data.cache import MANIFEST, build_cache
from semtalk.features.registry import load_extractor_config
from semtalk.tokenizer import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

STAGES = ("vq", "global_motion", "base", "sparse")
BATCH = 8  # training windows per batch
CKPT_EVERY = 4  # optimizer steps between `last.ckpt` saves
EPOCHS = 2
TINY_GEN = dict(hidden=32, motion_f=16, heads=2, residual_layers=1, residual_heads=2, motion_encoder_layers=1)
#: buffers that legitimately differ between ranks after the last step: sums over each rank's own batches (the
#: mean-pose and seed statistics) and BatchNorm running statistics (DDP broadcasts rank 0's at every forward; the
#: checkpoint is rank 0's)
RANK_LOCAL_BUFFERS = ("feature_sum", "seed_sum", "running_mean", "running_var", "num_batches_tracked")


def _env() -> dict[str, str]:
    """The subprocess environment: offline, one thread per process, the test callbacks importable, no leftover
    distributed settings (Lightning picks a free port)."""
    drop = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "LOCAL_WORLD_SIZE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(SCRIPTS), str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _semtalk(*args: str) -> list[str]:
    return [sys.executable, "-m", "semtalk.cli", *args]


def _write_yaml(path: Path, data: dict) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


# ------------------------------------------------------------------------------------------------ the project
@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """The tiny dataset, its extractor configuration (windows of 16 frames, so the cache is what the datamodule
    asks for) and the data YAML of the stages."""
    from semtalk.cli import main

    root = tmp_path_factory.mktemp("reliability")
    data = root / "data"
    main(["make-dataset", str(data), "--speakers", "2", "--clips", "3", "--seconds", "4", "--quiet"])
    extractors = load_extractor_config(REPO / "configs" / "data" / "tiny.yaml")
    extractors["clip_text"].update(window=16, stride=4, seed_frames=4)
    ext_yaml = _write_yaml(root / "extractors.yaml", extractors)
    data_cfg = {"class_path": "semtalk.data.datamodule.Beat2DataModule",
                "init_args": {"root": str(data), "cache_dir": str(root / "cache"), "extractors": ext_yaml,
                              "window": 16, "stride": 4, "seed_frames": 4, "batch_size": BATCH, "num_workers": 0,
                              "device": "cpu", "progress": False}}  # fmt: skip
    return {
        "root": root,
        "data": data,
        "extractors": ext_yaml,
        "data_yaml": _write_yaml(root / "data.yaml", {"data": data_cfg}),
    }


@pytest.fixture(scope="module")
def killed_cache(project) -> dict:
    """`semtalk cache` SIGKILLed while it works on its third clip, then the same command again; and an
    uninterrupted build of the same configuration for comparison."""
    from semtalk.cli import main

    root, data, ext = project["root"], project["data"], project["extractors"]
    work, clean = root / "cache", root / "cache_clean"
    clips = work / "clips"
    log = root / "cache_killed.log"
    with log.open("w") as out:  # a file, not a pipe: a full pipe would stall the subprocess
        proc = subprocess.Popen(_semtalk("cache", str(data), str(work), "--extractors", ext, "--quiet"), env=_env(),
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    state: dict = {"killed": False}

    def kill_after_two_clips() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if clips.is_dir() and len(list(clips.glob("*.safetensors"))) >= 2:
                proc.send_signal(signal.SIGKILL)
                state["killed"] = True
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_after_two_clips, daemon=True)
    watcher.start()
    try:  # nothing else runs in this process meanwhile, so the watcher is never starved of the GIL
        watcher.join(timeout=300)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    report = build_cache(data, clean, ext, progress=False)
    state["written_when_killed"] = sorted(p.name for p in clips.glob("*.safetensors"))
    main(["cache", str(data), str(work), "--extractors", ext, "--quiet"])
    return {**state, "returncode": proc.returncode, "work": work, "clean": clean, "clips": report.clips,
            "log": log.read_text()}  # fmt: skip


def test_cache_killed_mid_clip_resumes_to_identical_files(killed_cache):
    kc = killed_cache
    assert kc["killed"] and kc["returncode"] == -signal.SIGKILL, kc["log"][-2000:]
    assert 2 <= len(kc["written_when_killed"]) < kc["clips"], kc["written_when_killed"]
    work, clean = kc["work"], kc["clean"]
    assert not list((work / "clips").glob(".*.tmp")), "a torn temporary file survived the resumed build"
    names = sorted(p.name for p in (clean / "clips").glob("*.safetensors"))
    assert len(names) == kc["clips"] and sorted(p.name for p in (work / "clips").glob("*.safetensors")) == names
    for name in names:  # the same tensors (float kernels may differ in the last bit between processes)
        resumed, fresh = load_file(work / "clips" / name), load_file(clean / "clips" / name)
        assert resumed.keys() == fresh.keys(), name
        for key in fresh:
            assert torch.allclose(resumed[key], fresh[key], rtol=1e-5, atol=1e-6), (name, key)
        with safe_open(work / "clips" / name, "pt") as a, safe_open(clean / "clips" / name, "pt") as b:
            assert a.metadata() == b.metadata(), name
    for name in (MANIFEST, "vocab.json"):
        assert (work / name).read_bytes() == (clean / name).read_bytes(), name


@pytest.fixture(scope="module")
def windows(project, killed_cache) -> int:
    """Training windows of the tiny dataset."""
    from semtalk.data.datamodule import Beat2DataModule

    init = yaml.safe_load(Path(project["data_yaml"]).read_text())["data"]["init_args"]
    dm = Beat2DataModule(**init)
    dm.setup("fit")
    return len(dm.datasets["train"])


@pytest.fixture(scope="module")
def steps_per_epoch(windows) -> int:
    return windows // BATCH  # the last incomplete batch is dropped


@pytest.fixture(scope="module")
def stage1(project) -> dict[str, str]:
    """Tiny frozen tokenizers and global-motion net (stage-1 checkpoints) for the base and sparse stages."""
    return train_tiny_stage1(project["root"] / "stage1", steps=2)


def _model_config(stage: str, stage1: dict[str, str], base_ckpt: str | None = None) -> dict:
    if stage == "vq":
        args = dict(part="upper", smplx_root=None, width=32, code_dim=16, depth=1, num_quantizers=3,
                    codebook_size=16, dropout=0.0)  # fmt: skip
        return {"class_path": "stages.vq.VQStage", "init_args": args}
    if stage == "global_motion":
        return {"class_path": "stages.global_motion.GlobalMotionStage", "init_args": {"width": 16, "layers": 1}}
    if stage == "base":
        tokenizers = {p: stage1[p] for p in ("face", "upper", "hands", "lower")}
        args = {"tokenizers": tokenizers, "global_motion": stage1["global_motion"],
                "generator": dict(TINY_GEN, audio_layers=1, face_layers=1)}  # fmt: skip
        return {"class_path": "stages.base.BaseStage", "init_args": args}
    assert base_ckpt is not None
    args = {"base": base_ckpt, "generator": dict(TINY_GEN, semantic_layers=1, word_dim=8)}
    return {"class_path": "stages.sparse.SparseStage", "init_args": args}


def _stage_yaml(folder: Path, model: dict, epochs: int, extra_callbacks: list[dict] | None = None) -> str:
    """A tiny stage configuration: CPU, no logger, no validation, `last.ckpt` every `CKPT_EVERY` steps."""
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"dirpath": str(folder / "checkpoints"), "every_n_train_steps": CKPT_EVERY,
                                "save_last": True}}  # fmt: skip
    trainer = {"accelerator": "cpu", "devices": 1, "max_epochs": epochs, "logger": False,
               "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
               "limit_val_batches": 0, "default_root_dir": str(folder),
               "callbacks": [checkpoint, *(extra_callbacks or [])]}  # fmt: skip
    return _write_yaml(folder / "stage.yaml", {"seed_everything": 0, "model": model, "trainer": trainer})


def _fit_here(data_yaml: str, stage_yaml: str, *extra: str) -> int:
    """`semtalk fit` in this process; returns the final global step. The seeding the command does (random states,
    `PL_GLOBAL_SEED`) is undone afterwards, so later tests in the session see what they would have seen."""
    from semtalk.lightning_cli import run_cli

    env = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        cli = run_cli(["fit", "-c", data_yaml, "-c", stage_yaml, *extra])
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return int(cli.trainer.global_step)


def _pause_step(steps_per_epoch: int) -> int:
    """A step in the middle of the second epoch, after a `last.ckpt` that is itself mid-epoch."""
    step = steps_per_epoch + steps_per_epoch // 2 + 1
    saved = step - step % CKPT_EVERY
    assert saved > steps_per_epoch and saved % steps_per_epoch, (steps_per_epoch, step)
    return step


def kill_and_resume(stage: str, project: dict, stage1: dict, steps_per_epoch: int, base_ckpt: str | None = None):
    """Start the killed run as a subprocess, fit the uninterrupted run here meanwhile, SIGKILL the subprocess once
    it holds at the pause step, resume it here. Returns the numbers the tests check."""
    root = project["root"] / f"{stage}_resume"
    model = _model_config(stage, stage1, base_ckpt)
    pause = _pause_step(steps_per_epoch)
    marker = root / "paused.json"
    pause_cb = {"class_path": "reliability_callbacks.PauseAtStep", "init_args": {"step": pause, "marker": str(marker)}}
    killed_yaml = _stage_yaml(root / "killed", model, EPOCHS, [pause_cb])
    log = root / "killed.log"
    with log.open("w") as out:  # a file, not a pipe: a full pipe would stall the subprocess
        proc = subprocess.Popen(_semtalk("fit", "-c", project["data_yaml"], "-c", killed_yaml), env=_env(),
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        full_step = _fit_here(project["data_yaml"], _stage_yaml(root / "full", model, EPOCHS))
        deadline = time.monotonic() + 300
        while not marker.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        paused = json.loads(marker.read_text()) if marker.is_file() else None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert paused is not None, log.read_text()[-3000:]
    last = root / "killed" / "checkpoints" / "last.ckpt"
    saved = load_checkpoint(last)
    resumed_yaml = _stage_yaml(root / "killed", model, EPOCHS)  # the same run, without the pause
    resumed_step = _fit_here(project["data_yaml"], resumed_yaml, "--ckpt_path", str(last))
    return {"stage": stage, "returncode": proc.returncode, "paused": paused, "saved_step": int(saved["global_step"]),
            "saved_epoch": int(saved["epoch"]), "resumed_step": resumed_step, "full_step": full_step,
            "full_dir": root / "full"}  # fmt: skip


def check_resume(result: dict, steps_per_epoch: int) -> None:
    print(f"{result['stage']}: killed at step {result['paused']['global_step']} (epoch {result['paused']['epoch']}, "
          f"batch {result['paused']['batch_idx']}), last.ckpt at step {result['saved_step']}, resumed to "
          f"{result['resumed_step']}, uninterrupted {result['full_step']}")  # fmt: skip
    assert result["returncode"] == -signal.SIGKILL
    # killed in the second epoch, after a checkpoint that was itself written in the middle of that epoch
    assert result["paused"]["epoch"] == 1 and 0 < result["paused"]["batch_idx"] < steps_per_epoch - 1
    assert result["saved_epoch"] == 1 and result["saved_step"] % steps_per_epoch != 0
    assert steps_per_epoch < result["saved_step"] <= result["paused"]["global_step"]
    assert result["full_step"] == EPOCHS * steps_per_epoch
    assert result["resumed_step"] == result["full_step"], result


def ddp_job(stage: str, project: dict, stage1: dict, base_ckpt: str | None = None) -> tuple[list[str], Path]:
    """The `semtalk fit` arguments of one epoch on two CPU ranks, and the folder of the rank reports."""
    root = project["root"] / f"{stage}_ddp"
    report = {"class_path": "reliability_callbacks.RankReport", "init_args": {"out_dir": str(root / "report")}}
    stage_yaml = _stage_yaml(root, _model_config(stage, stage1, base_ckpt), 1, [report])
    argv = ["fit", "-c", project["data_yaml"], "-c", stage_yaml,
            "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]  # fmt: skip
    return argv, root / "report"


def check_ddp(infos: list[dict], states: list, windows: int) -> None:
    assert [i["rank"] for i in infos] == [0, 1] and all(i["world_size"] == 2 for i in infos)
    # the distributed sampler gives each rank half the windows (padded to even): full batches of them
    assert infos[0]["global_step"] == infos[1]["global_step"] == -(-windows // 2) // BATCH
    assert all(i["epoch"] == 1 for i in infos)
    a, b = states
    assert a["parameters"].keys() == b["parameters"].keys() and len(a["parameters"]) > 0
    differ = [k for k, v in a["parameters"].items() if not torch.equal(v, b["parameters"][k])]
    assert not differ, f"parameters differ across DDP ranks: {differ[:10]}"
    assert any(not torch.equal(v, a["start"][k]) for k, v in a["parameters"].items()), "nothing trained"
    shared = [k for k in a["buffers"] if k.rsplit(".", 1)[-1] not in RANK_LOCAL_BUFFERS]
    differ = [k for k in shared if not torch.equal(a["buffers"][k], b["buffers"][k])]
    assert not differ, f"buffers (codebooks, statistics) differ across DDP ranks: {differ[:10]}"


# ------------------------------------------------------------------------------------------------ the stages
@pytest.fixture(scope="module")
def base_checkpoint(project, stage1, steps_per_epoch) -> tuple[str, dict]:
    """The base stage's kill-and-resume run; its uninterrupted checkpoint is the sparse stage's frozen base."""
    result = kill_and_resume("base", project, stage1, steps_per_epoch)
    return str(result["full_dir"] / "checkpoints" / "last.ckpt"), result


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["vq", "global_motion"])
def test_stage1_killed_mid_epoch_resumes_to_the_same_step(stage, project, stage1, steps_per_epoch):
    check_resume(kill_and_resume(stage, project, stage1, steps_per_epoch), steps_per_epoch)


@pytest.mark.slow
def test_base_killed_mid_epoch_resumes_to_the_same_step(base_checkpoint, steps_per_epoch):
    check_resume(base_checkpoint[1], steps_per_epoch)


@pytest.fixture(scope="module")
def sparse_checkpoint(project, stage1, steps_per_epoch, base_checkpoint) -> tuple[str, dict]:
    result = kill_and_resume("sparse", project, stage1, steps_per_epoch, base_ckpt=base_checkpoint[0])
    return str(result["full_dir"] / "checkpoints" / "last.ckpt"), result


@pytest.mark.slow
def test_sparse_killed_mid_epoch_resumes_to_the_same_step(sparse_checkpoint, steps_per_epoch):
    check_resume(sparse_checkpoint[1], steps_per_epoch)


@pytest.mark.slow
def test_generation_from_a_tenth_of_a_second_and_from_empty_audio(project, base_checkpoint, sparse_checkpoint):
    """`semtalk generate` on 0.1 s of speech writes 3 frames of motion (a BEAT2 npz the reader accepts); on an
    empty wav it stops with the file named."""
    import shutil

    from semtalk.cli import main
    from semtalk.data import DataError, load_motion
    from semtalk.synth.files import write_wav

    root = project["root"] / "generate"
    (root / "checkpoints").mkdir(parents=True)
    shutil.copy(base_checkpoint[0], root / "checkpoints" / "base.ckpt")
    shutil.copy(sparse_checkpoint[0], root / "checkpoints" / "sparse.ckpt")
    rng = np.random.default_rng(0)
    write_wav(root / "short.wav", rng.normal(0, 0.1, 1600).astype(np.float32), 16000)
    write_wav(root / "empty.wav", np.zeros(0, np.float32), 16000)
    common = ["--checkpoints", str(root / "checkpoints"), "--cache", str(project["root"] / "cache"),
              "--out", str(root / "out"), "--video", "none", "--quiet"]  # fmt: skip
    main(["generate", str(root / "short.wav"), *common])
    motion = load_motion(root / "out" / "short.npz")
    assert motion.num_frames == 3 and np.isfinite(motion.poses).all()
    with pytest.raises(SystemExit) as err:
        main(["generate", str(root / "empty.wav"), *common])
    assert str(root / "empty.wav") in str(err.value) and "audio is empty" in str(err.value)
    assert "Fix: provide speech audio" in str(err.value) and not isinstance(err.value, DataError)


@pytest.fixture(scope="module")
def ddp_reports(project, stage1, base_checkpoint) -> dict[str, Path]:
    """Every stage for one epoch on two gloo ranks, launched once by torchrun (the fits share the process group)."""
    jobs, reports = [], {}
    for stage in STAGES:
        argv, reports[stage] = ddp_job(stage, project, stage1, base_checkpoint[0] if stage == "sparse" else None)
        jobs.append(argv)
    jobs_file = project["root"] / "ddp_jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(SCRIPTS / "ddp_stages.py"), str(jobs_file)]  # fmt: skip
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return reports


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
def test_ddp_two_gloo_ranks_finish_with_identical_parameters(stage, ddp_reports, windows):
    folder = ddp_reports[stage]
    infos = [json.loads((folder / f"rank{r}.json").read_text()) for r in (0, 1)]
    states = [torch.load(folder / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    check_ddp(infos, states, windows)
