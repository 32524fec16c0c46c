"""Speaker identities and styles: each speaker has a BEAT2 id and name, a voice, a body shape and a way
of gesturing (amplitude, tempo, dominant hand, rest pose, sway), all drawn from the dataset seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semtalk.body.joints import NUM_BETAS, NUM_EXPRESSIONS
from semtalk.synth.speech import ENGLISH_VOICES, Voice

#: BEAT2's English speakers (id -> name); ids 8, 14, 19, 26, 29 are not part of BEAT2.
BEAT2_SPEAKERS: dict[int, str] = {
    1: "wayne", 2: "scott", 3: "solomon", 4: "lawrence", 5: "stewart", 6: "carla", 7: "sophie",
    9: "miranda", 10: "kieks", 11: "nidal", 12: "zhao", 13: "lu", 15: "carlos", 16: "jorge",
    17: "itoi", 18: "daiki", 20: "li", 21: "ayana", 22: "luqi", 23: "hailing", 24: "kexin",
    25: "goto", 27: "yingqing", 28: "tiffnay", 30: "katya",
}  # fmt: skip
#: speaker 2 ("scott") first: the speaker the papers evaluate on
SPEAKER_ORDER: tuple[int, ...] = (2,) + tuple(k for k in BEAT2_SPEAKERS if k != 2)


def speaker_ids(num_speakers: int) -> list[int]:
    """The first `num_speakers` BEAT2 English speaker ids, speaker 2 first."""
    if not 1 <= num_speakers <= len(SPEAKER_ORDER):
        raise ValueError(f"num_speakers must be between 1 and {len(SPEAKER_ORDER)} (BEAT2's English speakers)")
    return list(SPEAKER_ORDER[:num_speakers])


@dataclass(frozen=True)
class SpeakerStyle:
    """How one speaker sounds, looks and moves.

    Positions are canonical-left wrist targets relative to the shoulder in the collar frame (metres).
    """

    speaker_id: int
    name: str
    voice: Voice
    betas: np.ndarray  # (300,) float32
    dominant: str  # "left" | "right": the hand of one-handed gestures
    hand_gain: tuple[float, float]  # beat amplitude factor of the (left, right) hand
    beat_amp: float  # half-size of the beat loop of the wrist at full strength (m)
    beat_dir: np.ndarray  # (3,) unit direction of the beat stroke (down and a little forward)
    flick: float  # wrist flick along the beat loop (rad)
    tempo: float  # scales gesture preparation/hold/retraction times
    size: float  # scales how far semantic gestures reach from the midline
    rest_pos: np.ndarray  # (3,) wrist target when silent (lower, nearer the body)
    ready_pos: np.ndarray  # (3,) wrist target while speaking
    swivel: float  # elbow swivel (rad)
    wrist_rest: np.ndarray  # (3,) local wrist axis-angle at rest
    finger_curl: np.ndarray  # (5,) relaxed finger curls
    nod: float  # head nod along the beat loop (rad)
    drift: float  # amplitude of slow head / arm drift
    shift_amp: float  # lateral pelvis shift of a weight shift (m)
    shift_every: tuple[float, float]  # range of seconds between weight shifts
    stance: float  # extra half-width of the stance (m)
    toe_out: float  # feet yaw (rad)
    lean: float  # forward lean of the spine (rad)
    jaw_rest: float  # jaw opening at silence (rad)
    jaw_gain: float  # jaw opening at full loudness (rad)
    expr_bias: np.ndarray  # (100,) resting expression
    pause: tuple[float, float]  # range of pauses between sentences (s)
    loudness: float  # peak amplitude of the speech


def speaker_style(speaker_id: int, seed: int) -> SpeakerStyle:
    """The style of speaker `speaker_id`, drawn deterministically from `(seed, speaker_id)`."""
    if speaker_id not in BEAT2_SPEAKERS:
        raise ValueError(f"speaker id {speaker_id} is not a BEAT2 English speaker ({sorted(BEAT2_SPEAKERS)})")
    rng = np.random.default_rng([seed, speaker_id, 7])
    index = SPEAKER_ORDER.index(speaker_id)
    voice = Voice(
        name=ENGLISH_VOICES[(index + seed) % len(ENGLISH_VOICES)],
        rate=int(rng.integers(145, 186)),
        pitch=int(rng.integers(35, 66)),
        pitch_range=int(rng.integers(40, 81)),
    )
    betas = np.zeros(NUM_BETAS, dtype=np.float32)
    betas[:10] = rng.normal(0.0, 0.6, 10)
    betas[10:] = rng.normal(0.0, 0.05, NUM_BETAS - 10) * np.exp(-np.arange(NUM_BETAS - 10) / 60.0)
    dominant = "left" if index % 4 == 3 else "right"  # every fourth speaker is left-handed
    both = rng.random() < 0.3
    weak = 0.9 if both else float(rng.uniform(0.35, 0.6))
    hand_gain = (1.0, weak) if dominant == "left" else (weak, 1.0)
    beat_dir = np.array([rng.uniform(-0.15, 0.15), -1.0, rng.uniform(0.1, 0.5)])
    ready = np.array([-0.02, -0.33, 0.28]) + rng.normal(0.0, 0.02, 3)
    expr_bias = np.zeros(NUM_EXPRESSIONS)
    expr_bias[:10] = rng.normal(0.0, 0.35, 10)
    expr_bias[10:50] = rng.normal(0.0, 0.08, 40)
    return SpeakerStyle(
        speaker_id=speaker_id,
        name=BEAT2_SPEAKERS[speaker_id],
        voice=voice,
        betas=betas,
        dominant=dominant,
        hand_gain=hand_gain,
        beat_amp=float(rng.uniform(0.018, 0.035)),
        beat_dir=beat_dir / np.linalg.norm(beat_dir),
        flick=float(rng.uniform(0.1, 0.25)),
        tempo=float(rng.uniform(0.85, 1.15)),
        size=float(rng.uniform(0.9, 1.12)),
        rest_pos=ready + np.array([0.03, -0.06, -0.05]) + rng.normal(0.0, 0.01, 3),
        ready_pos=ready,
        swivel=float(rng.uniform(0.1, 0.4)),
        wrist_rest=np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.25, 0.05), rng.uniform(-0.2, 0.0)]),
        finger_curl=np.array([0.3, 0.4, 0.5, 0.45, 0.25]) + rng.uniform(-0.1, 0.15, 5),
        nod=float(rng.uniform(0.03, 0.06)),
        drift=float(rng.uniform(0.6, 1.4)),
        shift_amp=float(rng.uniform(0.015, 0.035)),
        shift_every=(float(rng.uniform(2.5, 4.0)), float(rng.uniform(5.0, 8.0))),
        stance=float(rng.uniform(0.0, 0.04)),
        toe_out=float(rng.uniform(0.05, 0.2)),
        lean=float(rng.uniform(-0.02, 0.06)),
        jaw_rest=float(rng.uniform(0.01, 0.04)),
        jaw_gain=float(rng.uniform(0.16, 0.26)),
        expr_bias=expr_bias,
        pause=(float(rng.uniform(0.2, 0.35)), float(rng.uniform(0.5, 0.8))),
        loudness=float(rng.uniform(0.55, 0.9)),
    )
