"""Keyword-gesture accuracy: known answers on constructed motions and on a generated BEAT2-format root."""

from __future__ import annotations

import numpy as np
import pytest

from semtalk.data.beat2 import SemRow
from semtalk.metrics.keyword_gesture import (
    KeywordGestureClassifier,
    features_of,
    fit_on_root,
    keyword_accuracy,
    keyword_segments,
    root_segments,
    segment_label,
)

FPS = 30
# class -> (left shoulder, right shoulder) axis-angle z rotations: four distinct arm poses
POSES = {
    "03_deictic_m": (0.0, 0.0),
    "07_iconic_h": (1.2, -1.2),
    "08_metaphoric_l": (1.2, 0.0),
    "10_metaphoric_h": (0.0, -1.2),
}


def _clip(labels: list[str], seed: int, frames_per_event: int = 30) -> tuple[np.ndarray, list[SemRow]]:
    """A clip of rest pose with one held arm pose per event (1 s each, 1 s of rest between)."""
    rng = np.random.default_rng(seed)
    n = 2 * frames_per_event * len(labels) + frames_per_event
    poses = 0.01 * rng.standard_normal((n, 165)).astype(np.float32)
    poses[:, :3] = [0.0, rng.uniform(-1, 1), 0.0]  # a global turn must not matter (pelvis frame)
    rows = []
    for i, lab in enumerate(labels):
        a = (2 * i + 1) * frames_per_event
        left, right = POSES[lab]
        poses[a : a + frames_per_event, 16 * 3 + 2] += left  # left shoulder
        poses[a : a + frames_per_event, 17 * 3 + 2] += right  # right shoulder
        rows.append(SemRow(lab, a / FPS, (a + frames_per_event - 1) / FPS, 0.5, "word"))
    rows.append(SemRow("01_beat_align", 0.0, n / FPS, 0.1, ""))  # beat-only rows are no segment
    return poses, rows


def _data(body_model, seeds, labels):
    motions, segments = {}, []
    for s in seeds:
        poses, rows = _clip(labels, s)
        cid = f"clip{s}"
        motions[cid] = (poses, np.zeros(300, np.float32))
        segments += keyword_segments(cid, rows, poses.shape[0])
    return motions, segments


def test_labels_and_segments():
    assert segment_label("07_iconic_h") == "07_iconic_h"
    assert segment_label("07_iconic_h", "category") == "iconic"
    assert segment_label("03_deictic_m", "category") == "deictic"
    with pytest.raises(ValueError, match="labels"):
        segment_label("x", "level")
    rows = [SemRow("01_beat_align", 0, 5, 0.1), SemRow("habit", 0, 1, 0.3), SemRow("05_iconic_l", 1.0, 1.5, 0.5),
            SemRow("06_iconic_m", 4.8, 6.0, 0.6), SemRow("04_deictic_h", 2.0, 2.05, 0.4)]  # fmt: skip
    segs = keyword_segments("c", rows, frames=150)
    # beat-only and habit rows dropped, the last one too short (2 frames); the second clipped to the clip
    assert [(s.label, s.start, s.stop) for s in segs] == [("05_iconic_l", 30, 46), ("06_iconic_m", 144, 150)]


def test_known_answer(body_model, tmp_path):
    labels = list(POSES)
    train_m, train_s = _data(body_model, [0, 1, 2], labels)
    test_m, test_s = _data(body_model, [7, 8], labels[::-1])
    clf = KeywordGestureClassifier.fit(features_of(body_model, train_m, train_s), [s.label for s in train_s])
    assert clf.classes == sorted(labels) and set(clf.counts.values()) == {3}
    truth = keyword_accuracy(clf, features_of(body_model, test_m, test_s), test_s)
    assert truth["accuracy"] == 1.0 and truth["chance"] == 0.25 and truth["predicted_classes"] == 4
    # one gesture for every class (the failure the metric exists for): only that class's segments are right
    same = {cid: (np.repeat(p[45:46], p.shape[0], 0), b) for cid, (p, b) in test_m.items()}  # the first event's pose
    one = keyword_accuracy(clf, features_of(body_model, same, test_s), test_s)
    assert one["predicted_classes"] == 1 and one["accuracy"] == pytest.approx(0.25)
    # swapped arms (each class shown another class's pose) score 0
    swapped = {}
    for cid, (p, b) in test_m.items():
        q = p.copy()
        q[:, [16 * 3 + 2, 17 * 3 + 2]] = -p[:, [17 * 3 + 2, 16 * 3 + 2]]
        swapped[cid] = (q, b)
    assert keyword_accuracy(clf, features_of(body_model, swapped, test_s), test_s)["accuracy"] < 0.75
    # save / load round trip predicts the same
    path = clf.save(tmp_path / "kw.npz")
    again = KeywordGestureClassifier.load(path)
    f = features_of(body_model, test_m, test_s)
    assert again.predict(f) == clf.predict(f) and again.k == clf.k
    with pytest.raises(FileNotFoundError, match="keyword-gesture classifier"):
        KeywordGestureClassifier.load(tmp_path / "missing.npz")


def test_fit_needs_two_classes():
    with pytest.raises(ValueError, match="two classes"):
        KeywordGestureClassifier.fit(np.zeros((3, 4)), ["a", "a", "a"])


def test_on_generated_root(body_model, tmp_path):
    """On a generated root the ground truth's own test segments are classified far above chance."""
    from semtalk.data.root import Beat2Root
    from semtalk.synth.dataset import make_dataset

    root = tmp_path / "root"
    make_dataset(root, num_speakers=1, clips_per_speaker=8, clip_seconds=12.0, seed=3, progress=False)
    clf = fit_on_root(root, body_model)
    beat2 = Beat2Root(root)
    ids = beat2.clip_ids(["val", "test"])
    from semtalk.data.beat2 import load_motion

    motions = {c: (load_motion(beat2.motion_path(c)).poses, load_motion(beat2.motion_path(c)).betas) for c in ids}
    segs = root_segments(beat2, ids)
    assert segs, "the generated val/test clips hold keyword segments"
    res = keyword_accuracy(clf, features_of(body_model, motions, segs), segs)
    assert res["segments"] + res["unknown"] == len(segs)
    assert res["accuracy"] > max(2 * res["chance"], res["majority"])
