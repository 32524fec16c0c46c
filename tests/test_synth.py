"""The self-generated BEAT2-format dataset: layout, formats, determinism, and the rules linking motion to
speech (generated once per module: 2 speakers x 3 clips x 5 s)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf
import textgrid
import torch

from semtalk.body.joints import FOOT_JOINTS, FPS, NUM_BETAS, NUM_EXPRESSIONS, SAMPLE_RATE
from semtalk.body.rotations import axis_angle_to_matrix, geodesic_angle
from semtalk.synth import dataset as dataset_module
from semtalk.synth.annotation import frame_scores, sem_rows
from semtalk.synth.dataset import make_dataset
from semtalk.synth.gestures import CLASS_BY_NAME, KEYWORD_CLASSES, WORD_TO_CLASS, GestureEvent
from semtalk.synth.script import FILLERS, make_sentence
from semtalk.synth.skeleton import FOREARM, REST_JOINTS, UPPER_ARM, forward_kinematics, left_arm_ik
from semtalk.synth.speech import Voice, synthesize_batch
from semtalk.synth.style import BEAT2_SPEAKERS

ARGS = dict(num_speakers=2, clips_per_speaker=3, clip_seconds=5.0, progress=False)
SUBDIRS = {"smplxflame_30": ".npz", "wave16k": ".wav", "textgrid": ".TextGrid", "sem": ".txt"}
CATEGORIES = {
    "01_beat_align": 0.1,
    "02_deictic_l": 0.2, "03_deictic_m": 0.3, "04_deictic_h": 0.4,
    "05_iconic_l": 0.5, "06_iconic_m": 0.6, "07_iconic_h": 0.7,
    "08_metaphoric_l": 0.8, "09_metaphoric_m": 0.9, "10_metaphoric_h": 1.0,
}  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Two datasets with seed 0 and one with seed 1, plus the statistics of the first."""
    root = tmp_path_factory.mktemp("synth")
    stats = make_dataset(root / "a", seed=0, **ARGS)
    make_dataset(root / "b", seed=0, **ARGS)
    make_dataset(root / "c", seed=1, **ARGS)
    return root, stats


def _ids(out: Path) -> list[str]:
    return [line.split(",")[0] for line in (out / "train_test_split.csv").read_text().splitlines()[1:]]


def _sem(out: Path, cid: str) -> list[list[str]]:
    return [line.split("\t") for line in (out / "sem" / f"{cid}.txt").read_text().splitlines()]


def _clips(out: Path):
    """(id, npz, audio, TextGrid, sem rows) for every clip."""
    for cid in _ids(out):
        npz = np.load(out / "smplxflame_30" / f"{cid}.npz")
        audio, sr = sf.read(out / "wave16k" / f"{cid}.wav", dtype="float32")
        assert sr == SAMPLE_RATE
        tg = textgrid.TextGrid.fromFile(str(out / "textgrid" / f"{cid}.TextGrid"))
        yield cid, npz, audio, tg, _sem(out, cid)


def _semantic_mask(rows: list[list[str]], n: int, margin: float = 0.0) -> np.ndarray:
    """Frames inside a semantic row, widened by `margin` seconds on both sides."""
    t = np.arange(n) / FPS
    mask = np.zeros(n, bool)
    for r in rows:
        if float(r[4]) > 0.1:
            mask |= (t >= float(r[1]) - margin) & (t <= float(r[2]) + margin)
    return mask


# ------------------------------------------------------------------------------------------- layout


def test_layout_and_split(generated):
    root, stats = generated
    out = root / "a"
    ids = _ids(out)
    assert len(ids) == 6 and len(set(ids)) == 6
    for cid in ids:
        m = re.fullmatch(r"(\d+)_([a-z]+)_0_(\d+)_(\d+)", cid)
        assert m and m.group(3) == m.group(4)
        assert BEAT2_SPEAKERS[int(m.group(1))] == m.group(2)
        for sub, ext in SUBDIRS.items():
            assert (out / sub / f"{cid}{ext}").is_file()
    for sub in SUBDIRS:  # nothing else, no temporary files
        assert sorted(p.name for p in (out / sub).iterdir()) == sorted(f"{c}{SUBDIRS[sub]}" for c in ids)
    assert {int(c.split("_")[0]) for c in ids} == {2, 1}  # speaker 2 ("scott") always included
    lines = (out / "train_test_split.csv").read_text().splitlines()
    assert lines[0] == "id,type"
    per_speaker: dict[str, set[str]] = {}
    for line in lines[1:]:
        cid, split = line.split(",")
        per_speaker.setdefault(cid.split("_")[0], set()).add(split)
    assert all(s == {"train", "val", "test"} for s in per_speaker.values())
    assert json.loads((out / "dataset_stats.json").read_text()) == stats
    assert stats["clips"] == 6 and stats["splits"]["train"]["clips"] == 2
    assert stats["frames"] == sum(np.load(out / "smplxflame_30" / f"{c}.npz")["poses"].shape[0] for c in ids)
    assert 0.0 <= stats["semantic_frame_share"] <= 1.0
    assert sorted(p.name for p in (out / "weights").iterdir()) == ["vocab.pkl"]


def test_vocabulary_and_held_out_keywords(generated):
    """weights/vocab.pkl indexes every word of the TextGrids, with class-structured vectors; the val and test
    clips say only keywords the training clips said, plus (test only) the held-out synonyms."""
    from semtalk.data.root import Beat2Root
    from semtalk.features.vocab import load_vocab_pkl
    from semtalk.synth.gestures import keyword_class
    from semtalk.synth.script import HELD_OUT_KEYWORDS, keyword_slots
    from semtalk.synth.vocab import word_vectors

    root, stats = generated
    out = root / "a"
    vocab = load_vocab_pkl(out / "weights" / "vocab.pkl")
    assert vocab.embeddings is not None and vocab.embeddings.shape == (len(vocab), 300)
    said: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    beat2 = Beat2Root(out)
    for split in said:
        for cid in beat2.clip_ids([split]):
            for w in beat2.load_clip(cid, sem=False).words:
                assert vocab.index(w.word) > 3, f"{w.word!r} is not in the vocabulary"
                if keyword_class(w.word.lower()):
                    said[split].add(w.word.lower())
    assert not said["train"] & set(HELD_OUT_KEYWORDS) and not said["val"] & set(HELD_OUT_KEYWORDS)
    assert said["val"] <= said["train"] and said["test"] <= said["train"] | set(HELD_OUT_KEYWORDS)
    assert stats["held_out_keywords"] == list(HELD_OUT_KEYWORDS)
    assert all(w not in HELD_OUT_KEYWORDS for words in keyword_slots(None).values() for w in words)
    # same-class words lie close together, other pairs do not; the vectors do not depend on word order
    v = dict(zip(["big", "huge", "small", "tiny", "house", "river"],
                 word_vectors(["big", "huge", "small", "tiny", "house", "river"], seed=0)))  # fmt: skip
    assert float(v["big"] @ v["huge"]) > 0.6 and float(v["small"] @ v["tiny"]) > 0.6
    assert max(abs(float(v["big"] @ v["small"])), abs(float(v["house"] @ v["river"]))) < 0.3
    assert np.array_equal(word_vectors(["huge", "big"], seed=0)[1], v["big"])
    assert not np.array_equal(word_vectors(["big"], seed=1)[0], v["big"])


def test_npz_format(generated):
    root, _ = generated
    betas_by_speaker: dict[str, np.ndarray] = {}
    for cid, npz, audio, _, _ in _clips(root / "a"):
        assert set(npz.files) == {"poses", "trans", "betas", "expressions", "model", "gender", "mocap_frame_rate"}
        t = npz["poses"].shape[0]
        assert npz["poses"].dtype == np.float32 and npz["poses"].shape == (t, 165)
        assert npz["trans"].dtype == np.float64 and npz["trans"].shape == (t, 3)
        assert npz["betas"].dtype == np.float32 and npz["betas"].shape == (NUM_BETAS,)
        assert npz["expressions"].dtype == np.float64 and npz["expressions"].shape == (t, NUM_EXPRESSIONS)
        assert npz["model"].dtype == np.dtype("<U9") and str(npz["model"]) == "smplx2020"
        assert npz["gender"].dtype == np.dtype("<U7") and str(npz["gender"]) == "neutral"
        assert npz["mocap_frame_rate"].dtype == np.int32 and int(npz["mocap_frame_rate"]) == 30
        assert t == round(len(audio) / SAMPLE_RATE * FPS)
        for key in ("poses", "trans", "expressions"):
            assert np.isfinite(npz[key]).all()
        eyes = npz["poses"][:, 69:75]
        assert 0.0 < np.abs(eyes).max() < 0.2
        assert npz["trans"][:, 1].min() > 1.15 and npz["trans"][:, 1].max() < 1.35
        assert np.abs(npz["poses"][:, :3]).max() < 0.3  # upright, near-zero global orientation
        assert np.abs(npz["betas"]).max() < 3.0
        speaker = cid.split("_")[0]
        if speaker in betas_by_speaker:
            np.testing.assert_array_equal(betas_by_speaker[speaker], npz["betas"])
        betas_by_speaker[speaker] = npz["betas"]
    assert not np.array_equal(*betas_by_speaker.values())


def test_wav_format(generated):
    root, _ = generated
    for cid in _ids(root / "a"):
        info = sf.info(root / "a" / "wave16k" / f"{cid}.wav")
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "FLOAT"
        y, _ = librosa.load(root / "a" / "wave16k" / f"{cid}.wav", sr=None)
        assert y.dtype == np.float32 and 0.2 < np.abs(y).max() <= 1.0
        assert 2.5 < len(y) / 16000 < 9.0


def test_textgrid_words_cover_the_audio(generated):
    root, _ = generated
    for _, _, audio, tg, _ in _clips(root / "a"):
        duration = len(audio) / SAMPLE_RATE
        words = tg[0]
        assert words.name == "words" and tg[1].name == "phones"
        ivs = list(words)
        assert ivs[0].minTime == 0.0 and abs(ivs[-1].maxTime - duration) < 1e-3
        for a, b in zip(ivs, ivs[1:]):
            assert a.maxTime == pytest.approx(b.minTime, abs=1e-6)
        marks = [iv.mark for iv in ivs if iv.mark]
        assert len(marks) >= 3 and all(re.fullmatch(r"[a-z']+", m) for m in marks)
        assert any(iv.mark == "" for iv in ivs)  # silences are empty marks


def test_sem_rows(generated):
    root, _ = generated
    for cid, _, audio, _, rows in _clips(root / "a"):
        duration = len(audio) / SAMPLE_RATE
        assert rows[0][1] == "0.0000"
        assert float(rows[-1][2]) == pytest.approx(duration, abs=1e-3)
        for k, r in enumerate(rows):
            assert len(r) == 6, f"{cid}: {r}"
            name, start, end, dur, score, keyword = r[0], *map(float, r[1:5]), r[5]
            assert name in CATEGORIES and score == pytest.approx(CATEGORIES[name])
            assert end > start and dur == pytest.approx(end - start, abs=2e-4)
            if name == "01_beat_align":
                assert keyword == ""
            else:
                assert WORD_TO_CLASS[keyword].category == name
            if k:
                assert float(rows[k - 1][2]) == start  # rows tile [0, duration]
        for a, b in zip(rows, rows[1:]):
            assert not (a[0] == b[0] == "01_beat_align")  # beat rows only fill gaps


# --------------------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_differs(generated):
    root, _ = generated
    ids = _ids(root / "a")
    assert ids == _ids(root / "b")
    for cid in ids:
        for sub, ext in SUBDIRS.items():
            a = (root / "a" / sub / f"{cid}{ext}").read_bytes()
            assert a == (root / "b" / sub / f"{cid}{ext}").read_bytes(), f"{sub}/{cid}{ext} differs"
    for name in ("train_test_split.csv", "dataset_stats.json"):
        assert (root / "a" / name).read_bytes() == (root / "b" / name).read_bytes()
    for cid in ids:
        a = np.load(root / "a" / "smplxflame_30" / f"{cid}.npz")["poses"]
        c = np.load(root / "c" / "smplxflame_30" / f"{cid}.npz")["poses"]
        assert a.shape != c.shape or not np.array_equal(a, c)


def test_rerun_is_a_noop(generated):
    root, stats = generated
    out = root / "a"
    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    assert make_dataset(out, seed=0, **ARGS) == stats
    assert {p: p.stat().st_mtime_ns for p in files} == before
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    with pytest.raises(FileExistsError, match="different arguments"):
        make_dataset(out, seed=3, **ARGS)


def test_interrupted_run_leaves_only_whole_files(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = dataset_module.make_clip

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset_module, "make_clip", flaky)
    args = dict(num_speakers=1, clips_per_speaker=3, clip_seconds=3.0, progress=False)
    with pytest.raises(KeyboardInterrupt):
        make_dataset(tmp_path, **args)
    assert not (tmp_path / ".complete").exists() and not (tmp_path / "train_test_split.csv").exists()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) == 4 and not any(p.name.endswith(".tmp") for p in written)
    (npz,) = (tmp_path / "smplxflame_30").glob("*.npz")  # the training clip, generated first
    np.load(npz)["poses"]  # a whole, readable file
    monkeypatch.setattr(dataset_module, "make_clip", real)
    stats = make_dataset(tmp_path, **args)  # resumes into the same folder
    assert stats["clips"] == 3 and (tmp_path / ".complete").exists()


def test_bad_arguments_and_foreign_folders(tmp_path):
    with pytest.raises(ValueError, match="clips_per_speaker"):
        make_dataset(tmp_path / "x", clips_per_speaker=2, progress=False)
    with pytest.raises(ValueError, match="num_speakers"):
        make_dataset(tmp_path / "x", num_speakers=26, progress=False)
    (tmp_path / "y" / "smplxflame_30").mkdir(parents=True)
    (tmp_path / "y" / "smplxflame_30" / "2_scott_0_1_1_real.npz").write_bytes(b"")
    with pytest.raises(FileExistsError, match="would not write"):
        make_dataset(tmp_path / "y", num_speakers=1, clips_per_speaker=3, progress=False)


# -------------------------------------------------------------------------------------------- rules


def _envelope(audio: np.ndarray, n: int) -> np.ndarray:
    """RMS at 100 Hz, interpolated to the frame times (independent of the generator's own feature)."""
    hop = SAMPLE_RATE // 100
    rms = librosa.feature.rms(y=audio, frame_length=1024, hop_length=hop, center=True)[0]
    return np.interp(np.arange(n) / FPS, np.arange(len(rms)) * hop / SAMPLE_RATE, rms)


def _lag_corr(x: np.ndarray, y: np.ndarray, lag: int) -> float:
    if lag > 0:
        x, y = x[lag:], y[:-lag]
    elif lag < 0:
        x, y = x[:lag], y[-lag:]
    return float(np.corrcoef(x, y)[0, 1])


def test_jaw_follows_loudness_at_lag_zero(generated):
    root, _ = generated
    for cid, npz, audio, _, _ in _clips(root / "a"):
        jaw = npz["poses"][:, 66].astype(np.float64)  # jaw opening (x rotation)
        env = _envelope(audio, len(jaw))
        c0 = _lag_corr(jaw, env, 0)
        assert c0 > 0.3, cid
        assert c0 > _lag_corr(jaw, env, FPS) and c0 > _lag_corr(jaw, env, -FPS), cid
        assert c0 >= max(_lag_corr(jaw, env, k) for k in (-3, -2, -1, 1, 2, 3)), cid


def test_semantic_rows_sit_on_their_keywords(generated):
    root, stats = generated
    n_semantic = 0
    for cid, _, _, tg, rows in _clips(root / "a"):
        words = [(iv.mark, iv.minTime, iv.maxTime) for iv in tg[0] if iv.mark]
        semantic = [r for r in rows if r[0] != "01_beat_align"]
        n_semantic += len(semantic)
        for r in semantic:  # each annotated gesture covers its keyword...
            start, end = float(r[1]), float(r[2])
            assert any(w == r[5] and a < end and b > start for w, a, b in words), (cid, r)
        for w, a, b in words:  # ...and every keyword is annotated with its class's label
            if w in WORD_TO_CLASS:
                mid = 0.5 * (a + b)
                hits = [r for r in semantic if float(r[1]) <= mid <= float(r[2])]
                assert hits and hits[0][0] == WORD_TO_CLASS[w].category and hits[0][5] == w, (cid, w)
    assert n_semantic >= 3
    assert sum(stats["keywords"].values()) == n_semantic


def test_wrists_move_fastest_around_onsets(generated):
    root, _ = generated
    near_speed, far_speed = [], []
    for _, npz, audio, _, rows in _clips(root / "a"):
        joints = forward_kinematics(npz["poses"], npz["trans"])
        n = len(joints)
        speed = np.linalg.norm(np.gradient(joints[:, [20, 21]], 1.0 / FPS, axis=0), axis=-1).mean(-1)
        onsets = librosa.onset.onset_detect(y=audio, sr=SAMPLE_RATE, hop_length=512, units="time")
        dist = np.full(n, np.inf)
        for t in onsets:
            dist = np.minimum(dist, np.abs(np.arange(n) - t * FPS))
        free = ~_semantic_mask(rows, n, margin=0.35)  # semantic gestures incl. their ramps
        near_speed.append(speed[free & (dist <= 4)])
        far_speed.append(speed[free & (dist > 8)])
    near, far = np.concatenate(near_speed), np.concatenate(far_speed)
    assert len(near) > 50 and len(far) > 20
    assert near.mean() > 1.5 * far.mean()


def test_motion_is_smooth_and_within_joint_limits(generated):
    root, _ = generated
    for cid, npz, _, _, _ in _clips(root / "a"):
        aa = torch.as_tensor(npz["poses"].reshape(-1, 55, 3), dtype=torch.float64)
        rot = axis_angle_to_matrix(aa)
        step = geodesic_angle(rot[1:], rot[:-1])
        assert step.max() < 0.35, f"{cid}: a joint turns {float(step.max()):.2f} rad in one frame"
        assert np.abs(np.diff(npz["trans"], axis=0)).max() < 0.01
        assert np.abs(np.diff(npz["expressions"], axis=0)).max() < 1.0  # BEAT2's sample: 99th pct 1.66
        angle = aa.norm(dim=-1).numpy()
        p = aa.numpy()
        assert angle[:, [3, 6, 9, 12, 15]].max() < 0.5  # spine, neck, head
        assert angle[:, [1, 2, 4, 5, 7, 8]].max() < 0.8  # legs
        assert p[:, [4, 5], 0].min() > 0.0  # knees only bend forward
        assert angle[:, [16, 17]].min() > 0.6 and angle[:, [16, 17]].max() < 2.2  # shoulders: never a T-pose
        assert p[:, 18, 1].max() < 0.0 and p[:, 19, 1].min() > 0.0  # elbows only flex
        assert angle[:, [18, 19]].max() < 2.5
        assert angle[:, [20, 21]].max() < 1.6  # wrists
        assert angle[:, 25:].max() < 2.0  # fingers
        assert p[:, 22, 0].min() >= 0.0 and p[:, 22, 0].max() < 0.45  # jaw opens, not beyond 26 degrees


def test_feet_stay_planted(generated):
    root, _ = generated
    for cid, npz, _, _, _ in _clips(root / "a"):
        joints = forward_kinematics(npz["poses"], npz["trans"])[:, list(FOOT_JOINTS)]
        step = np.linalg.norm(np.diff(joints, axis=0), axis=-1)
        assert np.mean(step < 0.01) > 0.99, cid  # BEAT2's foot-contact threshold
        assert np.abs(joints[..., 1]).max() < 0.12  # feet near the floor


# ------------------------------------------------------------------------------------------ modules


def test_speech_timings_and_reproducibility():
    text = "We found two small boxes near the river."
    voice = Voice("en-gb+f2", rate=170, pitch=55)
    (a,), (b,) = synthesize_batch([(text, voice)]), synthesize_batch([(text, voice)])
    np.testing.assert_array_equal(a.audio, b.audio)
    assert [w.label for w in a.words] == ["we", "found", "two", "small", "boxes", "near", "the", "river"]
    for u, v in zip(a.words, a.words[1:]):
        assert u.start < u.end <= v.start
    assert a.words[-1].end <= a.duration + 1e-6
    # the words cover the speech: audio inside word intervals is far louder than outside them
    inside = np.zeros(len(a.audio), bool)
    for w in a.words:
        inside[int(w.start * a.sample_rate) : int(w.end * a.sample_rate)] = True
    assert inside.mean() > 0.8 and (~inside).sum() > 100
    assert np.sqrt(np.mean(a.audio[inside] ** 2)) > 10 * np.sqrt(np.mean(a.audio[~inside] ** 2))


def test_arm_ik_reaches_its_targets():
    rng = np.random.default_rng(0)
    targets = rng.uniform([-0.15, -0.45, 0.1], [0.35, 0.15, 0.4], (64, 3))
    sh, el, wr = left_arm_ik(targets, rng.uniform(0.0, 0.8, 64), wrist=rng.normal(0.0, 0.3, (64, 3)))
    poses = np.zeros((64, 55, 3))
    poses[:, 16], poses[:, 18], poses[:, 20] = sh, el, wr
    joints = forward_kinematics(poses)
    d = np.linalg.norm(targets, axis=-1)
    reachable = (d < 0.985 * (UPPER_ARM + FOREARM) - 0.06) & (d > abs(UPPER_ARM - FOREARM) + 0.11)
    assert reachable.sum() > 32
    np.testing.assert_allclose((joints[:, 20] - REST_JOINTS[16])[reachable], targets[reachable], atol=1e-6)


def test_sentences_use_keywords_and_fillers_do_not():
    for options in FILLERS.values():
        for phrase in options:
            assert not set(phrase.split()) & set(WORD_TO_CLASS), phrase
    rng = np.random.default_rng(0)
    sentences = [make_sentence(rng) for _ in range(400)]
    with_keyword = np.mean([any(w.strip(".,").lower() in WORD_TO_CLASS for w in s.split()) for s in sentences])
    assert 0.3 < with_keyword < 0.8
    seen = {
        WORD_TO_CLASS[w.strip(".,").lower()].name
        for s in sentences
        for w in s.split()
        if w.strip(".,").lower() in WORD_TO_CLASS
    }
    assert seen == {c.name for c in KEYWORD_CLASSES}


def test_sem_rows_split_overlaps_and_tile_the_clip():
    big, no = CLASS_BY_NAME["big"], CLASS_BY_NAME["negation"]
    events = [GestureEvent(big, "big", 1.0, 1.3), GestureEvent(no, "never", 1.5, 1.8)]
    rows = sem_rows(events, tempo=1.0, duration=4.0)
    assert [r.name for r in rows] == ["01_beat_align", "07_iconic_h", "09_metaphoric_m", "01_beat_align"]
    assert all(a.end == b.start for a, b in zip(rows, rows[1:])) and rows[-1].end == 4.0
    scores = frame_scores(rows, 120)
    assert scores[0] == 0.0 and scores[36] == pytest.approx(0.7) and scores[50] == pytest.approx(0.9)
