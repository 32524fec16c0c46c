"""The BEAT2 readers: the real clip loads; every kind of bad input gets a clear error naming the file."""

import numpy as np
import pytest
import soundfile as sf

from motion_fixtures import motion_arrays
from semtalk.data import (
    Beat2Root,
    DataError,
    load_audio,
    load_motion,
    load_sem,
    load_split,
    load_textgrid,
    speaker_index,
    speaker_of,
)


def write_motion(path, t=60, **override):
    np.savez(path, **motion_arrays(t, **override))
    return path


TEXTGRID = """File type = "ooTextFile"
Object class = "TextGrid"

xmin = 0
xmax = {xmax}
tiers? <exists>
size = 1
item []:
    item [1]:
        class = "IntervalTier"
        name = "words"
        xmin = 0
        xmax = {xmax}
        intervals: size = {n}
{intervals}
"""


def write_textgrid(path, words, xmax=None):
    xmax = xmax if xmax is not None else max(e for _, e, _ in words)
    body = "".join(
        f'        intervals [{i + 1}]:\n            xmin = {s}\n            xmax = {e}\n            text = "{w}"\n'
        for i, (s, e, w) in enumerate(words)
    )
    path.write_text(TEXTGRID.format(xmax=xmax, n=len(words), intervals=body))
    return path


def test_real_clip(beat2_sample):
    m = load_motion(beat2_sample / "2_scott_0_1_1.npz")
    assert m.poses.shape == (1906, 165) and m.poses.dtype == np.float32
    assert m.trans.shape == (1906, 3) and m.expressions.shape == (1906, 100) and m.betas.shape == (300,)
    assert m.fps == 30 and abs(m.seconds - 63.53) < 0.01
    audio = load_audio(beat2_sample / "2_scott_0_1_1.wav")
    assert audio.dtype == np.float32 and audio.ndim == 1 and abs(len(audio) / 16000 - 64.10) < 0.01


def test_speaker_ids():
    assert speaker_of("2_scott_0_1_1") == 2 and speaker_index(2) == 1 and speaker_index(30) == 24
    with pytest.raises(DataError, match="speaker"):
        speaker_of("scott_0_1_1")
    with pytest.raises(ValueError, match="8"):
        speaker_index(8)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"poses": None}, "missing keys \\['poses'\\]"),
        ({"poses": np.zeros((60, 156), np.float32)}, "poses has shape \\(60, 156\\)"),
        ({"trans": np.zeros((59, 3))}, "trans has shape"),
        ({"expressions": np.zeros((60, 120))}, "expressions has shape"),
        ({"mocap_frame_rate": np.array(120)}, "120 fps"),
    ],
)
def test_bad_motion_files(tmp_path, override, match):
    path = write_motion(tmp_path / "1_a_0_1_1.npz", **override)
    with pytest.raises(DataError, match=match) as err:
        load_motion(path)
    assert str(path) in str(err.value) and "Fix:" in str(err.value)


def test_nan_poses_name_the_frame(tmp_path):
    poses = np.zeros((60, 165), np.float32)
    poses[17, 4] = np.nan
    path = write_motion(tmp_path / "c.npz", poses=poses)
    with pytest.raises(DataError, match="1 NaN/Inf values \\(first at frame 17\\)"):
        load_motion(path)


def test_truncated_npz(tmp_path):
    good = write_motion(tmp_path / "good.npz", t=300)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(DataError, match="truncated or corrupt|cannot be read"):
        load_motion(bad)
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(DataError, match="not a readable npz"):
        load_motion(tmp_path / "text.npz")


def test_short_betas_are_padded(tmp_path):
    m = load_motion(write_motion(tmp_path / "b.npz", betas=np.ones(10, np.float32)))
    assert m.betas.shape == (300,) and m.betas[:10].sum() == 10 and m.betas[10:].sum() == 0


def test_audio_conversion(tmp_path):
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    sf.write(tmp_path / "s.wav", stereo, 44100)
    audio = load_audio(tmp_path / "s.wav")
    assert audio.shape == (16000,) and audio.dtype == np.float32
    # the tone survives resampling: its spectrum peaks at 440 Hz
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 440) < 2
    sf.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    with pytest.raises(DataError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF0000junk")
    with pytest.raises(DataError, match="not a readable audio"):
        load_audio(tmp_path / "junk.wav")


def test_textgrid(tmp_path):
    words = load_textgrid(write_textgrid(tmp_path / "a.TextGrid", [(0, 0.5, ""), (0.5, 1.0, "hello"), (1.0, 2, "")]))
    assert [w.word for w in words] == ["", "hello", ""] and words[1].start == 0.5
    overlapping = write_textgrid(tmp_path / "b.TextGrid", [(0, 0.6, "one"), (0.5, 1.0, "two")])
    with pytest.raises(DataError, match="overlap|not a readable"):
        load_textgrid(overlapping)
    late = write_textgrid(tmp_path / "c.TextGrid", [(0, 5.0, "late")])
    with pytest.raises(DataError, match="ends at 5.00 s but the audio lasts 2.00 s"):
        load_textgrid(late, duration=2.0)
    (tmp_path / "d.TextGrid").write_text("garbage")
    with pytest.raises(DataError, match="not a readable TextGrid"):
        load_textgrid(tmp_path / "d.TextGrid")


def test_sem(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("01_beat_align\t0\t1.0\t1.0\t0.1\n05_iconic_l\t1.0\t2.0\t1.0\t0.5\tbig\n\n")
    rows = load_sem(path)
    assert [(r.name, r.score, r.keywords) for r in rows] == [("01_beat_align", 0.1, ""), ("05_iconic_l", 0.5, "big")]
    path.write_text("01_beat_align\t0\t1.0\n")
    with pytest.raises(DataError, match="line 1 has 3 columns"):
        load_sem(path)
    path.write_text("x\t0\tone\t1\t0.1\n")
    with pytest.raises(DataError, match="line 1: start/end/score are not numbers"):
        load_sem(path)
    path.write_text("x\t0\t1\t1\t7\n")
    with pytest.raises(DataError, match="outside"):
        load_sem(path)


def _root(tmp_path, audio_seconds=2.0, motion_frames=60):
    for sub in ("smplxflame_30", "wave16k", "textgrid", "sem"):
        (tmp_path / sub).mkdir()
    write_motion(tmp_path / "smplxflame_30" / "2_a_0_1_1.npz", t=motion_frames)
    sf.write(tmp_path / "wave16k" / "2_a_0_1_1.wav", np.zeros(int(16000 * audio_seconds), np.float32), 16000)
    write_textgrid(tmp_path / "textgrid" / "2_a_0_1_1.TextGrid", [(0, 1.0, "hi"), (1.0, 2.0, "")])
    (tmp_path / "train_test_split.csv").write_text("id,type\n2_a_0_1_1,train\n")
    return Beat2Root(tmp_path)


def test_root_loads_a_clip(tmp_path):
    clip = _root(tmp_path).load_clip("2_a_0_1_1")
    assert clip.speaker == 2 and clip.motion.num_frames == 60 and len(clip.audio) == 32000
    assert [w.word for w in clip.words] == ["hi", ""] and clip.sem == []


def test_root_rejects_mismatched_lengths(tmp_path):
    root = _root(tmp_path, audio_seconds=10.0)
    with pytest.raises(DataError, match="audio longer by 8.00 s"):
        root.load_clip("2_a_0_1_1")


def test_split_naming_missing_files(tmp_path):
    root = _root(tmp_path)
    (tmp_path / "train_test_split.csv").write_text("id,type\n2_a_0_1_1,train\n2_b_0_2_2,train\n2_c_0_3_3,test\n")
    with pytest.raises(DataError, match="1 listed clips lack their npz or wav: 2_b_0_2_2"):
        root.clip_ids(["train"])
    assert load_split(root.split_path)["2_c_0_3_3"] == "test"
    (tmp_path / "train_test_split.csv").write_text("name,split\nx,train\n")
    with pytest.raises(DataError, match="expected 'id,type'"):
        root.clip_ids()


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="semtalk make-dataset"):
        Beat2Root(tmp_path / "nope")
