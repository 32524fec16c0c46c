"""Offline speech synthesis with word and phone timings, through the espeak-ng C library.

espeak-ng is driven synchronously through `ctypes` (in `_espeak_worker.py`): one `espeak_Synth` call per
sentence, with a synth callback that collects the 22,050 Hz PCM and the WORD / PHONEME events. Each event
carries the sample index at which it starts, so word and phone boundaries come from the synthesiser itself
(no forced alignment): a phone ends where the next one starts, and a word spans its own phones.

Reproducibility: espeak-ng keeps part of its synthesis state in static variables that are never reset
(pitch flutter and glottal phase), so a sentence's samples depend on what the same process spoke before.
`synthesize_batch` therefore runs every batch in a fresh worker process: the same batch always gives the
same samples, whatever else was synthesised.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ESPEAK_SAMPLE_RATE = 22050
_WORKER = Path(__file__).with_name("_espeak_worker.py")
_EVENT_WORD = 1
_EVENT_PHONEME = 7
#: espeak-ng phone names that stand for a pause.
_PAUSE_PHONES = {"_", "_:", "_!", "_|", "||", "|", ""}

#: English voices and variants shipped with espeak-ng 1.51 (variants: m1-m8 male, f1-f5 female).
ENGLISH_VOICES: tuple[str, ...] = (
    "en-us",
    "en-gb",
    "en-us+f3",
    "en-gb+f2",
    "en-us+m3",
    "en-gb-x-rp+f4",
    "en-029",
    "en-gb-scotland+m2",
    "en-us+f5",
    "en-gb+m4",
    "en-gb-x-gbcwmd",
    "en-us+f1",
    "en-us-nyc+m1",
)


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice setting.

    Attributes:
        name: espeak-ng voice with an optional variant (`"en-us"`, `"en-gb+f2"`, `"en-us+m3"`).
        rate: speaking rate in words per minute (natural at 130-190).
        pitch: base pitch 0-100 (50 is the voice's default).
        pitch_range: pitch range 0-100 (0 is monotone).
    """

    name: str
    rate: int = 165
    pitch: int = 50
    pitch_range: int = 50


@dataclass(frozen=True)
class TimedUnit:
    """A word or phone with its interval in seconds from the start of its audio."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Utterance:
    """One synthesised sentence.

    Attributes:
        audio: `(N,)` float32 PCM in [-1, 1] at `sample_rate` (22,050 Hz).
        sample_rate: espeak-ng's output rate.
        words: the spoken words (lower-case, punctuation stripped) in order, non-overlapping.
        phones: espeak-ng phone names with their intervals (pauses left out), non-overlapping.
    """

    audio: np.ndarray
    sample_rate: int
    words: tuple[TimedUnit, ...]
    phones: tuple[TimedUnit, ...]

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


class EspeakError(RuntimeError):
    """espeak-ng could not be started or refused a request."""


def _clean_word(token: str) -> str:
    return "".join(ch for ch in token.lower() if ch.isalnum() or ch == "'")


def _utterance(text: str, pcm: np.ndarray, events: list[list]) -> Utterance:
    """Turn the raw PCM and espeak-ng events of one sentence into timed words and phones."""
    n = len(pcm)
    raw = text.encode("utf-8")
    phone_ev = sorted(((e[1], e[3], e[4]) for e in events if e[0] == _EVENT_PHONEME), key=lambda e: e[1])
    phones_all: list[tuple[int, int, int, str]] = []  # (text position, start, end, name)
    for k, (pos, start, name) in enumerate(phone_ev):
        stop = phone_ev[k + 1][1] if k + 1 < len(phone_ev) else n
        phones_all.append((pos, min(start, n), min(max(stop, start), n), name))
    words: list[TimedUnit] = []
    for e in events:
        if e[0] != _EVENT_WORD:
            continue
        pos, length = e[1], e[2]
        mark = _clean_word(raw[pos - 1 : pos - 1 + length].decode("utf-8", "replace"))
        own = [p for p in phones_all if p[0] == pos and p[3] not in _PAUSE_PHONES]
        if not mark or not own:
            continue
        start, stop = min(p[1] for p in own), max(p[2] for p in own)
        if stop > start:
            words.append(TimedUnit(mark, start / ESPEAK_SAMPLE_RATE, stop / ESPEAK_SAMPLE_RATE))
    phones = tuple(
        TimedUnit(name, a / ESPEAK_SAMPLE_RATE, b / ESPEAK_SAMPLE_RATE)
        for _, a, b, name in phones_all
        if name not in _PAUSE_PHONES and b > a
    )
    audio = (pcm.astype(np.float32) / np.float32(32768.0)).astype(np.float32)
    return Utterance(audio=audio, sample_rate=ESPEAK_SAMPLE_RATE, words=tuple(words), phones=phones)


def synthesize_batch(requests: list[tuple[str, Voice]], timeout: float = 300.0) -> list[Utterance]:
    """Speak each `(text, voice)` (English sentences of ASCII words and punctuation) in one fresh worker.

    The result depends only on `requests`, so it is reproducible. Raises `EspeakError` with the worker's
    message when espeak-ng is missing or a voice does not exist.
    """
    if not requests:
        return []
    payload = {
        "utterances": [
            {"text": t, "voice": v.name, "rate": v.rate, "pitch": v.pitch, "range": v.pitch_range} for t, v in requests
        ]
    }
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-S", str(_WORKER)],
            input=json.dumps(payload).encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise EspeakError(f"could not run the espeak-ng worker {_WORKER}: {err}") from err
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip()
        raise EspeakError(f"espeak-ng worker failed: {msg or f'exit code {proc.returncode}'}")
    head, _, body = proc.stdout.partition(b"\n")
    items = json.loads(head.decode("utf-8"))["items"]
    pcm_all = np.frombuffer(body, dtype=np.int16)
    out, offset = [], 0
    for (text, _), item in zip(requests, items, strict=True):
        pcm = pcm_all[offset : offset + item["samples"]]
        offset += item["samples"]
        out.append(_utterance(text, pcm, item["events"]))
    if offset != len(pcm_all):
        raise EspeakError(f"espeak-ng worker returned {len(pcm_all)} samples, expected {offset}")
    return out


def synthesize(text: str, voice: Voice) -> Utterance:
    """Speak one sentence (see `synthesize_batch`)."""
    return synthesize_batch([(text, voice)])[0]
