"""Feature extractors: timing rules, vocabularies, and every encoder at tiny size through its real code path."""

from __future__ import annotations

import pickle
import random
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.data.beat2 import Clip, Motion, SemRow, WordInterval
from semtalk.data.errors import DataError
from semtalk.data.windows import generation_windows, sequence_length, train_starts
from semtalk.features import (
    BeatFeatures,
    ClipInput,
    ClipTextFeatures,
    EmotionFeatures,
    HubertFeatures,
    MissingWeightsError,
    Vocab,
    common_frames,
    frame_scores,
    frame_word_indices,
    load_extractor_config,
    load_vocab_pkl,
    token_means,
)
from semtalk.features.base import audio_chunks, interpolate_frames
from semtalk.features.beat import HOP, amplitude_per_hop, amplitude_reference, short_time_energy
from semtalk.features.clip_text import local_clip_checkpoint, window_sentence
from semtalk.features.emotion import tiny_conf, write_emotion2vec_dir
from semtalk.features.registry import plan_extractors
from semtalk.features.timeline import first_match
from semtalk.features.vocab import PAD, UNK

REPO = Path(__file__).resolve().parents[1]
TINY = load_extractor_config(REPO / "configs" / "data" / "tiny.yaml")


def make_clip(seconds: float = 6.0, frames: int | None = None, seed: int = 0) -> Clip:
    rng = np.random.default_rng(seed)
    n = frames if frames is not None else int(seconds * 30)
    motion = Motion(
        poses=(rng.normal(size=(n, 165)) * 0.1).astype(np.float32),
        trans=np.zeros((n, 3), np.float32),
        betas=np.zeros(300, np.float32),
        expressions=np.zeros((n, 100), np.float32),
    )
    t = np.arange(int(seconds * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)).astype(np.float32)
    words = [WordInterval(0.0, 1.0, "hello"), WordInterval(1.0, 1.5, ""), WordInterval(1.5, 3.0, "world"),
             WordInterval(3.0, seconds, "again")]  # fmt: skip
    sem = [SemRow("01_beat_align", 0.0, seconds, 0.1), SemRow("05_iconic_l", 2.0, 4.0, 0.5)]
    return Clip("2_scott_0_1_1", 2, motion, audio, 16000, words, sem)


# ------------------------------------------------------------------------------------------ timing rules
def test_first_match_is_first_in_order_with_inclusive_bounds():
    idx = first_match([0.0, 1.0, 0.5], [1.0, 2.0, 3.0], num_frames=100)
    assert idx[30] == 0  # t = 1.0 is inside both the first and the second: the first wins
    assert idx[31] == 1 and idx[60] == 1
    assert idx[61] == 2 and idx[90] == 2 and idx[91] == -1
    rng = np.random.default_rng(1)
    starts = rng.uniform(0, 3, 12)
    ends = starts + rng.uniform(0, 1, 12)
    fast = first_match(starts, ends, 120)
    slow = [next((k for k in range(12) if starts[k] <= i / 30 <= ends[k]), -1) for i in range(120)]
    assert fast.tolist() == slow


def test_word_indices_follow_pad_and_unk_rules():
    vocab = Vocab.build(["hello", "", "world"])
    words = [WordInterval(0.0, 1.0, "hello"), WordInterval(1.0, 1.5, ""), WordInterval(1.5, 2.0, " "),
             WordInterval(2.0, 2.5, "unseen")]  # fmt: skip
    idx = frame_word_indices(words, 90, vocab)
    assert idx.dtype == np.int64 and idx.shape == (90,)
    assert idx[0] == vocab.index("hello") == 4 and idx[30] == 4  # boundary frame -> earlier interval
    assert idx[40] == vocab.index("") == 5  # silence is an ordinary entry
    assert idx[50] == PAD  # a single-space mark
    assert idx[70] == UNK  # not in the vocabulary
    assert idx[80] == UNK  # no interval covers t = 2.67 s


def test_semantic_scores_threshold_first_row_and_token_means():
    rows = [SemRow("01_beat_align", 0.0, 2.0, 0.1), SemRow("05_iconic_m", 1.0, 3.0, 0.6),
            SemRow("10_metaphoric_h", 2.5, 3.0, 1.0)]  # fmt: skip
    s = frame_scores(rows, 120)
    assert s[10] == 0.0  # beat-only row -> 0
    assert s[45] == 0.0  # t = 1.5: first matching row is the beat row
    assert s[70] == pytest.approx(0.6) and s[80] == pytest.approx(0.6)  # first match beats the later 1.0 row
    assert s[100] == 0.0  # uncovered
    tok = token_means(np.array([0, 0, 0.6, 0.6, 1, 1, 1, 1, 0.5], dtype=np.float32))
    np.testing.assert_allclose(tok, [0.3, 1.0])
    assert token_means(torch.ones(2, 64)).shape == (2, 16)


def test_interpolation_and_chunks():
    vals = np.array([[0.0], [10.0]], dtype=np.float32)
    out = interpolate_frames(vals, np.array([0.0, 1.0]), num_frames=40, fps=30)
    np.testing.assert_allclose(out[:31, 0], np.arange(31) / 3.0, atol=1e-5)
    assert (out[31:, 0] == 10.0).all()  # past the last sample: held
    chunks = audio_chunks(np.zeros(1005), 100)
    assert [o for o, _ in chunks] == list(range(0, 1000, 100)) and len(chunks[-1][1]) == 105  # short tail merged
    assert [o for o, _ in audio_chunks(np.zeros(1050), 100)][-1] == 1000


# ------------------------------------------------------------------------------------------ vocabulary
def test_vocab_pkl_restricted_unpickler(tmp_path, monkeypatch):
    mod = types.ModuleType("dataloaders.build_vocab")

    class PickledVocab:  # EMAGE's class, as vocab.pkl stores it
        def __init__(self):
            self.name = "beat"
            self.index2word = {0: "<PAD>", 1: "<SOS>", 2: "<EOS>", 3: "<UNK>", 4: "", 5: "hello"}
            self.word2index = {"": 4, "hello": 5}
            self.n_words = 6
            self.word_embedding_weights = np.arange(18, dtype=np.float32).reshape(6, 3)

    PickledVocab.__module__, PickledVocab.__qualname__, PickledVocab.__name__ = mod.__name__, "Vocab", "Vocab"
    mod.Vocab = PickledVocab
    monkeypatch.setitem(sys.modules, "dataloaders", types.ModuleType("dataloaders"))
    monkeypatch.setitem(sys.modules, "dataloaders.build_vocab", mod)
    path = tmp_path / "vocab.pkl"
    path.write_bytes(pickle.dumps(PickledVocab()))
    monkeypatch.delitem(sys.modules, "dataloaders.build_vocab")
    monkeypatch.delitem(sys.modules, "dataloaders")

    vocab = load_vocab_pkl(path)
    assert len(vocab) == 6 and vocab.index("hello") == 5 and vocab.index("nope") == UNK
    np.testing.assert_array_equal(vocab.embeddings, np.arange(18, dtype=np.float32).reshape(6, 3))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(DataError, match="refusing to load os.system"):
        load_vocab_pkl(evil)
    with pytest.raises(DataError, match="not found"):
        load_vocab_pkl(tmp_path / "missing.pkl")


def test_vocab_json_round_trip(tmp_path):
    v = Vocab.build(["b", "a", "b", ""])
    assert v.words == ["<PAD>", "<SOS>", "<EOS>", "<UNK>", "b", "a", ""]
    (tmp_path / "vocab.json").write_bytes(v.to_json())
    w = Vocab.load_json(tmp_path / "vocab.json")
    assert w.words == v.words and w.digest == v.digest


# ------------------------------------------------------------------------------------------ beat
def test_beat_channels():
    rng = np.random.default_rng(0)
    y = np.zeros(16000 * 4, dtype=np.float32)
    for c in range(8000, len(y), 8000):  # clicks every 0.5 s from 0.5 s on
        y[c : c + 200] = rng.normal(size=200) * 0.8
    n = 1 + len(y) // HOP
    per_hop = amplitude_per_hop(y, n)
    assert per_hop[8000 // HOP] > 0.5 and per_hop[2] == 0.0
    assert amplitude_reference(y, n).max() == 0.0  # the quirk sees only the first ~n samples (silent here)
    energy = short_time_energy(y, n)
    k = 8000 // HOP
    assert energy[k] == pytest.approx(float((y[k * HOP : k * HOP + 1024].astype(np.float64) ** 2).sum()), rel=1e-6)

    feats = BeatFeatures().features(y, num_frames=120)
    assert feats.shape == (120, 3) and feats.dtype == np.float32
    onset_frames = np.flatnonzero(feats[:, 2] > 0)
    assert len(onset_frames) >= 4
    click_frames = np.arange(15, 120, 15)
    assert all(np.abs(click_frames - f).min() <= 2 for f in onset_frames)
    quirk = BeatFeatures(amplitude="reference").features(y, 120)
    assert quirk[:, 0].max() == 0.0 and feats[:, 0].max() > 0.5
    with pytest.raises(ValueError, match="per_hop"):
        BeatFeatures(amplitude="loud")


# ------------------------------------------------------------------------------------------ encoders
def test_hubert_tiny_shapes_determinism_and_batching(tmp_path):
    clip = make_clip(seconds=5.0)
    item = ClipInput(clip, common_frames(clip))
    a = HubertFeatures(tiny=TINY["hubert"]["tiny"], chunk_seconds=1.0, batch_size=1)
    out = a(item)["hubert"]
    assert out.shape == (150, 64) and out.dtype == np.float32 and np.isfinite(out).all()
    b = HubertFeatures(tiny=TINY["hubert"]["tiny"], chunk_seconds=1.0, batch_size=8)
    np.testing.assert_allclose(b(item)["hubert"], out, atol=1e-5)  # batching never changes features
    assert out.std(axis=0).mean() > 1e-3  # frames differ over time

    # the pretrained path: same class from a local folder (here: the tiny weights saved)
    a.net.save_pretrained(tmp_path / "hubert")
    c = HubertFeatures(model=str(tmp_path / "hubert"), chunk_seconds=1.0)
    np.testing.assert_allclose(c(item)["hubert"], out, atol=1e-5)
    assert HubertFeatures.output_dims(model=str(tmp_path / "hubert")) == {"hubert": 64}
    with pytest.raises(ValueError, match="exactly one"):
        HubertFeatures()


def test_missing_pretrained_weights_say_where_to_put_them(tmp_path, monkeypatch):
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(MissingWeightsError, match="huggingface-cli download facebook/hubert-large-ls960-ft"):
        HubertFeatures(model="facebook/hubert-large-ls960-ft")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="clip_text.pretrained"):
        local_clip_checkpoint("ViT-B-32", "openai")
    ckpt = tmp_path / "clip.pt"
    ckpt.write_bytes(b"x")
    assert local_clip_checkpoint("ViT-B-32", str(ckpt)) == str(ckpt)
    with pytest.raises(MissingWeightsError, match="emotion.model"):
        EmotionFeatures(model="iic/emotion2vec_plus_large")


def test_clip_text_windows_and_features():
    assert window_sentence(["a", "a", None, "", "b", " ", "b", "a"]) == "a b a"
    clip = make_clip(seconds=6.0)
    n = common_frames(clip)
    ext = ClipTextFeatures(**TINY["clip_text"])
    out = ext(ClipInput(clip, n))
    assert out["clip_text"].shape == (len(train_starts(n, 64, 20)), 32)
    assert out["clip_text_gen"].shape == (generation_windows(sequence_length(n)), 32)
    feats = ext.encode(["hello world", "again", "hello world"])
    np.testing.assert_array_equal(feats[0], feats[2])
    assert np.abs(feats[0] - feats[1]).max() > 1e-4
    assert ext.encode([]).shape == (0, 32)
    assert ClipTextFeatures.output_dims(**TINY["clip_text"]) == {"clip_text": 32}
    assert ClipTextFeatures.output_dims(model="ViT-B-32", pretrained="openai") == {"clip_text": 512}


def test_emotion2vec_tiny_through_funasr_automodel(tmp_path):
    clip = make_clip(seconds=4.0)
    item = ClipInput(clip, common_frames(clip))
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    state = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    ext = EmotionFeatures(tiny=TINY["emotion"]["tiny"], chunk_seconds=2.0)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == state  # funasr's re-seeding undone
    assert torch.get_num_threads() == threads
    out = ext(item)["emotion"]
    assert out.shape == (120, 32) and np.isfinite(out).all() and out.std() > 1e-3

    # the pretrained path: a local funasr model folder with the same weights gives the same features
    over = {k: v for k, v in TINY["emotion"]["tiny"].items() if k != "seed"}
    folder = write_emotion2vec_dir(tmp_path / "e2v", tiny_conf(over), seed=TINY["emotion"]["tiny"]["seed"])
    same = EmotionFeatures(model=str(folder), chunk_seconds=2.0)(item)["emotion"]
    np.testing.assert_allclose(same, out, atol=1e-5)
    assert EmotionFeatures.output_dims(model=str(folder)) == {"emotion": 32}


# ------------------------------------------------------------------------------------------ configuration
def test_config_names_and_fingerprints(tmp_path):
    from semtalk.data.root import Beat2Root

    (tmp_path / "textgrid").mkdir()
    root = Beat2Root(tmp_path)
    vocab = Vocab.build(["a"])
    with pytest.raises(DataError, match="unknown extractors"):
        load_extractor_config({"hubbert": {}})
    with pytest.raises(DataError, match=r"'beat' has no arguments \['amplitde'\]"):
        plan_extractors(load_extractor_config({"beat": {"amplitde": "per_hop"}}), root, vocab, "x")
    cfg = load_extractor_config({"beat": {"amplitude": "per_hop"}, "hubert": TINY["hubert"], "emotion": None})
    assert set(cfg) == {"motion", "beat", "hubert"}  # motion always on, null switches off
    base = plan_extractors(cfg, root, vocab=vocab, body_model_digest="x")
    runtime = plan_extractors({**cfg, "hubert": {**cfg["hubert"], "batch_size": 99}}, root, vocab, "x")
    changed = plan_extractors({**cfg, "beat": {"amplitude": "reference"}}, root, vocab, "x")
    assert runtime["hubert"].fingerprint == base["hubert"].fingerprint  # batch size does not change outputs
    assert changed["beat"].fingerprint != base["beat"].fingerprint
    assert changed["hubert"].fingerprint == base["hubert"].fingerprint
    assert plan_extractors(cfg, root, vocab, "y")["motion"].fingerprint != base["motion"].fingerprint
    real = load_extractor_config(REPO / "configs" / "data" / "real.yaml")
    assert real["hubert"]["model"] == "facebook/hubert-large-ls960-ft" and real["clip_text"]["pretrained"] == "openai"
