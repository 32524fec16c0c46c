"""The semantic gesture library: keyword classes, their BEAT2 labels, and the gesture each one triggers.

Every occurrence of a keyword in the speech triggers its class's gesture, timed on the word:

| class    | words (examples)              | gesture                                         | BEAT2 label          |
|----------|-------------------------------|-------------------------------------------------|----------------------|
| self     | i, me, my, myself             | both hands to the chest                         | 03_deictic_m (0.3)   |
| listener | you, your, yourself           | dominant hand points forward at the listener    | 04_deictic_h (0.4)   |
| count    | one ... five                  | dominant hand raised, that many fingers out     | 05_iconic_l (0.5)    |
| small    | small, tiny, little, short    | both hands close together, fingers pinched      | 06_iconic_m (0.6)    |
| big      | big, huge, large, giant, wide | both hands far apart, palms facing              | 07_iconic_h (0.7)    |
| think    | think, idea, remember, know   | dominant index finger to the temple             | 08_metaphoric_l (0.8)|
| negation | no, not, never, nothing       | head shake + dominant hand waves, palm out      | 09_metaphoric_m (0.9)|
| totality | all, every, everyone, always  | both arms sweep open, palms up                  | 10_metaphoric_h (1.0)|

Timing (seconds, `ws`/`we` = word start/end, `k` = the speaker's tempo factor): preparation from
`ws - 0.05 - 0.45k` to `ws - 0.05`, stroke and hold until `we + 0.3k`, retraction until `we + 0.8k`. The
gesture weight rises and falls with raised-cosine ramps and is 1 from `ws - 0.05` to `we + 0.3k`; the
annotated sem interval is where the weight is at least 0.5: `[ws - 0.05 - 0.225k, we + 0.55k]`.

Poses are given in canonical-left coordinates (see `skeleton`): wrist targets relative to the shoulder in
the collar frame (x = body left, y = up, z = forward), hand orientations by finger direction and back-of-
hand direction, finger curls in radians. The dominant hand may be the right one: the motion mirrors it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semtalk.synth.skeleton import REST_JOINTS, hand_rotation


@dataclass(frozen=True)
class GestureClass:
    """A class of keywords that trigger the same semantic gesture."""

    name: str
    words: tuple[str, ...]
    category: str  # BEAT2 sem label, e.g. "07_iconic_h"
    score: float  # BEAT2 relevance score = level / 10
    both_hands: bool


KEYWORD_CLASSES: tuple[GestureClass, ...] = (
    GestureClass("self", ("i", "me", "my", "myself", "mine"), "03_deictic_m", 0.3, True),
    GestureClass("listener", ("you", "your", "yourself"), "04_deictic_h", 0.4, False),
    GestureClass("count", ("one", "two", "three", "four", "five"), "05_iconic_l", 0.5, False),
    GestureClass("small", ("small", "tiny", "little", "short"), "06_iconic_m", 0.6, True),
    GestureClass("big", ("big", "huge", "large", "giant", "wide", "enormous"), "07_iconic_h", 0.7, True),
    GestureClass("think", ("think", "idea", "remember", "know", "imagine"), "08_metaphoric_l", 0.8, False),
    GestureClass("negation", ("no", "not", "never", "nothing", "nobody"), "09_metaphoric_m", 0.9, False),
    GestureClass("totality", ("all", "every", "everyone", "everything", "always"), "10_metaphoric_h", 1.0, True),
)
WORD_TO_CLASS: dict[str, GestureClass] = {w: c for c in KEYWORD_CLASSES for w in c.words}
CLASS_BY_NAME: dict[str, GestureClass] = {c.name: c for c in KEYWORD_CLASSES}
BEAT_CATEGORY, BEAT_SCORE = "01_beat_align", 0.1

#: timing constants (seconds, scaled by the speaker's tempo factor where marked)
PREP = 0.45  # x tempo
STROKE_LEAD = 0.05
HOLD = 0.30  # x tempo
RELEASE = 0.50  # x tempo

_SHOULDER = REST_JOINTS[16]


def keyword_class(word: str) -> GestureClass | None:
    """The gesture class a (lower-case) word triggers, or None."""
    return WORD_TO_CLASS.get(word.lower())


@dataclass(frozen=True)
class GestureEvent:
    """One keyword occurrence: its class, the word, and the word's interval in seconds."""

    cls: GestureClass
    word: str
    start: float
    end: float

    def phases(self, tempo: float) -> tuple[float, float, float, float]:
        """(preparation start, stroke start, hold end, retraction end) in seconds."""
        t1 = self.start - STROKE_LEAD
        t2 = self.end + HOLD * tempo
        return t1 - PREP * tempo, t1, t2, t2 + RELEASE * tempo

    def sem_interval(self, tempo: float) -> tuple[float, float]:
        """The annotated interval: where the gesture weight is at least 0.5."""
        t0, t1, t2, t3 = self.phases(tempo)
        return 0.5 * (t0 + t1), 0.5 * (t2 + t3)


@dataclass
class ArmTargets:
    """Per-frame targets for one arm in canonical-left coordinates.

    Attributes:
        pos: `(n, 3)` wrist position relative to the shoulder, collar frame (metres).
        swivel: `(n,)` elbow swivel (radians, positive = elbow out).
        hand: `(n, 3, 3)` hand orientation in the collar frame.
        fingers: `(n, 15, 3)` local axis-angles of the 15 finger joints (SMPL-X order).
    """

    pos: np.ndarray
    swivel: np.ndarray
    hand: np.ndarray
    fingers: np.ndarray


@dataclass
class GestureLayer:
    """A gesture rendered on frames `frames`: its weight, the arms it drives, and a head rotation offset."""

    frames: np.ndarray  # (n,) frame indices
    weight: np.ndarray  # (n,) in [0, 1]
    arms: dict[str, ArmTargets]  # "left" / "right"
    head: np.ndarray  # (n, 3) axis-angle added to the head, scaled by the weight


# ---------------------------------------------------------------------------------------------- fingers

_FLEX_AXIS = np.array([0.0, 0.0, -1.0])  # left fingers curl towards the palm (-y) about -z
_THUMB_DIR = REST_JOINTS[38] - REST_JOINTS[37]
_THUMB_AXIS = np.cross(_THUMB_DIR, np.array([0.0, -1.0, 0.0]))
_THUMB_AXIS = _THUMB_AXIS / np.linalg.norm(_THUMB_AXIS)
_SEGMENT_GAIN = np.array([1.0, 1.1, 0.8])
_THUMB_GAIN = np.array([0.5, 0.8, 0.9])
_SPREAD_GAIN = np.array([-1.0, 0.0, 1.0, 0.5])  # index, middle, pinky, ring: abduction about y


def finger_pose(curl: np.ndarray, spread: np.ndarray | float = 0.0) -> np.ndarray:
    """Left-hand finger axis-angles from per-finger curls.

    Args:
        curl: `(n, 5)` curl angles (radians) of index, middle, pinky, ring, thumb (SMPL-X order); about
            -0.1 is straight, 1.5 a fist.
        spread: `(n,)` or scalar finger abduction (radians).

    Returns:
        `(n, 15, 3)` axis-angles of joints 25-39 (the right hand is the mirror image).
    """
    curl = np.atleast_2d(np.asarray(curl, dtype=np.float64))
    n = curl.shape[0]
    spread = np.broadcast_to(np.asarray(spread, dtype=np.float64), (n,))
    out = np.zeros((n, 15, 3))
    for f in range(4):
        for s in range(3):
            out[:, 3 * f + s] = curl[:, f, None] * _SEGMENT_GAIN[s] * _FLEX_AXIS
        out[:, 3 * f, 1] += spread * _SPREAD_GAIN[f]
    for s in range(3):
        out[:, 12 + s] = curl[:, 4, None] * _THUMB_GAIN[s] * _THUMB_AXIS
    return out


# ------------------------------------------------------------------------------------------ positions


def _body_point(x: float, y: float, z: float) -> np.ndarray:
    """A point given in template coordinates, relative to the left shoulder."""
    return np.array([x, y, z]) - _SHOULDER


#: static pose per class: wrist target, swivel, finger direction, back-of-hand direction, finger curls
_POSES: dict[str, dict] = {
    "self": dict(pos=_body_point(0.095, -0.085, 0.175), swivel=0.35, fingers=(-0.6, 0.7, -0.1),
                 back=(0.0, 0.1, 1.0), curl=(0.15, 0.15, 0.2, 0.15, 0.2)),
    "listener": dict(pos=_body_point(0.13, 0.02, 0.45), swivel=0.35, fingers=(-0.05, -0.1, 1.0),
                     back=(0.3, 1.0, 0.0), curl=(-0.05, 1.45, 1.4, 1.45, 0.9)),
    "count": dict(pos=_body_point(0.21, 0.14, 0.30), swivel=0.6, fingers=(0.0, 1.0, 0.15),
                  back=(0.1, 0.0, -1.0), curl=(1.5, 1.5, 1.5, 1.5, 1.0)),
    "small": dict(pos=_body_point(0.07, -0.05, 0.30), swivel=0.3, fingers=(-0.5, 0.3, 1.0),
                  back=(1.0, 0.4, 0.2), curl=(0.7, 1.2, 1.3, 1.25, 0.7)),
    "big": dict(pos=_body_point(0.42, -0.04, 0.30), swivel=0.5, fingers=(0.2, 0.15, 1.0),
                back=(1.0, 0.1, -0.2), curl=(0.05, 0.1, 0.15, 0.1, 0.1)),
    "think": dict(pos=_body_point(0.20, 0.18, 0.15), swivel=1.0, fingers=(-0.125, 0.13, -0.1),
                  back=(1.0, 0.2, 0.3), curl=(-0.05, 1.4, 1.4, 1.4, 0.9)),
    "negation": dict(pos=_body_point(0.16, 0.02, 0.34), swivel=0.5, fingers=(0.1, 1.0, 0.3),
                     back=(0.0, 0.0, -1.0), curl=(0.0, 0.0, 0.05, 0.0, 0.1)),
    "totality": dict(pos=_body_point(0.40, -0.06, 0.27), swivel=0.5, fingers=(0.3, 0.1, 1.0),
                     back=(0.5, -1.0, 0.2), curl=(0.05, 0.1, 0.15, 0.1, 0.05)),
}  # fmt: skip
_SWEEP_START = _body_point(0.08, -0.08, 0.33)  # totality starts near the midline
_COUNT_EXTENDED = -0.1


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def envelope(t: np.ndarray, t0: float, t1: float, t2: float, t3: float) -> np.ndarray:
    """Raised-cosine weight: 0 before t0, rising to 1 at t1, 1 until t2, falling to 0 at t3."""
    up = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - t0) / max(t1 - t0, 1e-6), 0.0, 1.0))
    down = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - t2) / max(t3 - t2, 1e-6), 0.0, 1.0))
    return np.minimum(up, down)


def render_gesture(event: GestureEvent, fps: int, n_frames: int, dominant: str, tempo: float,
                   size: float) -> GestureLayer | None:  # fmt: skip
    """Render one keyword gesture on the frames it covers.

    Args:
        event: the keyword occurrence.
        fps: frame rate.
        n_frames: length of the clip (frames outside it are dropped).
        dominant: "left" or "right", the hand one-handed gestures use.
        tempo: the speaker's tempo factor (scales preparation, hold and retraction).
        size: the speaker's gesture size factor (scales how far the pose departs from the body midline).

    Returns:
        The gesture layer, or None when it falls outside the clip.
    """
    t0, t1, t2, t3 = event.phases(tempo)
    first, last = max(int(np.floor(t0 * fps)), 0), min(int(np.ceil(t3 * fps)), n_frames - 1)
    if last < first:
        return None
    frames = np.arange(first, last + 1)
    t = frames / fps
    n = len(frames)
    weight = envelope(t, t0, t1, t2, t3)
    name = event.cls.name
    spec = _POSES[name]
    mid = 0.5 * (event.start + event.end)
    half = max(0.5 * (event.end - event.start), 0.08)
    bump = np.exp(-0.5 * ((t - mid) / half) ** 2)  # emphasis on the word itself
    pos = np.tile(spec["pos"], (n, 1)).astype(np.float64)
    pos[:, 0] = (pos[:, 0] + _SHOULDER[0]) * size - _SHOULDER[0]  # scale the distance from the midline
    curl = np.tile(np.asarray(spec["curl"], dtype=np.float64), (n, 1))
    spread = np.full(n, 0.1)
    finger_dir = np.tile(np.asarray(spec["fingers"], dtype=np.float64), (n, 1))
    back = np.tile(np.asarray(spec["back"], dtype=np.float64), (n, 1))
    head = np.zeros((n, 3))
    tau = np.maximum(t - t1, 0.0)
    if name == "self":
        pos[:, 2] -= 0.03 * bump  # pat the chest on the word
        head[:, 0] = 0.06 * bump
    elif name == "listener":
        pos[:, 2] += 0.04 * bump  # push towards the listener
        head[:, 0] = 0.05 * bump
    elif name == "count":
        numbers = CLASS_BY_NAME["count"].words
        k = numbers.index(event.word) + 1 if event.word in numbers else 1
        for finger, needed in ((0, 1), (1, 2), (3, 3), (2, 4), (4, 5)):  # index, middle, ring, pinky, thumb
            if k >= needed:
                curl[:, finger] = _COUNT_EXTENDED
        spread[:] = 0.2
        pos[:, 1] += 0.025 * bump
    elif name == "small":
        pos[:, 0] -= 0.015 * bump
    elif name == "big":
        pos[:, 0] += 0.03 * _smoothstep((t - t1) / max(t2 - t1, 1e-3))
        spread[:] = 0.25
    elif name == "think":
        head[:, 2] = 0.08 * weight
        head[:, 0] = -0.04 * bump
    elif name == "negation":
        pos[:, 0] += 0.06 * np.sin(2 * np.pi * 2.2 * tau)
        head[:, 1] = 0.22 * np.sin(2 * np.pi * 2.6 * tau)
        spread[:] = 0.15
    elif name == "totality":
        prog = _smoothstep((t - t1) / max(t2 - t1, 1e-3))
        start = _SWEEP_START.copy()
        pos = start + prog[:, None] * (pos - start)
        spread[:] = 0.2 + 0.1 * prog
    targets = ArmTargets(
        pos=pos,
        swivel=np.full(n, spec["swivel"]),
        hand=hand_rotation(finger_dir, back),
        fingers=finger_pose(curl, spread),
    )
    if event.cls.both_hands:
        arms = {"left": targets, "right": targets}
    else:
        arms = {dominant: targets}
    return GestureLayer(frames=frames, weight=weight, arms=arms, head=head)
