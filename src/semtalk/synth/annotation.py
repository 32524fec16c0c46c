"""BEAT2 annotations: Praat TextGrids (words, phones) and `sem/*.txt` semantic relevance rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from praatio import textgrid as praat_textgrid
from praatio.utilities.constants import Interval

from semtalk.synth.gestures import BEAT_CATEGORY, BEAT_SCORE, GestureEvent
from semtalk.synth.speech import TimedUnit

_DECIMALS = 4


@dataclass(frozen=True)
class SemRow:
    """One row of a BEAT2 sem file: `name, start, end, duration, score, keywords` (seconds)."""

    name: str
    start: float
    end: float
    score: float
    keywords: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start


def sem_rows(events: list[GestureEvent], tempo: float, duration: float) -> list[SemRow]:
    """Semantic rows for the keyword gestures, with `01_beat_align` rows filling every gap of [0, duration].

    Each gesture is annotated where its weight is at least 0.5 (`GestureEvent.sem_interval`); when two
    annotated intervals overlap they are split at the middle of the overlap. Times are rounded to
    `_DECIMALS` places and the rows tile [0, duration] without gaps or overlaps.
    """
    spans = []
    for ev in sorted(events, key=lambda e: e.start):
        a, b = ev.sem_interval(tempo)
        a, b = max(a, 0.0), min(b, duration)
        if b - a > 1e-3:
            spans.append([a, b, ev])
    for k in range(1, len(spans)):
        prev, cur = spans[k - 1], spans[k]
        if cur[0] < prev[1]:
            cut = 0.5 * (cur[0] + prev[1])
            prev[1], cur[0] = cut, cut
    rows: list[SemRow] = []
    cursor = 0.0
    for a, b, ev in spans:
        a, b = round(a, _DECIMALS), round(b, _DECIMALS)
        if b <= a:
            continue
        if a > cursor:
            rows.append(SemRow(BEAT_CATEGORY, cursor, a, BEAT_SCORE))
        rows.append(SemRow(ev.cls.category, a, b, ev.cls.score, ev.word))
        cursor = b
    end = round(duration, _DECIMALS)
    if end > cursor:
        rows.append(SemRow(BEAT_CATEGORY, cursor, end, BEAT_SCORE))
    return rows


def format_sem(rows: list[SemRow]) -> str:
    """BEAT2's tab-separated sem text (no header; the keyword column is empty for beat rows)."""
    lines = [
        f"{r.name}\t{r.start:.{_DECIMALS}f}\t{r.end:.{_DECIMALS}f}\t{r.duration:.{_DECIMALS}f}\t{r.score:.1f}\t{r.keywords}"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def frame_scores(rows: list[SemRow], n_frames: int, fps: int = 30) -> np.ndarray:
    """Per-frame semantic score as SemTalk reads it: the score of the first row with start <= i/fps <= end,
    0 when none, and scores <= 0.1 (beat rows) set to 0. `(n_frames,)`."""
    t = np.arange(n_frames) / fps
    out = np.full(n_frames, -1.0)
    for r in rows:
        hit = (out < 0) & (t >= r.start) & (t <= r.end)
        out[hit] = r.score
    out[out <= BEAT_SCORE + 1e-9] = 0.0
    return out


def write_textgrid(words: list[TimedUnit], phones: list[TimedUnit], duration: float, path: Path) -> None:
    """Write a Praat long TextGrid: tier `words` (empty-mark silences fill the gaps) and tier `phones`."""
    tg = praat_textgrid.Textgrid()
    for name, units in (("words", words), ("phones", phones)):
        entries = []
        for u in units:
            a, b = round(max(u.start, 0.0), _DECIMALS), round(min(u.end, duration), _DECIMALS)
            if b - a > 1e-4:
                entries.append(Interval(a, b, u.label))
        tg.addTier(praat_textgrid.IntervalTier(name, entries, 0.0, round(duration, _DECIMALS)))
    tg.save(str(path), format="long_textgrid", includeBlankSpaces=True, reportingMode="error")
