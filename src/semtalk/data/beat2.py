"""Read BEAT2-format clips: SMPL-X+FLAME npz, 16 kHz wav, word TextGrid, semantic annotation, split CSV.

Layout of a BEAT2 root (e.g. `beat_english_v2.0.0/`, or the embedded dataset):

    smplxflame_30/<id>.npz   wave16k/<id>.wav   textgrid/<id>.TextGrid   sem/<id>.txt
    train_test_split.csv     weights/

Every reader validates what it loads and raises `DataError` naming the file, the problem and the fix.
Arrays come back as numpy, channel-last, frames first.
"""

from __future__ import annotations

import csv
import logging
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semtalk.body.joints import FPS, NUM_BETAS, NUM_EXPRESSIONS, NUM_JOINTS, SAMPLE_RATE
from semtalk.data.errors import DataError

log = logging.getLogger(__name__)

#: BEAT2's English speaker ids, in the order that maps them to embedding indices 0-24.
BEAT2_SPEAKERS: tuple[int, ...] = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    9,
    10,
    11,
    12,
    13,
    15,
    16,
    17,
    18,
    20,
    21,
    22,
    23,
    24,
    25,
    27,
    28,
    30,
)
NUM_SPEAKERS = len(BEAT2_SPEAKERS)
SPLIT_TYPES: tuple[str, ...] = ("train", "val", "test", "additional")
MOTION_KEYS: tuple[str, ...] = ("poses", "trans", "betas", "expressions")


def speaker_of(clip_id: str) -> int:
    """BEAT2 speaker id from a file name: `2_scott_0_1_1` -> 2."""
    head = clip_id.split("_", 1)[0]
    if not head.isdigit():
        raise DataError(
            clip_id,
            "clip id does not start with a numeric speaker id",
            "name clips <speaker>_<name>_<type>_<start>_<end> like BEAT2",
        )
    return int(head)


def speaker_index(speaker: int) -> int:
    """Embedding index 0-24 of a BEAT2 speaker id (2 -> 1)."""
    try:
        return BEAT2_SPEAKERS.index(speaker)
    except ValueError:
        raise ValueError(f"speaker id {speaker} is not one of BEAT2's speakers {BEAT2_SPEAKERS}") from None


@dataclass
class Motion:
    """SMPL-X + FLAME motion of one clip.

    Attributes:
        poses: `(T, 165)` float32 axis-angle of the 55 joints.
        trans: `(T, 3)` float32 root translation, metres, y up.
        betas: `(300,)` float32 body shape.
        expressions: `(T, 100)` float32 FLAME expression coefficients.
        fps: frames per second (30).
    """

    poses: np.ndarray
    trans: np.ndarray
    betas: np.ndarray
    expressions: np.ndarray
    fps: int = FPS

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps


@dataclass(frozen=True)
class WordInterval:
    """One TextGrid interval: `word` spoken from `start` to `end` seconds, the mark as written ('' is silence;
    BEAT2 maps a single-space mark to PAD)."""

    start: float
    end: float
    word: str


@dataclass(frozen=True)
class SemRow:
    """One row of `sem/<id>.txt`: a gesture segment with its BEAT2 category and semantic score."""

    name: str
    start: float
    end: float
    score: float
    keywords: str = ""


@dataclass
class Clip:
    """Everything BEAT2 holds for one clip (audio mono float32 at 16 kHz)."""

    clip_id: str
    speaker: int
    motion: Motion
    audio: np.ndarray
    sample_rate: int
    words: list[WordInterval] = field(default_factory=list)
    sem: list[SemRow] = field(default_factory=list)

    @property
    def audio_seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def _array(data: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(data[key])
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(path, f"array '{key}' cannot be read ({exc})", "re-download or regenerate the file") from exc


def load_motion(path: str | Path, *, expected_fps: int = FPS) -> Motion:
    """Read and validate a BEAT2 `smplxflame_30/<id>.npz`.

    Shapes accepted: `poses (T,165)`, `trans (T,3)`, `expressions (T,100)`, `betas (300,)`; betas with fewer
    components are zero-padded to 300 and per-frame betas `(T, n)` use their first row (documented repairs).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "motion file not found", "check the dataset root and the split CSV")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            path,
            f"not a readable npz file ({exc.__class__.__name__}: {exc})",
            "the file is truncated or corrupt: re-download or regenerate it",
        ) from exc
    with data:
        missing = [k for k in MOTION_KEYS if k not in data.files]
        if missing:
            raise DataError(
                path,
                f"missing keys {missing} (has {sorted(data.files)})",
                "BEAT2 motion needs poses, trans, betas, expressions",
            )
        poses, trans, betas, expr = (_array(data, k, path) for k in MOTION_KEYS)
        fps = int(_array(data, "mocap_frame_rate", path)) if "mocap_frame_rate" in data.files else expected_fps
    if poses.ndim != 2 or poses.shape[1] != NUM_JOINTS * 3:
        raise DataError(
            path,
            f"poses has shape {poses.shape}, expected (T, 165) SMPL-X axis-angle",
            "store the 55 SMPL-X joints as axis-angle, 3 values each",
        )
    n = poses.shape[0]
    if n == 0:
        raise DataError(path, "poses has no frames", "regenerate the file")
    if trans.shape != (n, 3):
        raise DataError(path, f"trans has shape {trans.shape}, expected ({n}, 3)", "regenerate the file")
    if expr.ndim != 2 or expr.shape[0] != n or expr.shape[1] > NUM_EXPRESSIONS:
        raise DataError(
            path,
            f"expressions has shape {expr.shape}, expected ({n}, {NUM_EXPRESSIONS})",
            "store 100 FLAME expression coefficients per frame",
        )
    if expr.shape[1] < NUM_EXPRESSIONS:
        expr = np.pad(expr, ((0, 0), (0, NUM_EXPRESSIONS - expr.shape[1])))
    if betas.ndim == 2:
        betas = betas[0]
    if betas.ndim != 1 or betas.shape[0] > NUM_BETAS:
        raise DataError(path, f"betas has shape {betas.shape}, expected (300,)", "store one shape vector")
    if betas.shape[0] < NUM_BETAS:
        betas = np.pad(betas, (0, NUM_BETAS - betas.shape[0]))
    for name, arr in (("poses", poses), ("trans", trans), ("betas", betas), ("expressions", expr)):
        bad = ~np.isfinite(arr)
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            where = f"first at frame {first}" if arr.ndim == 2 else "in the shape vector"
            raise DataError(
                path,
                f"{name} has {int(bad.sum())} NaN/Inf values ({where})",
                "repair or drop the clip (remove it from train_test_split.csv)",
            )
    if fps != expected_fps:
        raise DataError(
            path,
            f"motion is at {fps} fps, expected {expected_fps}",
            f"resample the motion to {expected_fps} fps before use",
        )
    return Motion(
        poses=poses.astype(np.float32, copy=False),
        trans=trans.astype(np.float32, copy=False),
        betas=betas.astype(np.float32, copy=False),
        expressions=expr.astype(np.float32, copy=False),
        fps=fps,
    )


def load_audio(path: str | Path, *, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a wav as mono float32 at `sample_rate` -> `(S,)`.

    Other rates are resampled (soxr) and several channels averaged, with a log line saying so.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "audio file not found", "check the dataset root (wave16k/<id>.wav)")
    try:
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as exc:
        raise DataError(path, f"not a readable audio file ({exc})", "re-encode it as wav") from exc
    if audio.shape[0] == 0:
        raise DataError(path, "audio is empty", "provide speech audio")
    if audio.shape[1] > 1:
        log.info("%s: %d channels averaged to mono", path, audio.shape[1])
    audio = audio.mean(axis=1)
    if not np.isfinite(audio).all():
        raise DataError(path, "audio holds NaN/Inf samples", "re-encode the file")
    if sr != sample_rate:
        import librosa

        log.info("%s: resampled %d Hz -> %d Hz", path, sr, sample_rate)
        audio = librosa.resample(audio, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(audio, dtype=np.float32)


def load_textgrid(path: str | Path, *, duration: float | None = None, tolerance: float = 0.5) -> list[WordInterval]:
    """Word intervals of the first tier of a Praat TextGrid, sorted by time.

    Rejects overlapping intervals and (when `duration` is given) words that end more than `tolerance`
    seconds after the audio.
    """
    import textgrid

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "TextGrid not found", "align the words (e.g. Montreal Forced Aligner) or use audio only")
    try:
        tg = textgrid.TextGrid.fromFile(str(path))
    except Exception as exc:  # the textgrid package raises bare Exceptions and ValueErrors
        pair = exc.args if len(exc.args) == 2 and all(hasattr(a, "minTime") for a in exc.args) else None
        if pair:  # its way of refusing two overlapping intervals
            a, b = pair
            raise DataError(
                path,
                f"intervals overlap: '{a.mark}' [{a.minTime:.3f}, {a.maxTime:.3f}] and "
                f"'{b.mark}' [{b.minTime:.3f}, {b.maxTime:.3f}]",
                "fix the alignment (each interval must end where the next starts)",
            ) from exc
        if isinstance(exc, ValueError) and len(exc.args) == 1 and isinstance(exc.args[0], (int, float)):
            raise DataError(  # its way of refusing an interval outside the tier's [xmin, xmax]
                path,
                f"an interval lies outside its tier's time range (beyond {exc.args[0]} s)",
                "fix the alignment (intervals must lie within the tier's xmin and xmax)",
            ) from exc
        raise DataError(path, f"not a readable TextGrid ({exc})", "re-export it from Praat or an aligner") from exc
    if len(tg) == 0:
        raise DataError(path, "TextGrid has no tiers", "the first tier must hold the words")
    tier = tg[0]
    if not isinstance(tier, textgrid.IntervalTier):
        raise DataError(path, f"first tier '{tier.name}' is not an interval tier", "put the word tier first")
    words = [WordInterval(float(iv.minTime), float(iv.maxTime), str(iv.mark)) for iv in tier]
    words.sort(key=lambda w: (w.start, w.end))
    for prev, cur in zip(words, words[1:]):
        if cur.start < prev.end - 1e-4:
            raise DataError(
                path,
                f"intervals overlap: '{prev.word}' [{prev.start:.3f}, {prev.end:.3f}] and "
                f"'{cur.word}' [{cur.start:.3f}, {cur.end:.3f}]",
                "fix the alignment",
            )
    for w in words:
        if w.start < 0 or w.end < w.start:
            raise DataError(path, f"invalid interval '{w.word}' [{w.start}, {w.end}]", "fix the alignment")
    spoken = [w for w in words if w.word.strip()]
    if duration is not None and spoken and spoken[-1].end > duration + tolerance:
        raise DataError(
            path,
            f"word '{spoken[-1].word}' ends at {spoken[-1].end:.2f} s but the audio lasts {duration:.2f} s",
            "the TextGrid belongs to another recording: re-align it",
        )
    return words


def load_sem(path: str | Path) -> list[SemRow]:
    """Rows of a BEAT2 semantic annotation `sem/<id>.txt`.

    Columns (tab-separated, no header): name, start, end, duration, score, keywords (optional).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "semantic annotation not found", "add sem/<id>.txt or train without the sparse stage")
    rows: list[SemRow] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        cols = line.rstrip("\n").split("\t") if "\t" in line else line.split()
        if len(cols) < 5:
            raise DataError(
                path,
                f"line {lineno} has {len(cols)} columns, expected name, start, end, duration, score[, keywords]",
                "separate columns by tabs",
            )
        try:
            start, end, score = float(cols[1]), float(cols[2]), float(cols[4])
        except ValueError as exc:
            raise DataError(
                path,
                f"line {lineno}: start/end/score are not numbers ({exc})",
                "columns are name, start, end, duration, score, keywords",
            ) from exc
        if not (math.isfinite(start) and math.isfinite(end) and math.isfinite(score)) or end < start:
            raise DataError(path, f"line {lineno}: invalid segment [{start}, {end}] score {score}", "fix the row")
        if not 0.0 <= score <= 1.0:
            raise DataError(path, f"line {lineno}: score {score} outside [0, 1]", "scores are level/10")
        rows.append(SemRow(cols[0].strip(), start, end, score, " ".join(c.strip() for c in cols[5:]).strip()))
    return rows


def load_split(path: str | Path) -> dict[str, str]:
    """`train_test_split.csv` -> {clip id: split type}."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "split table not found", "BEAT2 ships train_test_split.csv at the dataset root")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"id", "type"} <= set(reader.fieldnames):
                raise DataError(path, f"header is {reader.fieldnames}, expected 'id,type'", "use BEAT2's two columns")
            split: dict[str, str] = {}
            for lineno, row in enumerate(reader, start=2):
                clip_id, kind = (row["id"] or "").strip(), (row["type"] or "").strip()
                if not clip_id or kind not in SPLIT_TYPES:
                    raise DataError(path, f"line {lineno}: bad row {row}", f"type must be one of {SPLIT_TYPES}")
                split[clip_id] = kind
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(path, f"not a readable CSV table ({exc})", "write it as UTF-8 text, columns id,type") from exc
    return split
