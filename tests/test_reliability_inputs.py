"""Bad input of every kind: a clear error that names the file, the problem and the fix, or a documented repair.

Each case builds one bad file (or folder, or checkpoint) in a temporary folder and checks the message: the
offending path, the problem, and what to do about it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from motion_fixtures import motion_arrays
from semtalk.data import DataError, load_audio, load_motion, load_sem, load_textgrid
from semtalk.data.root import Beat2Root
from semtalk.synth.files import npz_bytes, write_npz, write_wav

CLIP = "2_a_0_1_1"
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- writers
def textgrid_text(words: list[tuple[float, float, str]], xmax: float) -> str:
    body = "".join(
        f'        intervals [{i + 1}]:\n            xmin = {s}\n            xmax = {e}\n            text = "{w}"\n'
        for i, (s, e, w) in enumerate(words)
    )
    return (
        f'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = {xmax}\ntiers? <exists>\n'
        f'size = 1\nitem []:\n    item [1]:\n        class = "IntervalTier"\n        name = "words"\n'
        f"        xmin = 0\n        xmax = {xmax}\n        intervals: size = {len(words)}\n{body}"
    )


def make_root(folder: Path, motion_frames: int = 60, audio_seconds: float = 2.0) -> Beat2Root:
    """A BEAT2-layout root with one clip (`2_a_0_1_1`) of the given lengths, its TextGrid and split table."""
    for sub in ("smplxflame_30", "wave16k", "textgrid", "sem"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    write_npz(folder / "smplxflame_30" / f"{CLIP}.npz", motion_arrays(motion_frames))
    rng = np.random.default_rng(0)
    write_wav(folder / "wave16k" / f"{CLIP}.wav", rng.normal(0, 0.1, int(16000 * audio_seconds)), 16000)
    words = [(0.0, audio_seconds / 2, "hi"), (audio_seconds / 2, audio_seconds, "")]
    (folder / "textgrid" / f"{CLIP}.TextGrid").write_text(textgrid_text(words, audio_seconds))
    (folder / "train_test_split.csv").write_text(f"id,type\n{CLIP},train\n")
    return Beat2Root(folder)


def assert_clear(exc: BaseException, path: str | Path, problem: str, fix: str) -> None:
    """The message names the file, says what is wrong and what to do."""
    msg = str(exc)
    assert str(path) in msg, f"the message does not name {path}: {msg}"
    assert problem.lower() in msg.lower(), f"{problem!r} not in: {msg}"
    assert fix.lower() in msg.lower(), f"the fix {fix!r} is not in: {msg}"


# ----------------------------------------------------------------------------------------------- readers
def _truncated_npz(d: Path):
    good = npz_bytes(motion_arrays(300))
    (d / "m.npz").write_bytes(good[: len(good) // 2])
    return lambda: load_motion(d / "m.npz"), d / "m.npz", "not a readable npz", "truncated or corrupt: re-download"


def _random_bytes_npz(d: Path):
    (d / "m.npz").write_bytes(np.random.default_rng(1).bytes(4096))
    return lambda: load_motion(d / "m.npz"), d / "m.npz", "not a readable npz", "re-download or regenerate"


def _npz_missing_keys(d: Path):
    write_npz(d / "m.npz", motion_arrays(expressions=None, trans=None))
    return lambda: load_motion(d / "m.npz"), d / "m.npz", "missing keys ['trans', 'expressions']", "needs poses"


def _npz_wrong_shape(d: Path):
    write_npz(d / "m.npz", motion_arrays(poses=np.zeros((60, 55, 3), np.float32)))
    return lambda: load_motion(d / "m.npz"), d / "m.npz", "poses has shape (60, 55, 3)", "3 values each"


def _npz_nan_poses(d: Path):
    poses = np.zeros((60, 165), np.float32)
    poses[41, 7] = np.nan
    write_npz(d / "m.npz", motion_arrays(poses=poses))
    return lambda: load_motion(d / "m.npz"), d / "m.npz", "first at frame 41", "drop the clip"


def _npz_inf_translation(d: Path):
    trans = np.zeros((60, 3))
    trans[5:7, 1] = np.inf
    write_npz(d / "m.npz", motion_arrays(trans=trans))
    return lambda: load_motion(d / "m.npz"), d / "m.npz", "trans has 2 NaN/Inf values (first at frame 5)", "repair"


def _npz_wrong_rate(d: Path):
    write_npz(d / "m.npz", motion_arrays(mocap_frame_rate=np.array(60, np.int32)))
    return lambda: load_motion(d / "m.npz"), d / "m.npz", "60 fps, expected 30", "resample the motion to 30 fps"


def _empty_wav(d: Path):
    write_wav(d / "a.wav", np.zeros(0, np.float32), 16000)
    return lambda: load_audio(d / "a.wav"), d / "a.wav", "audio is empty", "provide speech audio"


def _junk_wav(d: Path):
    (d / "a.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    return lambda: load_audio(d / "a.wav"), d / "a.wav", "not a readable audio file", "re-encode it as wav"


def _nan_wav(d: Path):
    audio = np.zeros(1600, np.float32)
    audio[100] = np.nan
    write_wav(d / "a.wav", audio, 16000)
    return lambda: load_audio(d / "a.wav"), d / "a.wav", "NaN/Inf samples", "re-encode"


def _audio_much_longer(d: Path):
    root = make_root(d, motion_frames=60, audio_seconds=9.0)
    return lambda: root.load_clip(CLIP), root.audio_path(CLIP), "audio longer by 7.00 s", "do not belong together"


def _motion_much_longer(d: Path):
    root = make_root(d, motion_frames=30 * 12, audio_seconds=2.0)
    return lambda: root.load_clip(CLIP), root.audio_path(CLIP), "motion longer by 10.00 s", "one is truncated"


def _textgrid_overlap(d: Path):
    (d / "w.TextGrid").write_text(textgrid_text([(0, 0.6, "one"), (0.5, 1.0, "two")], 1.0))
    return lambda: load_textgrid(d / "w.TextGrid"), d / "w.TextGrid", "intervals overlap: 'one'", "fix the alignment"


def _textgrid_out_of_range(d: Path):
    (d / "w.TextGrid").write_text(textgrid_text([(0, 1.0, ""), (1.0, 9.5, "late")], 9.5))
    call = lambda: load_textgrid(d / "w.TextGrid", duration=2.0)  # noqa: E731
    return call, d / "w.TextGrid", "'late' ends at 9.50 s but the audio lasts 2.00 s", "re-align it"


def _textgrid_negative_start(d: Path):
    (d / "w.TextGrid").write_text(textgrid_text([(-0.5, 1.0, "early")], 1.0))
    call = lambda: load_textgrid(d / "w.TextGrid")  # noqa: E731
    return call, d / "w.TextGrid", "outside its tier's time range", "fix the alignment"


def _textgrid_beyond_tier(d: Path):
    (d / "w.TextGrid").write_text(textgrid_text([(0.0, 1.0, "a"), (1.0, 3.0, "b")], 2.0))
    return lambda: load_textgrid(d / "w.TextGrid"), d / "w.TextGrid", "(beyond 2.0 s)", "within the tier's xmin"


def _textgrid_no_tiers(d: Path):
    text = 'File type = "ooTextFile"\nObject class = "TextGrid"\n\nxmin = 0\nxmax = 1\ntiers? <exists>\nsize = 0\n'
    (d / "w.TextGrid").write_text(text + "item []:\n")
    return lambda: load_textgrid(d / "w.TextGrid"), d / "w.TextGrid", "no tiers", "the first tier must hold the words"


def _textgrid_garbage(d: Path):
    (d / "w.TextGrid").write_text("this is not praat\n")
    return lambda: load_textgrid(d / "w.TextGrid"), d / "w.TextGrid", "not a readable TextGrid", "re-export it"


def _sem_columns(d: Path):
    (d / "s.txt").write_text("01_beat_align\t0.0\t1.0\t1.0\t0.1\n02_deictic_l\t1.0\t2.0\n")
    return lambda: load_sem(d / "s.txt"), d / "s.txt", "line 2 has 3 columns", "separate columns by tabs"


def _sem_not_numbers(d: Path):
    (d / "s.txt").write_text("02_deictic_l\tone\t2.0\t1.0\t0.5\n")
    return lambda: load_sem(d / "s.txt"), d / "s.txt", "line 1: start/end/score are not numbers", "columns are"


def _sem_score_range(d: Path):
    (d / "s.txt").write_text("05_iconic_h\t0.0\t1.0\t1.0\t7\tbig\n")
    return lambda: load_sem(d / "s.txt"), d / "s.txt", "score 7.0 outside [0, 1]", "scores are level/10"


def _sem_reversed(d: Path):
    (d / "s.txt").write_text("05_iconic_h\t3.0\t1.0\t-2.0\t0.5\n")
    return lambda: load_sem(d / "s.txt"), d / "s.txt", "invalid segment [3.0, 1.0]", "fix the row"


def _split_missing_files(d: Path):
    root = make_root(d)
    root.split_path.write_text(f"id,type\n{CLIP},train\n2_b_0_2_2,train\n")
    call = lambda: root.clip_ids(["train"])  # noqa: E731
    return call, root.split_path, "1 listed clips lack their npz or wav: 2_b_0_2_2", "remove their rows"


def _split_bad_header(d: Path):
    root = make_root(d)
    root.split_path.write_text("name,split\nx,train\n")
    return lambda: root.clip_ids(), root.split_path, "expected 'id,type'", "use BEAT2's two columns"


def _split_bad_type(d: Path):
    root = make_root(d)
    root.split_path.write_text(f"id,type\n{CLIP},training\n")
    return lambda: root.clip_ids(), root.split_path, "line 2: bad row", "type must be one of"


def _missing_root(d: Path):
    return lambda: Beat2Root(d / "nowhere"), d / "nowhere", "dataset folder not found", "semtalk make-dataset"


def _damaged_cached_clip(d: Path):
    from semtalk.data.windows import WindowDataset

    (d / "c.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    ds = WindowDataset([d / "c.safetensors"], [120], window=16, stride=4)
    return lambda: ds[0], d / "c.safetensors", "cached clip file cannot be read", "rerun `semtalk cache"


def _extractor_yaml(d: Path):
    from semtalk.features.registry import load_extractor_config

    (d / "x.yaml").write_text("hubert: {tiny: {hidden_size: 8}\nbeat: [\n")
    return lambda: load_extractor_config(d / "x.yaml"), d / "x.yaml", "not valid YAML", "fix the file"


def _missing_hubert_folder(d: Path):
    from semtalk.features.hubert import HubertFeatures

    path = d / "weights" / "hubert-large-ls960-ft"
    return lambda: HubertFeatures(model=str(path)), path, "neither a local folder nor", "set `hubert.model` to a folder"


def _missing_emotion_folder(d: Path):
    from semtalk.features.emotion import EmotionFeatures

    path = d / "weights" / "emotion2vec_plus_large"
    return lambda: EmotionFeatures(model=str(path)), path, "was not found on this machine", "set emotion.model"


READER_CASES: dict[str, Callable] = {
    "npz truncated": _truncated_npz,
    "npz random bytes": _random_bytes_npz,
    "npz missing keys": _npz_missing_keys,
    "npz wrong shape": _npz_wrong_shape,
    "npz NaN poses": _npz_nan_poses,
    "npz Inf translation": _npz_inf_translation,
    "npz wrong frame rate": _npz_wrong_rate,
    "wav empty": _empty_wav,
    "wav unreadable": _junk_wav,
    "wav NaN samples": _nan_wav,
    "audio much longer than motion": _audio_much_longer,
    "motion much longer than audio": _motion_much_longer,
    "TextGrid overlapping intervals": _textgrid_overlap,
    "TextGrid interval after the audio": _textgrid_out_of_range,
    "TextGrid negative time": _textgrid_negative_start,
    "TextGrid interval beyond its tier": _textgrid_beyond_tier,
    "TextGrid without tiers": _textgrid_no_tiers,
    "TextGrid garbage": _textgrid_garbage,
    "sem too few columns": _sem_columns,
    "sem not numbers": _sem_not_numbers,
    "sem score out of range": _sem_score_range,
    "sem end before start": _sem_reversed,
    "split names missing files": _split_missing_files,
    "split bad header": _split_bad_header,
    "split bad type": _split_bad_type,
    "dataset folder missing": _missing_root,
    "cached clip damaged": _damaged_cached_clip,
    "extractor YAML invalid": _extractor_yaml,
    "pretrained HuBERT folder missing": _missing_hubert_folder,
    "pretrained emotion2vec folder missing": _missing_emotion_folder,
}


@pytest.mark.parametrize("kind", list(READER_CASES))
def test_bad_input_names_the_file_the_problem_and_the_fix(kind, tmp_path):
    call, path, problem, fix = READER_CASES[kind](tmp_path)
    with pytest.raises((DataError, FileNotFoundError, ValueError)) as err:
        call()
    assert_clear(err.value, path, problem, fix)


# ----------------------------------------------------------------------------------------------- repairs
def test_other_rates_and_channels_are_converted(tmp_path):
    """Documented repair: any rate and channel count becomes 16 kHz mono (a 300 Hz tone stays 300 Hz)."""
    import soundfile as sf

    for rate, channels in ((8000, 1), (22050, 2), (48000, 3)):
        t = np.arange(rate) / rate
        tone = np.sin(2 * np.pi * 300 * t)[:, None].repeat(channels, axis=1) * 0.5
        sf.write(tmp_path / f"a{rate}.wav", tone, rate, subtype="PCM_16")
        audio = load_audio(tmp_path / f"a{rate}.wav")
        assert audio.shape == (16000,) and audio.dtype == np.float32
        spectrum = np.abs(np.fft.rfft(audio))
        assert abs(np.argmax(spectrum) - 300) <= 1, rate


@pytest.fixture(scope="module")
def light_extractors(smplx_root) -> dict:
    from semtalk.features.registry import load_extractor_config

    tiny = load_extractor_config(REPO / "configs" / "data" / "tiny.yaml")
    return {"motion": {"body_model_root": str(smplx_root)}, "hubert": tiny["hubert"], "words": {"vocab": "textgrids"}}


def test_tenth_of_a_second_caches_and_shorter_audio_is_refused_by_name(tmp_path, light_extractors):
    """0.1 s of speech with 3 motion frames caches as 3 frames; 0.02 s is too short for HuBERT: the cache names the
    clip's wav and says to repair or drop the clip."""
    from semtalk.cli import main
    from semtalk.data.cache import build_cache, read_clip_file

    root = make_root(tmp_path / "short", motion_frames=3, audio_seconds=0.1)
    report = build_cache(root.root, tmp_path / "cache", light_extractors, progress=False)
    arrays, meta = read_clip_file(tmp_path / "cache" / "clips" / f"{CLIP}.safetensors")
    assert report.written == [CLIP] and meta["frames"] == 3
    assert arrays["hubert"].shape == (3, 64) and np.isfinite(arrays["hubert"]).all()

    tiny = make_root(tmp_path / "tiny", motion_frames=1, audio_seconds=0.02)
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(light_extractors))
    with pytest.raises(SystemExit) as err:  # the command line prints the same message, no traceback
        main(["cache", str(tiny.root), str(tmp_path / "cache2"), "--extractors", str(tmp_path / "x.yaml"), "--quiet"])
    assert_clear(err.value, tiny.audio_path(CLIP), "hubert extractor cannot use clip", "remove its row")


def test_clip_without_textgrid_gets_unknown_words(tmp_path, light_extractors):
    """Documented repair: a clip with no TextGrid (or an empty one) caches with every frame UNK (3)."""
    from semtalk.data.cache import build_cache, read_clip_file

    root = make_root(tmp_path / "root", motion_frames=60, audio_seconds=2.0)
    shutil.copy(root.textgrid_path(CLIP), tmp_path / "other.TextGrid")
    root.textgrid_path(CLIP).unlink()
    (root.root / "textgrid" / "2_b_0_9_9.TextGrid").write_text(textgrid_text([], 1.0))  # the vocabulary source
    build_cache(root.root, tmp_path / "cache", light_extractors, progress=False)
    arrays, _ = read_clip_file(tmp_path / "cache" / "clips" / f"{CLIP}.safetensors")
    assert arrays["words"].shape == (60,) and (arrays["words"] == 3).all()
    assert load_textgrid(root.root / "textgrid" / "2_b_0_9_9.TextGrid") == []


# ----------------------------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    """Tiny stage-1 checkpoints and a stage-2 checkpoint on them (one training step each)."""
    import lightning as L
    from torch.utils.data import DataLoader

    from motion_fixtures import HUBERT_DIM, PartWindows, train_tiny_stage1
    from stages.base import BaseStage

    out = tmp_path_factory.mktemp("ckpts")
    paths = train_tiny_stage1(out, steps=1)
    spec = {"hubert_dim": HUBERT_DIM, "beat_dim": 3, "window": 32, "seed_frames": 4, "num_speakers": 25, "fps": 30}
    gen = dict(hidden=16, motion_f=16, heads=2, audio_layers=1, face_layers=1, residual_layers=1, residual_heads=2,
               motion_encoder_layers=1)  # fmt: skip
    stage = BaseStage({p: paths[p] for p in ("face", "upper", "hands", "lower")}, paths["global_motion"], spec, gen)
    trainer = L.Trainer(default_root_dir=out, accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(stage, DataLoader(PartWindows(4, 32), batch_size=4))
    paths["base"] = str(out / "base.ckpt")
    trainer.save_checkpoint(paths["base"])
    return paths


def test_sparse_stage_refuses_a_base_of_another_stage(checkpoints):
    from stages.sparse import SparseStage

    with pytest.raises(ValueError) as err:
        SparseStage(checkpoints["upper"])
    assert_clear(err.value, checkpoints["upper"], "not a stage-2 (base) checkpoint", "make train-base")


def test_generation_refuses_checkpoints_of_other_stages(checkpoints, tmp_path):
    from stages.inference import load_pipeline

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    shutil.copy(checkpoints["global_motion"], folder / "base.ckpt")
    with pytest.raises(ValueError) as err:
        load_pipeline(folder)
    assert_clear(err.value, folder / "base.ckpt", "not a stage-2 (base) checkpoint", "make train-base")
    shutil.copy(checkpoints["base"], folder / "base.ckpt")
    shutil.copy(checkpoints["hands"], folder / "sparse.ckpt")
    with pytest.raises(ValueError) as err:
        load_pipeline(folder)
    assert_clear(err.value, folder / "sparse.ckpt", "not a stage-3 (sparse) checkpoint", "--mode rhythm")


def test_truncated_and_missing_checkpoints_are_named(checkpoints, tmp_path):
    from semtalk.codec import load_tokenizer

    data = Path(checkpoints["face"]).read_bytes()
    (tmp_path / "face.ckpt").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError) as err:
        load_tokenizer(tmp_path / "face.ckpt", part="face")
    assert_clear(err.value, tmp_path / "face.ckpt", "not a loadable checkpoint", "re-train or re-download")
    with pytest.raises(FileNotFoundError) as err:
        load_tokenizer(tmp_path / "vq_face.ckpt", part="face")
    assert_clear(err.value, tmp_path / "vq_face.ckpt", "checkpoint not found", "make help")


def _cli_config(tmp_path: Path, part: str = "upper") -> str:
    """A `semtalk fit` configuration (tiny VQ stage); the data never loads: the checks run while parsing."""
    cfg = {
        "model": {"class_path": "stages.vq.VQStage", "init_args": {"part": part, "smplx_root": None}},
        "data": {"class_path": "semtalk.data.datamodule.Beat2DataModule",
                 "init_args": {"root": str(tmp_path / "none"), "cache_dir": str(tmp_path / "none_cache")}},
        "trainer": {"accelerator": "cpu", "logger": False, "default_root_dir": str(tmp_path)},
    }  # fmt: skip
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_resume_from_a_checkpoint_of_another_stage_or_part_is_refused(checkpoints, tmp_path):
    from semtalk.lightning_cli import run_cli

    config = _cli_config(tmp_path)
    cases = [
        (checkpoints["global_motion"], "hyperparameters ['layers', 'use_contacts'] are not arguments of"),
        (checkpoints["face"], "a tokenizer checkpoint of part 'face', but this run trains part 'upper'"),
        (checkpoints["base"], "hyperparameters ['batched_passes', 'cls_weight', 'compile_blocks', 'generator'"),
    ]
    # a checkpoint written by `semtalk fit` names its class
    ckpt = torch.load(checkpoints["base"], weights_only=True)
    ckpt["hyper_parameters"]["_class_path"] = "stages.base.BaseStage"
    torch.save(ckpt, tmp_path / "cli_base.ckpt")
    cases.append((str(tmp_path / "cli_base.ckpt"), "a checkpoint of stages.base.BaseStage, but this run trains"))
    for path, problem in cases:
        with pytest.raises(ValueError) as err:
            run_cli(["fit", "-c", config, "--ckpt_path", path])
        assert_clear(err.value, path, problem, "Fix: resume from")
