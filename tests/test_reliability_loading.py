"""Safe loading: a pickle that would run code (here: create a marker file) put where a checkpoint, a cache file, a
vocabulary or an encoder's weights are expected is refused with an error naming the file, and never runs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from semtalk.data import DataError
from test_reliability_inputs import CLIP, make_root


class Payload:
    """Pickles as a call to `os.system("touch MARKER")`: loading it with plain pickle creates the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil(tmp_path):
    """`write(path)` saves a malicious torch pickle at `path`; `marker` must never exist."""
    marker = tmp_path / "PWNED"

    def write(path: Path, wrap=lambda p: {"state_dict": {}, "x": p}) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(wrap(Payload(marker)), path)
        return path

    write.marker = marker
    yield write
    assert not marker.exists(), "a pickled payload ran"


def _names(err: BaseException, path: Path, *fragments: str) -> None:
    msg = str(err)
    assert str(path) in msg, msg
    for f in fragments:
        assert f.lower() in msg.lower(), f"{f!r} not in {msg}"


def test_payload_really_runs_under_plain_pickle(evil, tmp_path):
    """The control: the same file loaded without `weights_only` does run its code."""
    path = evil(tmp_path / "x.ckpt")
    torch.load(path, weights_only=False)
    assert evil.marker.exists()
    evil.marker.unlink()


def test_tokenizer_and_global_motion_checkpoints(evil, tmp_path):
    from semtalk.codec import MotionCodec, load_global_motion, load_tokenizer

    path = evil(tmp_path / "vq_face.ckpt")
    with pytest.raises(ValueError) as err:
        load_tokenizer(path, part="face")
    _names(err.value, path, "pickled objects beyond tensors", "posix.system", "Fix: re-train it")
    with pytest.raises(ValueError) as err:
        MotionCodec.from_checkpoints({p: str(path) for p in ("face", "upper", "hands", "lower")})
    _names(err.value, path, "refused")
    gm = evil(tmp_path / "global_motion.ckpt")
    with pytest.raises(ValueError) as err:
        load_global_motion(gm)
    _names(err.value, gm, "could run code")


def test_base_checkpoint_for_the_sparse_stage_and_for_generation(evil, tmp_path):
    from stages.base import BaseStage
    from stages.inference import load_pipeline
    from stages.sparse import SparseStage

    base = evil(tmp_path / "checkpoints" / "base.ckpt")
    with pytest.raises(ValueError) as err:
        SparseStage(str(base))
    _names(err.value, base, "not a loadable checkpoint")
    with pytest.raises(ValueError) as err:
        load_pipeline(tmp_path / "checkpoints")
    _names(err.value, base, "not a loadable checkpoint")
    with pytest.raises(Exception, match="GLOBAL posix.system"):  # Lightning's own loader: torch's weights_only
        BaseStage.load_from_checkpoint(base)


def test_resume_checkpoint_of_the_command_line(evil, tmp_path):
    from semtalk.lightning_cli import run_cli

    cfg = {
        "model": {"class_path": "stages.global_motion.GlobalMotionStage", "init_args": {"width": 8, "layers": 1}},
        "data": {"class_path": "semtalk.data.datamodule.Beat2DataModule",
                 "init_args": {"root": str(tmp_path / "none"), "cache_dir": str(tmp_path / "none_cache")}},
        "trainer": {"accelerator": "cpu", "logger": False, "default_root_dir": str(tmp_path)},
    }  # fmt: skip
    (tmp_path / "fit.yaml").write_text(yaml.safe_dump(cfg))
    last = evil(tmp_path / "runs" / "global_motion" / "checkpoints" / "last.ckpt")
    with pytest.raises(ValueError) as err:
        run_cli(["fit", "-c", str(tmp_path / "fit.yaml"), "--ckpt_path", str(last)])
    _names(err.value, last, "not a loadable checkpoint", "source you trust")


def test_fgd_encoder(evil, tmp_path):
    from semtalk.metrics.fgd_encoder import load_fgd_encoder

    path = evil(tmp_path / "AESKConv_240_100.bin", wrap=lambda p: {"model_state": {"x": p}})
    with pytest.raises(ValueError) as err:
        load_fgd_encoder(path)
    _names(err.value, path, "could not read", "GLOBAL posix.system")


def test_cache_files(evil, tmp_path, smplx_root):
    """A pickle in place of a cached clip is refused when read and rebuilt by the next `semtalk cache`; a pickled
    object array in place of the word embeddings is refused by name."""
    from semtalk.data.cache import build_cache, read_clip_file
    from semtalk.data.windows import WindowDataset
    from semtalk.features.vocab import Vocab

    root = make_root(tmp_path / "data", motion_frames=60, audio_seconds=2.0)
    cfg = {"motion": {"body_model_root": str(smplx_root)}}
    build_cache(root.root, tmp_path / "cache", cfg, progress=False)
    clip_file = tmp_path / "cache" / "clips" / f"{CLIP}.safetensors"
    good = clip_file.read_bytes()
    evil(clip_file)
    with pytest.raises(DataError) as err:
        WindowDataset([clip_file], [60], window=16, stride=4)[0]
    _names(err.value, clip_file, "cannot be read", "rerun `semtalk cache")
    report = build_cache(root.root, tmp_path / "cache", cfg, progress=False)
    assert report.written == [CLIP] and clip_file.read_bytes() == good
    assert read_clip_file(clip_file)[0]["poses"].shape == (60, 165)

    (tmp_path / "vocab.json").write_bytes(Vocab.build(["hi", ""]).to_json())
    emb = tmp_path / "word_embeddings.npy"
    np.save(emb, np.array([Payload(evil.marker)], dtype=object), allow_pickle=True)
    with pytest.raises(DataError) as err:
        Vocab.load_json(tmp_path / "vocab.json", emb)
    _names(err.value, emb, "not a plain .npy", "rebuild the cache")


def test_vocabulary_pickle(evil, tmp_path):
    import pickle

    from semtalk.features.vocab import load_vocab_pkl

    path = tmp_path / "weights" / "vocab.pkl"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(Payload(evil.marker)))
    with pytest.raises(DataError) as err:
        load_vocab_pkl(path)
    _names(err.value, path, "refusing to load posix.system", "weights/vocab.pkl")


def test_pretrained_encoder_weights(evil, tmp_path):
    """Pretrained HuBERT and emotion2vec folders whose weights file is a payload: torch refuses them (transformers
    and funasr load with torch's weights_only default)."""
    from transformers import HubertConfig

    from semtalk.features.emotion import EmotionFeatures, tiny_conf, write_emotion2vec_dir
    from semtalk.features.hubert import HubertFeatures

    hub = tmp_path / "hubert"
    config = HubertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                          conv_dim=[8] * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)  # fmt: skip
    config.save_pretrained(hub)
    evil(hub / "pytorch_model.bin", wrap=lambda p: {"x": p})
    with pytest.raises(Exception, match="posix.system"):
        HubertFeatures(model=str(hub))
    emo = write_emotion2vec_dir(tmp_path / "emotion2vec", tiny_conf())
    evil(emo / "model.pt", wrap=lambda p: {"x": p})
    with pytest.raises(Exception, match="posix.system"):
        EmotionFeatures(model=str(emo))
    shutil.rmtree(emo)
