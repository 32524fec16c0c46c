"""Generation from any speech: the feature front end, word timings, emphasis controls and the offline driver.

Generation needs what the stages were trained with: the same extractor configuration and vocabulary as the
training cache (`FrontendSpec`, read from the cache's `manifest.json` and `vocab.json`, or from a
`frontend.json` shipped next to the checkpoints), the stages themselves (`Pipeline`, loaded by
`stages.inference.load_pipeline`; this library never imports the stages and only calls the methods named in
`Pipeline`), and word timings (`WordTrack`: a TextGrid, a transcript spread over the voiced audio, an ASR model,
or none). `Emphasis` scales ψ on chosen words or time ranges.

`generate_audio` runs the same incremental engine as streaming (`semtalk.streaming`) over the blocks of an
audio file, so memory stays bounded by the block size plus the output itself, whatever the input's length.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semtalk.body.joints import FPS, NUM_BETAS, SAMPLE_RATE
from semtalk.data.beat2 import WordInterval, speaker_index
from semtalk.data.errors import DataError
from semtalk.features.vocab import PAD, UNK, Vocab

log = logging.getLogger(__name__)

FRONTEND_FILE = "frontend.json"
FRONTEND_VERSION = 1
#: per-frame audio features the generators read, in the order they are extracted
AUDIO_FEATURES: tuple[str, ...] = ("hubert", "beat", "emotion")


# ================================================================================================ front end
@dataclass
class FrontendSpec:
    """What feature extraction at inference must match: the training cache's extractors and vocabulary.

    Attributes:
        config: the extractor configuration (`manifest.json` `config`: model ids or tiny configs with seeds).
        vocab: index -> word of the word table.
        dims: feature widths (`hubert`, `beat`, `vocab_size`, `clip_text`, `emotion`).
        betas: BEAT2 speaker id -> `(300,)` body shape of one of its training clips (for the exports).
        default_speaker: the speaker most training clips belong to.
        source: where it was read from.
    """

    config: dict[str, Any]
    vocab: list[str]
    dims: dict[str, int] = field(default_factory=dict)
    betas: dict[int, list[float]] = field(default_factory=dict)
    default_speaker: int | None = None
    source: str = ""

    @classmethod
    def from_cache(cls, cache_dir: str | Path) -> FrontendSpec:
        """Read a feature cache (`semtalk cache` output): its manifest, vocabulary and one shape per speaker."""
        from semtalk.data.cache import MANIFEST, read_clip_file, read_manifest

        cache = Path(cache_dir)
        manifest = read_manifest(cache)
        if manifest is None:
            raise DataError(cache / MANIFEST, "no feature cache here (generation reads the extractor settings and "
                            "the vocabulary the checkpoints were trained with from it)",
                            "pass --cache DIR, the cache the stages were trained on (`make cache`), or ship "
                            f"{FRONTEND_FILE} next to the checkpoints")  # fmt: skip
        config = manifest.get("config") or {}
        vocab: list[str] = []
        if "words" in config:
            path = cache / "vocab.json"
            if not path.is_file():
                raise DataError(path, "the cache's vocabulary is missing", "rebuild the cache (`semtalk cache`)")
            vocab = Vocab.load_json(path).words
        dims: dict[str, int] = {}
        for rec in (manifest.get("extractors") or {}).values():
            dims.update({k: int(v) for k, v in rec.get("dims", {}).items()})
        clips = manifest.get("clips") or {}
        counts: dict[int, int] = {}
        betas: dict[int, list[float]] = {}
        for cid in sorted(clips, key=lambda c: (clips[c].get("split") != "train", c)):
            entry = clips[cid]
            spk = entry.get("speaker")
            if spk is None:
                continue
            spk = int(spk)
            if entry.get("split") == "train":
                counts[spk] = counts.get(spk, 0) + 1
            if spk not in betas and (cache / entry["file"]).is_file():
                try:
                    arrays, _ = read_clip_file(cache / entry["file"], keys=["betas"])
                except Exception:  # a damaged clip file: its speaker keeps the mean shape
                    continue
                if "betas" in arrays:
                    betas[spk] = [float(v) for v in np.asarray(arrays["betas"]).reshape(-1)[:NUM_BETAS]]
        default = max(counts, key=lambda s: (counts[s], -s)) if counts else (min(betas) if betas else None)
        return cls(config, vocab, dims, betas, default, str(cache))

    def to_json(self) -> str:
        data = {"version": FRONTEND_VERSION, "config": self.config, "vocab": self.vocab, "dims": self.dims,
                "betas": {str(k): v for k, v in self.betas.items()}, "default_speaker": self.default_speaker,
                "source": self.source}  # fmt: skip
        return json.dumps(data, ensure_ascii=False)

    def save(self, path: str | Path) -> Path:
        """Write `frontend.json` (ship it next to the checkpoints: generation then needs no cache)."""
        from semtalk.atomic import write_bytes_atomic

        path = Path(path)
        write_bytes_atomic(path, self.to_json().encode("utf-8"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> FrontendSpec:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(path, f"not a readable front-end file ({exc})", "rewrite it from the cache") from exc
        if data.get("version") != FRONTEND_VERSION:
            raise DataError(path, f"front-end file version {data.get('version')}, expected {FRONTEND_VERSION}",
                            "rewrite it from the cache with FrontendSpec.from_cache(DIR).save(PATH)")  # fmt: skip
        betas = {int(k): list(v) for k, v in (data.get("betas") or {}).items()}
        return cls(data["config"], list(data.get("vocab") or []), dict(data.get("dims") or {}), betas,
                   data.get("default_speaker"), str(path))  # fmt: skip

    def shape_of(self, speaker: int | None) -> np.ndarray:
        """`(300,)` body shape for a BEAT2 speaker id (zeros, the mean shape, when unknown)."""
        out = np.zeros(NUM_BETAS, dtype=np.float32)
        values = self.betas.get(int(speaker)) if speaker is not None else None
        if values:
            out[: len(values)] = values
        return out


class Frontend:
    """The extractors of a `FrontendSpec`, built on first use (only those the generation needs).

    Args:
        spec: the training cache's settings.
        need: extractor names to provide (`hubert`, `beat`, `emotion`, `clip_text`).
        device: where the encoders run.
    """

    def __init__(self, spec: FrontendSpec, need: Iterable[str], device: str = "cpu") -> None:
        self.spec = spec
        self.need = tuple(n for n in (*AUDIO_FEATURES, "clip_text") if n in set(need))
        missing = [n for n in self.need if n not in spec.config]
        if missing:
            raise DataError(spec.source or "front end", f"the extractor configuration has no {missing}",
                            "generate with the cache the checkpoints were trained on")  # fmt: skip
        self.device = device
        self._built: dict[str, Any] = {}
        self._sentences: dict[str, np.ndarray] = {}
        self.vocab = Vocab(spec.vocab) if spec.vocab else None

    def extractor(self, name: str):
        if name not in self._built:
            import contextlib
            import io

            from semtalk.features.registry import EXTRACTORS

            cls = EXTRACTORS[name]
            kwargs = dict(self.spec.config[name])
            if "device" in cls.runtime_keys:
                kwargs["device"] = self.device
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):  # funasr prints install hints on import
                self._built[name] = cls(**kwargs)
            if printed.getvalue().strip():
                log.debug("%s: %s", name, printed.getvalue().strip())
        return self._built[name]

    def build(self) -> None:
        """Build every needed encoder now (so the first audio block is not slowed down by it)."""
        for name in self.need:
            self.extractor(name)

    def audio_features(self, audio: np.ndarray, num_frames: int) -> dict[str, np.ndarray]:
        """`(S,)` 16 kHz mono audio -> name -> `(num_frames, D)` features (30 fps) of every needed extractor."""
        from semtalk.data.beat2 import Clip
        from semtalk.features.base import ClipInput

        speech = np.asarray(audio, dtype=np.float32)
        clip = Clip("speech", 0, None, speech, SAMPLE_RATE)  # type: ignore[arg-type]  # audio extractors: no motion
        item = ClipInput(clip, num_frames)
        out: dict[str, np.ndarray] = {}
        for name in AUDIO_FEATURES:
            if name in self.need:
                out.update(self.extractor(name)(item))
        return out

    def sentence_features(self, sentences: Sequence[str]) -> np.ndarray:
        """CLIP text features `(N, Dc)` of window sentences (each distinct sentence encoded once; a small
        bounded memo)."""
        todo = sorted({s for s in sentences if s not in self._sentences})
        if todo:
            feats = self.extractor("clip_text").encode(todo)
            if len(self._sentences) > 4096:
                self._sentences.clear()
            self._sentences.update(zip(todo, feats))
        return np.stack([self._sentences[s] for s in sentences]).astype(np.float32)


# ================================================================================================ words
_PUNCT = re.compile(r"[^\w']+", re.UNICODE)


def normalise_word(word: str) -> str:
    """Lower case, punctuation dropped (apostrophes inside words kept): `"Hello,"` -> `"hello"`."""
    return _PUNCT.sub("", word.lower()).strip("'")


class WordTrack:
    """Word intervals over the speech, looked up frame by frame with the training rules.

    Frame i (t = i / 30) takes the first interval with `start <= t <= end`; a single-space mark is PAD, any other
    mark is looked up in the vocabulary (as written, then normalised), unknown words are UNK, uncovered frames UNK.

    Args:
        words: intervals sorted by time (more can be added later, in order, with `add`).
        vocab: the training vocabulary (None: every frame UNK).
    """

    def __init__(self, words: Sequence[WordInterval] = (), vocab: Vocab | None = None) -> None:
        self.words: list[WordInterval] = []
        self.starts: list[float] = []
        self._ids: list[int] = []
        self.vocab = vocab
        self.add(words)

    def add(self, words: Sequence[WordInterval]) -> None:
        for w in sorted(words, key=lambda w: (w.start, w.end)):
            if self.words and w.start < self.words[-1].end - 1e-4:
                raise ValueError(f"word '{w.word}' at {w.start:.3f} s overlaps or precedes the words given before")
            self.words.append(w)
            self.starts.append(w.start)
            self._ids.append(self.lookup(w.word))

    def __len__(self) -> int:
        return len(self.words)

    def _index(self, f0: int, f1: int) -> np.ndarray:
        """Interval index per frame of `[f0, f1)` (-1 where none), first match wins."""
        t = (f0 + np.arange(max(f1 - f0, 0), dtype=np.float64)) / FPS
        out = np.full(len(t), -1, dtype=np.int64)
        if not len(t) or not self.words:
            return out
        hi_k = bisect_right(self.starts, t[-1] + 1e-9)
        k = hi_k - 1
        while k >= 0:
            w = self.words[k]
            if w.end < t[0] - 1e-9:
                break  # sorted, non-overlapping intervals: nothing earlier reaches this range
            lo = int(np.searchsorted(t, w.start, side="left"))
            hi = int(np.searchsorted(t, w.end, side="right"))
            if hi > lo:
                out[lo:hi] = k
            k -= 1
        return out

    def marks(self, f0: int, f1: int) -> list[str | None]:
        return [self.words[k].word if k >= 0 else None for k in self._index(f0, f1)]

    def lookup(self, mark: str) -> int:
        if self.vocab is None:
            return UNK
        if mark == " ":
            return PAD
        i = self.vocab.index(mark)
        return i if i != UNK else self.vocab.index(normalise_word(mark))

    def ids(self, f0: int, f1: int) -> np.ndarray:
        """`(f1 - f0,)` int64 vocabulary index per frame."""
        table = np.array([*self._ids, UNK], dtype=np.int64)
        return table[self._index(f0, f1)]  # -1 picks the trailing UNK

    def sentence(self, f0: int, f1: int) -> str:
        """The window sentence of frames `[f0, f1)` (blank marks dropped, repeats collapsed), as the cache makes it."""
        from semtalk.features.clip_text import window_sentence

        return window_sentence(self.marks(f0, f1))

    def summary(self, gains: dict[str, float] | None = None) -> list[dict[str, Any]]:
        """The spoken words for the ψ file: start, end, word, whether the vocabulary knows it, emphasis gain."""
        out = []
        for w in self.words:
            if not w.word.strip():
                continue
            item: dict[str, Any] = {"start": round(w.start, 3), "end": round(w.end, 3), "word": w.word,
                                    "known": self.lookup(w.word) not in (UNK, PAD)}  # fmt: skip
            g = (gains or {}).get(normalise_word(w.word))
            if g is not None:
                item["gain"] = g
            out.append(item)
        return out

    def unknown_words(self) -> list[str]:
        return sorted({w.word for w in self.words if w.word.strip() and self.lookup(w.word) == UNK})


#: 20 ms frames whose RMS level is below this (dBFS) are never voiced, however quiet the loudest one is: digital
#: silence or a hiss far below any speech level is not speech
SILENCE_DB = -60.0


class VoicedLevels:
    """The 20 ms RMS levels of audio given block by block (e.g. as `generate_audio`'s `on_block`), and the voiced
    stretches they hold."""

    def __init__(self, sample_rate: int = SAMPLE_RATE) -> None:
        self.sample_rate, self.hop = sample_rate, sample_rate // 50
        self.rms: list[float] = []
        self.samples = 0
        self._carry = np.zeros(0, dtype=np.float32)
        self._closed = False

    def push(self, block: np.ndarray) -> None:
        if self._closed:
            raise RuntimeError("VoicedLevels: push after regions()")
        self.samples += len(block)
        x = np.concatenate((self._carry, np.asarray(block, dtype=np.float32)))
        whole = len(x) // self.hop * self.hop
        if whole:
            self.rms.extend(np.sqrt(np.mean(x[:whole].reshape(-1, self.hop) ** 2, axis=1) + 1e-12).tolist())
        self._carry = x[whole:]

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate

    def regions(
        self, top_db: float = 35.0, min_gap: float = 0.2, floor_db: float = SILENCE_DB
    ) -> list[tuple[float, float]]:
        """Voiced stretches `[(start, end)]` in seconds: frames within `top_db` of the loudest and above `floor_db`
        dBFS, gaps shorter than `min_gap` seconds bridged. Empty for silent audio."""
        if not self._closed:
            if len(self._carry):
                self.rms.append(float(np.sqrt(np.mean(self._carry**2) + 1e-12)))
            self._carry, self._closed = np.zeros(0, dtype=np.float32), True
        if not self.rms:
            return []
        level = 20 * np.log10(np.asarray(self.rms) + 1e-12)
        voiced = level > max(float(level.max()) - top_db, floor_db)
        duration, rate = self.duration, self.sample_rate
        regions: list[list[float]] = []
        for i in np.flatnonzero(voiced):
            start, end = i * self.hop / rate, min((i + 1) * self.hop / rate, duration)
            if regions and start - regions[-1][1] < min_gap:
                regions[-1][1] = end
            else:
                regions.append([start, end])
        return [(float(a), float(b)) for a, b in regions]


def voiced_regions(
    blocks: Iterable[np.ndarray],
    sample_rate: int = SAMPLE_RATE,
    top_db: float = 35.0,
    min_gap: float = 0.2,
    floor_db: float = SILENCE_DB,
) -> tuple[list[tuple[float, float]], float]:
    """Voiced stretches of audio given block by block: 20 ms RMS frames within `top_db` of the loudest and above
    `floor_db` dBFS, gaps shorter than `min_gap` seconds bridged. Returns `[(start, end)]` seconds (empty for
    silence) and the duration."""
    levels = VoicedLevels(sample_rate)
    for block in blocks:
        levels.push(block)
    return levels.regions(top_db, min_gap, floor_db), levels.duration


def spread_transcript(text: str, regions: Sequence[tuple[float, float]], duration: float) -> list[WordInterval]:
    """Words of `text` laid over the voiced regions in order, each taking time in proportion to its length + 1;
    a word is kept inside the region that holds its midpoint; silences between words are `""` marks (BEAT2's
    silence). Timings are approximate. Without a voiced region there is nowhere to put the words: `ValueError`."""
    words = [w for w in (normalise_word(t) for t in text.split()) if w]
    if not words:
        raise ValueError("the transcript holds no words")
    if not regions:
        raise ValueError(
            f"the audio ({duration:.1f} s) has no voiced part (every 20 ms frame below {SILENCE_DB:g} dBFS, e.g. "
            "digital silence), so the transcript's words cannot be placed: give speech, or word timings (--words)"
        )
    voiced = sum(b - a for a, b in regions)
    weights = np.array([len(w) + 1.0 for w in words])
    edges = np.concatenate(([0.0], np.cumsum(weights) / weights.sum() * voiced))
    bounds = np.cumsum([0.0] + [b - a for a, b in regions])

    def to_time(pos: float) -> tuple[float, int]:
        r = int(min(np.searchsorted(bounds, pos, side="right") - 1, len(regions) - 1))
        return regions[r][0] + (pos - bounds[r]), r

    out: list[WordInterval] = []
    cursor = 0.0
    for w, a, b in zip(words, edges[:-1], edges[1:]):
        _, r = to_time((a + b) / 2)
        start = max(to_time(a)[0], regions[r][0], cursor)
        end = max(min(to_time(b)[0] if to_time(b)[1] == r else regions[r][1], regions[r][1]), start)
        if start > cursor + 1e-6:
            out.append(WordInterval(round(cursor, 4), round(start, 4), ""))
        out.append(WordInterval(round(start, 4), round(end, 4), w))
        cursor = end
    if duration > cursor + 1e-6:
        out.append(WordInterval(round(cursor, 4), round(duration, 4), ""))
    return out


def asr_words(audio: np.ndarray, model: str, device: str = "cpu", chunk_seconds: float = 30.0) -> list[WordInterval]:
    """Word timings from a local speech-recognition model through `transformers`' ASR pipeline with word
    timestamps (CTC models such as wav2vec 2.0, or Whisper). `model`: a local folder or a hub id already in the
    Hugging Face cache (nothing is downloaded). Gaps between words become `""` marks."""
    from transformers import pipeline

    from semtalk.features.weights import hf_local_dir

    folder = hf_local_dir(model, what="speech recognition", config_key="--asr")
    asr = pipeline("automatic-speech-recognition", model=str(folder), device=device)
    result = asr(
        {"raw": np.asarray(audio, dtype=np.float32), "sampling_rate": SAMPLE_RATE},
        return_timestamps="word",
        chunk_length_s=chunk_seconds,
    )
    duration = len(audio) / SAMPLE_RATE
    out: list[WordInterval] = []
    cursor = 0.0
    for chunk in result.get("chunks", []):
        word = normalise_word(str(chunk.get("text", "")))
        start, end = chunk.get("timestamp", (None, None))
        if not word or start is None:
            continue
        start = max(float(start), cursor)
        end = max(float(end if end is not None else start + 0.2), start)
        if start > cursor + 1e-6:
            out.append(WordInterval(round(cursor, 4), round(start, 4), ""))
        out.append(WordInterval(round(start, 4), round(end, 4), word))
        cursor = end
    if duration > cursor + 1e-6:
        out.append(WordInterval(round(cursor, 4), round(duration, 4), ""))
    return out


# ================================================================================================ emphasis
@dataclass
class Emphasis:
    """Gains on ψ: per word (normalised) and per time range `[start, end)` seconds; overlapping gains multiply.

    A token's gain is the mean of its 4 frames' gains; the window multiplies ψ by it (clamped to [0, 1]) before
    the fusion threshold β, so a gain above 1 turns tokens to the semantic codes and 0 turns them off.
    """

    words: dict[str, float] = field(default_factory=dict)
    ranges: list[tuple[float, float, float]] = field(default_factory=list)

    @classmethod
    def parse(cls, word_items: Sequence[str] = (), range_items: Sequence[str] = ()) -> Emphasis:
        """`["hello=2", ...]` and `["1.5-3=0", ...]` (seconds) -> `Emphasis`; bad items raise ValueError."""
        words: dict[str, float] = {}
        for item in word_items:
            word, sep, gain = item.rpartition("=")
            if not sep or not normalise_word(word):
                raise ValueError(f"--emphasis {item!r}: write WORD=GAIN, e.g. --emphasis big=2")
            words[normalise_word(word)] = _gain(gain, item, "--emphasis")
        ranges = []
        for item in range_items:
            m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*-\s*([0-9]*\.?[0-9]+)\s*=\s*(\S+)\s*", item)
            if not m:
                raise ValueError(f"--emphasis-range {item!r}: write START-END=GAIN in seconds, e.g. 1.5-3=2")
            start, end = float(m.group(1)), float(m.group(2))
            if end <= start:
                raise ValueError(f"--emphasis-range {item!r}: the end must come after the start")
            ranges.append((start, end, _gain(m.group(3), item, "--emphasis-range")))
        return cls(words, ranges)

    def __bool__(self) -> bool:
        return bool(self.words or self.ranges)

    def frame_gains(self, track: WordTrack | None, f0: int, f1: int) -> np.ndarray:
        """`(f1 - f0,)` float32 gain per frame."""
        g = np.ones(max(f1 - f0, 0), dtype=np.float32)
        if self.words and track is not None and len(track):
            for i, m in enumerate(track.marks(f0, f1)):
                if m is not None:
                    g[i] *= self.words.get(normalise_word(m), 1.0)
        t = (f0 + np.arange(len(g))) / FPS
        for start, end, gain in self.ranges:
            g[(t >= start) & (t < end)] *= gain
        return g

    def token_gains(self, track: WordTrack | None, f0: int, tokens: int, frames_per_token: int = 4) -> np.ndarray:
        """`(tokens,)` mean frame gain of each token starting at frame `f0`."""
        return self.frame_gains(track, f0, f0 + tokens * frames_per_token).reshape(tokens, -1).mean(1)

    def unmatched(self, track: WordTrack) -> list[str]:
        present = {normalise_word(w.word) for w in track.words}
        return sorted(w for w in self.words if w not in present)


def _gain(text: str, item: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{flag} {item!r}: the gain {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{flag} {item!r}: the gain must be a finite number >= 0")
    return value


# ================================================================================================ pipeline
@dataclass
class Pipeline:
    """The loaded stages plus their front end.

    `base` must provide `codec`, `window`, `seed_frames`, `default_seed(batch)` and `window_fn(speaker)`;
    `sparse` (optional) `window_fn(speaker, clip, beta, psi_scale, mode)` and `generator.use_emotion`
    (`stages.base.BaseStage` and `stages.sparse.SparseStage` do). Both in eval mode on `device`.
    """

    base: Any
    sparse: Any | None
    frontend: FrontendSpec
    beta: float = 0.5
    device: str = "cpu"
    num_speakers: int = 25
    notices: list[str] = field(default_factory=list)
    root: str | None = None  # the folder the checkpoints' relative paths (tokenizers, body model) resolve against

    @property
    def codec(self):
        return self.base.codec

    def resolve_mode(self, mode: str) -> str:
        if mode not in ("full", "rhythm"):
            raise ValueError(f"mode must be 'full' or 'rhythm', not {mode!r}")
        return "rhythm" if self.sparse is None else mode

    def needs(self, mode: str) -> list[str]:
        """Extractors the generation in `mode` reads."""
        need = ["hubert", "beat"]
        if self.resolve_mode(mode) == "full":
            need.append("clip_text")
            if getattr(self.sparse.generator, "use_emotion", False):
                need.append("emotion")
        return need

    def speaker(self, speaker_id: int | None) -> tuple[int, int]:
        """(BEAT2 speaker id, embedding index) for `speaker_id` (default: the training data's main speaker)."""
        sid = speaker_id if speaker_id is not None else self.frontend.default_speaker
        if sid is None:
            sid = 2
        idx = speaker_index(int(sid))
        if idx >= self.num_speakers:
            raise ValueError(f"speaker {sid} maps to embedding {idx}, but the checkpoints know {self.num_speakers}")
        return int(sid), idx


# ================================================================================================ audio files
class AudioFile:
    """A speech file read block by block as 16 kHz mono float32 (any rate and channel count, streaming resampler),
    so a long recording never sits in memory whole.

    Args:
        path: any format libsndfile reads (wav, flac, ogg, mp3 with libsndfile >= 1.1).
    """

    def __init__(self, path: str | Path) -> None:
        import soundfile as sf

        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(self.path, "audio file not found", "check the path")
        try:
            info = sf.info(str(self.path))
        except (RuntimeError, sf.LibsndfileError, ValueError) as exc:
            raise DataError(self.path, f"not a readable audio file ({exc})", "convert it to wav") from exc
        if info.frames == 0:
            raise DataError(self.path, "audio is empty", "provide speech audio")
        self.sample_rate, self.channels, self.source_frames = int(info.samplerate), int(info.channels), int(info.frames)

    @property
    def seconds(self) -> float:
        return self.source_frames / self.sample_rate

    def blocks(self, block_seconds: float = 10.0) -> Iterator[np.ndarray]:
        """16 kHz mono float32 blocks of about `block_seconds` each."""
        import soundfile as sf

        resampler = None
        if self.sample_rate != SAMPLE_RATE:
            import soxr

            resampler = soxr.ResampleStream(self.sample_rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        size = max(1, int(block_seconds * self.sample_rate))
        read = 0
        with sf.SoundFile(str(self.path)) as f:
            while True:
                data = f.read(size, dtype="float32", always_2d=True)
                read += len(data)
                last = len(data) < size or read >= self.source_frames
                mono = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
                if not np.isfinite(mono).all():
                    raise DataError(self.path, "audio holds NaN/Inf samples", "re-encode the file")
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
                if len(mono):
                    yield mono
                if last:
                    break


# ================================================================================================ offline driver
@dataclass
class GenerationResult:
    """A generated sequence of n frames (numpy, channel-last).

    Attributes:
        poses `(n, 165)`, trans `(n, 3)`, expressions `(n, 100)`, contact `(n, 4)`; psi, gate, gain `(n,)` (psi and
        gate None in rhythm mode); mode, beta, speaker (BEAT2 id); seconds: wall time; notices: what the user
        should know about this run.
    """

    poses: np.ndarray
    trans: np.ndarray
    expressions: np.ndarray
    contact: np.ndarray
    psi: np.ndarray | None
    gate: np.ndarray | None
    gain: np.ndarray
    mode: str
    beta: float
    speaker: int
    seconds: float
    notices: list[str] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return int(self.poses.shape[0])


def generate_audio(
    pipeline: Pipeline,
    blocks: Iterable[np.ndarray],
    words: WordTrack | None = None,
    *,
    speaker: int | None = None,
    mode: str = "full",
    beta: float | None = None,
    emphasis: Emphasis | None = None,
    plan=None,
    frontend: Frontend | None = None,
    on_block=None,
    cuda_graphs: bool = False,
) -> GenerationResult:
    """Generate motion for speech given as 16 kHz mono blocks (e.g. `AudioFile(path).blocks()`).

    The streaming engine runs with `plan` (default `semtalk.streaming.offline_plan`: 18 s feature blocks with
    1.5 s of left and 0.5 s of right context for 20 s encoder chunks); `on_block(block)` sees every input block
    (e.g. to write a wav copy); `cuda_graphs`: see `semtalk.streaming.MotionEngine`.
    """
    from semtalk.streaming import StreamingGenerator, offline_plan

    t0 = time.perf_counter()
    gen = StreamingGenerator(pipeline, words=words, speaker=speaker, mode=mode, beta=beta, emphasis=emphasis,
                             plan=plan or offline_plan(pipeline.frontend), frontend=frontend,
                             cuda_graphs=cuda_graphs)  # fmt: skip
    chunks = []
    for block in blocks:
        if on_block is not None:
            on_block(block)
        chunks.append(gen.push(block))
    chunks.append(gen.finish())
    chunks = [c for c in chunks if c.frames]

    def cat(name: str) -> np.ndarray | None:
        parts = [getattr(c, name) for c in chunks]
        if not parts or parts[0] is None:
            return None
        return np.concatenate(parts)

    return GenerationResult(
        poses=cat("poses"),
        trans=cat("trans"),
        expressions=cat("expressions"),
        contact=cat("contact"),
        psi=cat("psi"),
        gate=cat("gate"),
        gain=cat("gain"),
        mode=gen.mode,
        beta=gen.beta,
        speaker=gen.speaker_id,
        seconds=time.perf_counter() - t0,
        notices=list(gen.notices),
    )
