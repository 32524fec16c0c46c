"""One clip: a speaker says random sentences (espeak-ng) and moves by the rules of `motion.py`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

from semtalk.body.joints import FPS, SAMPLE_RATE
from semtalk.synth.annotation import SemRow, sem_rows
from semtalk.synth.gestures import GestureEvent, keyword_class
from semtalk.synth.motion import Motion, motion_from_speech
from semtalk.synth.script import make_sentence
from semtalk.synth.speech import ESPEAK_SAMPLE_RATE, TimedUnit, Voice, synthesize_batch
from semtalk.synth.style import SpeakerStyle

#: clip lengths vary uniformly in [0.8, 1.2] x the requested length
LENGTH_SPREAD = 0.2
_LEAD = (0.25, 0.6)  # silence before the first sentence (s)
_TAIL = 0.45  # silence after the last sentence (s)


@dataclass
class Clip:
    """A generated clip, in memory.

    Attributes:
        audio: `(N,)` float32 speech at 16 kHz.
        words, phones: timed units in seconds (words lower-case).
        events: the keyword gestures.
        motion: SMPL-X motion with `n_frames = round(N / 16000 * 30)` frames.
        sem: BEAT2 sem rows tiling [0, duration].
        text: the sentences spoken.
    """

    audio: np.ndarray
    words: list[TimedUnit]
    phones: list[TimedUnit]
    events: list[GestureEvent]
    motion: Motion
    sem: list[SemRow]
    text: list[str]

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def n_frames(self) -> int:
        return self.motion.poses.shape[0]


def _trim_end(audio: np.ndarray, last_word_end: float) -> np.ndarray:
    stop = min(len(audio), int(round((last_word_end + 0.06) * ESPEAK_SAMPLE_RATE)))
    return audio[:stop]


def make_clip(
    style: SpeakerStyle,
    clip_index: int,
    seed: int,
    clip_seconds: float,
    keywords: set[str] | None = None,
) -> Clip:
    """Generate clip `clip_index` of a speaker; the result depends only on the arguments. `keywords`: the only
    keywords its sentences may say (None: every keyword; see `script.make_sentence`)."""
    rng = np.random.default_rng([seed, style.speaker_id, clip_index, 1])
    target = clip_seconds * float(rng.uniform(1.0 - LENGTH_SPREAD, 1.0 + LENGTH_SPREAD))
    # enough sentences for the target length, generously (about 2.6 words per second, 8 words each)
    n_sentences = int(np.ceil(target * style.voice.rate / 60.0 / 6.0)) + 2
    sentences = [make_sentence(rng, keywords) for _ in range(n_sentences)]
    voices = [
        Voice(
            style.voice.name,
            rate=int(style.voice.rate * rng.uniform(0.92, 1.08)),
            pitch=int(np.clip(style.voice.pitch + rng.integers(-4, 5), 0, 100)),
            pitch_range=style.voice.pitch_range,
        )
        for _ in sentences
    ]
    utterances = synthesize_batch(list(zip(sentences, voices)))
    pieces: list[np.ndarray] = []
    words: list[TimedUnit] = []
    phones: list[TimedUnit] = []
    spoken: list[str] = []
    cursor = float(rng.uniform(*_LEAD))
    pieces.append(np.zeros(int(round(cursor * ESPEAK_SAMPLE_RATE)), np.float32))
    for k, (text, utt) in enumerate(zip(sentences, utterances)):
        if not utt.words:
            continue
        seg = _trim_end(utt.audio, utt.words[-1].end)
        offset = sum(len(p) for p in pieces) / ESPEAK_SAMPLE_RATE
        words += [
            TimedUnit(w.label, w.start + offset, min(w.end, len(seg) / ESPEAK_SAMPLE_RATE) + offset) for w in utt.words
        ]
        phones += [TimedUnit(p.label, p.start + offset, min(p.end, len(seg) / ESPEAK_SAMPLE_RATE) + offset)
                   for p in utt.phones if p.start * ESPEAK_SAMPLE_RATE < len(seg)]  # fmt: skip
        spoken.append(text)
        pieces.append(seg)
        end = offset + len(seg) / ESPEAK_SAMPLE_RATE
        if end >= target - _TAIL or k == len(sentences) - 1:
            break
        pause = float(rng.uniform(*style.pause))
        if end + pause + 1.0 > target - _TAIL:  # no room for another sentence
            break
        pieces.append(np.zeros(int(round(pause * ESPEAK_SAMPLE_RATE)), np.float32))
    pieces.append(np.zeros(int(round(_TAIL * ESPEAK_SAMPLE_RATE)), np.float32))
    audio22 = np.concatenate(pieces).astype(np.float64)
    audio22 *= style.loudness / max(float(np.abs(audio22).max()), 1e-6)
    audio = resample_poly(audio22, SAMPLE_RATE // 50, ESPEAK_SAMPLE_RATE // 50)  # 22,050 -> 16,000 Hz
    audio += rng.normal(0.0, 2e-4, len(audio))  # a faint noise floor, like a quiet room
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    n_frames = int(round(len(audio) / SAMPLE_RATE * FPS))
    duration = len(audio) / SAMPLE_RATE
    events = [GestureEvent(cls, w.label, w.start, w.end) for w in words if (cls := keyword_class(w.label)) is not None]
    motion = motion_from_speech(audio, n_frames, events, style, rng)
    return Clip(
        audio=audio,
        words=words,
        phones=phones,
        events=events,
        motion=motion,
        sem=sem_rows(events, style.tempo, duration),
        text=spoken,
    )
