"""Keyword-gesture accuracy: does the generated motion make the gesture of the annotated keyword class?

For every annotated semantic segment of a clip (a `sem/<id>.txt` row whose score is above the beat-only level),
the upper body and hands over the segment's frames are summarised as one feature vector and classified into the
dataset's keyword classes by a classifier fitted on the ground truth's training-split segments. The accuracy of
the generated motion's segments, next to chance and next to the same classifier on the ground truth's own test
segments (the ceiling), says whether a model makes a distinct gesture per class.

Features (`segment_features`): positions of the upper-body and hand joints (`UPPER_JOINTS`, `HANDS_JOINTS`)
relative to the pelvis in the pelvis's own frame (the global orientation is zeroed before forward kinematics, so
turning or walking does not change them), averaged over the middle half of the segment (the stroke and hold) and
over its two outer quarters, so that a held pose and a moving one (a wave, a sweep) both leave a trace. The
classifier (`KeywordGestureClassifier`) standardises the features by the training statistics and takes the label
of the nearest training segment.

Labels: `labels="name"` uses the sem row's name (on the embedded dataset one class per keyword class, e.g.
`07_iconic_h`); `labels="category"` strips BEAT2's level prefix and `_l/_m/_h` suffix (`deictic`, `iconic`,
`metaphoric`, ...), which is what BEAT2's own annotation supports.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semtalk.atomic import atomic_path
from semtalk.body.joints import FPS, HANDS_JOINTS, NUM_JOINTS, UPPER_JOINTS
from semtalk.data.beat2 import load_motion, load_sem
from semtalk.data.root import Beat2Root
from semtalk.metrics.motion_inputs import BodyModelLike, body_joints

#: joints whose positions describe a gesture: upper body (spine to wrists) and both hands
GESTURE_JOINTS: tuple[int, ...] = tuple(UPPER_JOINTS) + tuple(HANDS_JOINTS)
#: sem rows at or below this score are beat-only (SemTalk's loader maps them to 0)
BEAT_ONLY_SCORE = 0.1
#: sem row names that are no gesture class (BEAT2's vocabulary)
NOT_A_CLASS = frozenset({"00_nogesture", "01_beat_align", "habit", "need_cut"})
_LEVEL = re.compile(r"^\d+_(?P<category>[a-z]+?)(?:_[lmh])?$")


def segment_label(name: str, labels: str = "name") -> str:
    """The class of a sem row name: the name itself (`labels="name"`) or its BEAT2 category (`"category"`:
    `07_iconic_h` -> `iconic`)."""
    if labels == "name":
        return name
    if labels != "category":
        raise ValueError(f"labels must be 'name' or 'category', got {labels!r}")
    m = _LEVEL.match(name)
    return m.group("category") if m else name


@dataclass(frozen=True)
class Segment:
    """One annotated keyword segment: its clip, class label and frame range `[start, stop)` at 30 fps."""

    clip_id: str
    label: str
    start: int
    stop: int
    keywords: str = ""


def keyword_segments(
    clip_id: str, sem_rows: Iterable, frames: int, labels: str = "name", min_frames: int = 4
) -> list[Segment]:
    """The gesture segments of one clip from its sem rows (objects with `name`, `start`, `end`, `score`,
    `keywords`): rows above the beat-only score and not in `NOT_A_CLASS`, clipped to the clip's `frames`, at
    least `min_frames` long."""
    out = []
    for row in sem_rows:
        if row.score <= BEAT_ONLY_SCORE or row.name in NOT_A_CLASS:
            continue
        start, stop = max(0, int(round(row.start * FPS))), min(frames, int(round(row.end * FPS)) + 1)
        if stop - start >= min_frames:
            out.append(Segment(clip_id, segment_label(row.name, labels), start, stop, getattr(row, "keywords", "")))
    return out


def pelvis_frame_joints(body_model: BodyModelLike, poses: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """`(T, 165)` axis-angle -> `(T, len(GESTURE_JOINTS), 3)` positions relative to the pelvis, in its frame."""
    local = np.array(poses, dtype=np.float32, copy=True)
    local[:, :3] = 0.0
    joints = body_joints(body_model, local, betas)
    return joints[:, list(GESTURE_JOINTS)] - joints[:, :1]


def segment_features(joints: np.ndarray, segment: Segment) -> np.ndarray:
    """`joints (T, J, 3)` from `pelvis_frame_joints` -> `(3 * J * 3,)`: mean positions over the middle half of
    the segment, its first quarter and its last quarter."""
    a, b = segment.start, min(segment.stop, joints.shape[0])
    if b - a < 1:
        raise ValueError(f"segment {segment} lies outside the motion's {joints.shape[0]} frames")
    n = b - a
    q1, q3 = a + n // 4, a + (3 * n) // 4
    pieces = [(q1, max(q3, q1 + 1)), (a, max(q1, a + 1)), (min(q3, b - 1), b)]
    return np.concatenate([joints[s:e].mean(0).ravel() for s, e in pieces]).astype(np.float64)


@dataclass
class KeywordGestureClassifier:
    """k-nearest-neighbour classifier (majority of the `k` nearest, ties to the nearest) on standardised segment
    features. Nearest neighbours rather than class centroids: a class can have several modes (the dominant hand
    is the left one for some speakers and the right one for others), which a centroid averages away (measured on
    the embedded dataset's test split, ground truth: 0.59 with centroids, 0.97 with 1-NN).

    Attributes:
        features: `(N, F)` standardised training features; labels: their `N` labels; mean, scale: `(F,)` the
        standardisation; k: neighbours that vote.
    """

    features: np.ndarray
    labels: list[str]
    mean: np.ndarray
    scale: np.ndarray
    k: int = 1

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items()))

    @classmethod
    def fit(cls, features: np.ndarray, labels: Sequence[str], k: int = 1) -> KeywordGestureClassifier:
        """`features (N, F)`, one label per row; at least two classes."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != len(labels):
            raise ValueError(f"features {x.shape} and {len(labels)} labels do not match")
        if len(set(labels)) < 2:
            raise ValueError(f"a keyword-gesture classifier needs at least two classes, got {sorted(set(labels))}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        mean, scale = x.mean(0), x.std(0)
        scale = np.where(scale > 1e-6 * max(float(scale.max()), 1e-12), scale, np.inf)
        return cls((x - mean) / scale, [str(v) for v in labels], mean, scale, int(k))

    def predict(self, features: np.ndarray) -> list[str]:
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        d = ((z[:, None, :] - self.features[None]) ** 2).sum(-1)  # (M, N)
        order = np.argsort(d, axis=1, kind="stable")[:, : self.k]
        out = []
        for row in order:
            votes = Counter(self.labels[i] for i in row)
            best = max(votes.values())
            out.append(next(self.labels[i] for i in row if votes[self.labels[i]] == best))
        return out

    def save(self, path: str | Path) -> Path:
        """Write the classifier as an `.npz` file (atomically)."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, features=self.features, labels=np.array(self.labels), mean=self.mean, scale=self.scale,
                     k=np.int64(self.k))  # fmt: skip
        return path

    @classmethod
    def load(cls, path: str | Path) -> KeywordGestureClassifier:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"keyword-gesture classifier {path} not found: fit one on a dataset's train split with "
                "`semtalk.metrics.keyword_gesture.fit_on_root(ROOT, body_model)` and `.save(path)`"
            )
        with np.load(path, allow_pickle=False) as d:
            return cls(d["features"], [str(v) for v in d["labels"]], d["mean"], d["scale"], int(d["k"]))


def features_of(
    body_model: BodyModelLike, motions: dict[str, tuple[np.ndarray, np.ndarray]], segments: Sequence[Segment]
) -> np.ndarray:
    """`(N, F)` features of `segments`, from `motions`: clip id -> `(poses (T, 165), betas (300,))`."""
    cache: dict[str, np.ndarray] = {}
    rows = []
    for s in segments:
        if s.clip_id not in cache:
            poses, betas = motions[s.clip_id]
            if poses.ndim != 2 or poses.shape[1] != NUM_JOINTS * 3:
                raise ValueError(f"{s.clip_id}: poses must be (T, {NUM_JOINTS * 3}), got {poses.shape}")
            cache[s.clip_id] = pelvis_frame_joints(body_model, poses, betas)
        rows.append(segment_features(cache[s.clip_id], s))
    return np.stack(rows) if rows else np.zeros((0, 3 * 3 * len(GESTURE_JOINTS)))


def keyword_accuracy(
    classifier: KeywordGestureClassifier,
    features: np.ndarray,
    segments: Sequence[Segment],
    held_out: Iterable[str] = (),
) -> dict:
    """Accuracy of `classifier` on `features` of `segments` against their labels, with chance levels.

    Returns `{"accuracy", "segments", "chance" (1 / classes), "majority" (share of the most frequent label),
    "per_class": {label: accuracy}, "confusion": {label: {predicted: count}}, "predicted_classes" (how many
    distinct classes were predicted), "held_out_accuracy", "held_out_segments", "seen_accuracy"}`: segments whose
    keyword is one of `held_out` (words the training clips never said) are also scored apart from the others
    (nan when there are none). Segments of labels the classifier does not know are left out (`"unknown"`)."""
    held = {w.lower() for w in held_out}
    known = [i for i, s in enumerate(segments) if s.label in classifier.classes]
    unknown = len(segments) - len(known)
    out = {"chance": 1.0 / len(classifier.classes), "classes": list(classifier.classes), "unknown": unknown}
    if not known:
        return {**out, "accuracy": float("nan"), "segments": 0, "majority": float("nan"), "per_class": {},
                "confusion": {}, "predicted_classes": 0, "held_out_accuracy": float("nan"), "held_out_segments": 0,
                "seen_accuracy": float("nan")}  # fmt: skip
    truth = [segments[i].label for i in known]
    pred = classifier.predict(np.asarray(features)[known])
    hits = np.array([t == p for t, p in zip(truth, pred)])
    confusion: dict[str, dict[str, int]] = {}
    for t, p in zip(truth, pred):
        confusion.setdefault(t, {}).setdefault(p, 0)
        confusion[t][p] += 1
    per_class = {c: float(np.mean([h for h, t in zip(hits, truth) if t == c])) for c in sorted(set(truth))}
    is_held = np.array([bool(set(segments[i].keywords.lower().split()) & held) for i in known])
    return {
        "held_out_accuracy": float(hits[is_held].mean()) if is_held.any() else float("nan"),
        "held_out_segments": int(is_held.sum()),
        "seen_accuracy": float(hits[~is_held].mean()) if (~is_held).any() else float("nan"),
        **out,
        "accuracy": float(hits.mean()),
        "segments": len(known),
        "majority": Counter(truth).most_common(1)[0][1] / len(truth),
        "per_class": per_class,
        "confusion": confusion,
        "predicted_classes": len(set(pred)),
    }


def score_motions(
    classifier: KeywordGestureClassifier,
    body_model: BodyModelLike,
    motions: dict[str, tuple[np.ndarray, np.ndarray]],
    segments: Sequence[Segment],
    held_out: Iterable[str] = (),
) -> dict:
    """`keyword_accuracy` of `motions` (clip id -> `(poses (T, 165), betas (300,))`) on `segments`."""
    return keyword_accuracy(classifier, features_of(body_model, motions, segments), segments, held_out)


def held_out_keywords(root: str | Path | Beat2Root) -> list[str]:
    """The keywords a generated root's training clips never said (`dataset_stats.json`, `held_out_keywords`);
    empty for BEAT2, which has no such list."""
    root = root if isinstance(root, Beat2Root) else Beat2Root(root)
    stats = root.root / "dataset_stats.json"
    if not stats.is_file():
        return []
    try:
        return list(json.loads(stats.read_text()).get("held_out_keywords") or [])
    except (OSError, ValueError) as exc:
        raise ValueError(f"{stats} is not readable JSON ({exc}): regenerate the dataset (`make dataset`)") from exc


def root_segments(
    root: Beat2Root, clip_ids: Sequence[str], labels: str = "name", frames: dict[str, int] | None = None
) -> list[Segment]:
    """The keyword segments of `clip_ids` from `root/sem/` (clips without a sem file have none); `frames`
    limits each clip to its first frames (default: the motion file's length)."""
    out: list[Segment] = []
    for cid in clip_ids:
        path = root.sem_path(cid)
        if not path.is_file():
            continue
        n = frames[cid] if frames is not None else load_motion(root.motion_path(cid)).num_frames
        out.extend(keyword_segments(cid, load_sem(path), n, labels))
    return out


def fit_on_root(
    root: str | Path | Beat2Root,
    body_model: BodyModelLike,
    splits: Sequence[str] = ("train",),
    speakers: Sequence[int] | None = None,
    labels: str = "name",
) -> KeywordGestureClassifier:
    """Fit the classifier on the ground-truth keyword segments of a BEAT2-format root's `splits`."""
    root = root if isinstance(root, Beat2Root) else Beat2Root(root)
    ids = root.clip_ids(splits, speakers)
    motions = {}
    for cid in ids:
        m = load_motion(root.motion_path(cid))
        motions[cid] = (m.poses, m.betas)
    frames = {cid: p.shape[0] for cid, (p, _) in motions.items()}
    segments = root_segments(root, ids, labels, frames)
    if not segments:
        raise ValueError(
            f"no keyword segments in {root.root}/sem for the {'/'.join(splits)} clips: the keyword-gesture metric "
            "needs sem/<id>.txt rows with a score above 0.1"
        )
    return KeywordGestureClassifier.fit(features_of(body_model, motions, segments), [s.label for s in segments])
