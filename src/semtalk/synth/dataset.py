"""`make_dataset`: write a self-generated dataset in exactly BEAT2's layout and formats.

```
OUT/
  smplxflame_30/<id>.npz     poses (T,165) f32, trans (T,3) f64, betas (300,) f32, expressions (T,100) f64,
                             model 'smplx2020', gender 'neutral', mocap_frame_rate 30 (int32)
  wave16k/<id>.wav           16 kHz mono 32-bit float speech (espeak-ng)
  textgrid/<id>.TextGrid     Praat TextGrid, tiers `words` (silences = empty marks) and `phones`
  sem/<id>.txt               name, start, end, duration, score, keywords (tab-separated)
  train_test_split.csv       id,type with train / val / test
  weights/vocab.pkl          the vocabulary with 300-d word vectors, BEAT2's format (see `synth.vocab`)
  dataset_stats.json         what was generated (also returned by make_dataset)
  readme.md                  how the data was made
  .complete                  the generation arguments; present only once everything is written
```

Ids follow BEAT2: `<speaker id>_<name>_0_<k>_<k>` (type 0 = English speech, k = 1, 2, ...). Per speaker the
first ~15 % of the clips are test, the next ~15 % val (at least one each), the rest train, as in BEAT2.
The motion is generated from the speech by the rules in `motion.py` and `gestures.py`.

Everything is a function of the arguments: the same seed gives byte-identical files. Each file is written
atomically, so an interrupted run leaves no partial files; running again with the same arguments over a
complete tree returns the stored statistics without writing anything.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from semtalk.body.joints import FPS, SAMPLE_RATE
from semtalk.features.vocab import textgrid_marks
from semtalk.synth.annotation import format_sem, frame_scores, write_textgrid
from semtalk.synth.clip import Clip, make_clip
from semtalk.synth.files import write_bytes, write_npz, write_text, write_wav, write_with
from semtalk.synth.gestures import KEYWORD_CLASSES, WORD_TO_CLASS
from semtalk.synth.script import HELD_OUT_KEYWORDS
from semtalk.synth.style import SpeakerStyle, speaker_ids, speaker_style
from semtalk.synth.vocab import vocab_pickle

#: bump when the generator changes in a way that changes its output
FORMAT_VERSION = 3
SUBDIRS: tuple[str, ...] = ("smplxflame_30", "wave16k", "textgrid", "sem")
_EXT = {"smplxflame_30": ".npz", "wave16k": ".wav", "textgrid": ".TextGrid", "sem": ".txt"}
MAX_CLIPS_PER_SPEAKER = 118  # BEAT2's speech recordings per speaker
TEST_SHARE = VAL_SHARE = 0.15


def clip_id(style_or_id: SpeakerStyle | int, name: str | None, k: int) -> str:
    """BEAT2 file id `<speaker>_<name>_0_<k>_<k>`."""
    if isinstance(style_or_id, SpeakerStyle):
        sid, name = style_or_id.speaker_id, style_or_id.name
    else:
        sid = style_or_id
    return f"{sid}_{name}_0_{k}_{k}"


def split_of(k: int, clips_per_speaker: int) -> str:
    """Split of a speaker's clip `k` (1-based): the first ~15 % test, the next ~15 % val, the rest train."""
    n_test = max(1, round(TEST_SHARE * clips_per_speaker))
    n_val = max(1, round(VAL_SHARE * clips_per_speaker))
    if k <= n_test:
        return "test"
    if k <= n_test + n_val:
        return "val"
    return "train"


def _check_arguments(num_speakers: int, clips_per_speaker: int, clip_seconds: float, seed: int) -> None:
    speaker_ids(num_speakers)  # validates the range
    if not 3 <= clips_per_speaker <= MAX_CLIPS_PER_SPEAKER:
        raise ValueError(
            f"clips_per_speaker must be between 3 (one train, one val and one test clip per speaker) and "
            f"{MAX_CLIPS_PER_SPEAKER} (BEAT2's recording indices), got {clips_per_speaker}"
        )
    if not 3.0 <= clip_seconds <= 600.0:
        raise ValueError(f"clip_seconds must be between 3 and 600, got {clip_seconds}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")


def _paths(out: Path, cid: str) -> dict[str, Path]:
    return {d: out / d / f"{cid}{_EXT[d]}" for d in SUBDIRS}


def _check_out(out: Path, args: dict, ids: list[str]) -> bool:
    """True when `out` already holds this exact dataset; raises when it holds something else."""
    stamp = out / ".complete"
    if stamp.exists():
        try:
            old = json.loads(stamp.read_text())
        except (OSError, ValueError):
            old = None
        if old != args:
            raise FileExistsError(
                f"{out} holds a dataset made with different arguments ({old}); delete it or pass the same "
                f"arguments ({args})"
            )
        complete = (out / "dataset_stats.json").exists() and (out / "train_test_split.csv").exists()
        return complete and all(p.exists() for cid in ids for p in _paths(out, cid).values())
    wanted = set(ids)
    for d in SUBDIRS:
        folder = out / d
        if not folder.is_dir():
            continue
        foreign = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.stem not in wanted)
        if foreign:
            raise FileExistsError(
                f"{folder} holds files this run would not write (e.g. {foreign[0]}); make_dataset only writes "
                "into an empty folder or one it made itself with the same arguments. Choose another output "
                "folder or delete this one."
            )
    return False


def _write_clip(out: Path, cid: str, clip: Clip, style: SpeakerStyle) -> None:
    p = _paths(out, cid)
    m = clip.motion
    write_npz(
        p["smplxflame_30"],
        {
            "betas": style.betas.astype(np.float32),
            "poses": m.poses.astype(np.float32),
            "expressions": m.expressions.astype(np.float64),
            "trans": m.trans.astype(np.float64),
            "model": np.array("smplx2020"),
            "gender": np.array("neutral"),
            "mocap_frame_rate": np.array(FPS, dtype=np.int32),
        },
    )
    write_wav(p["wave16k"], clip.audio, SAMPLE_RATE)
    write_with(p["textgrid"], lambda tmp: write_textgrid(clip.words, clip.phones, clip.duration, tmp))
    write_text(p["sem"], format_sem(clip.sem))


def _readme(args: dict, speakers: list[SpeakerStyle]) -> str:
    lines = [
        "# Self-generated co-speech motion in BEAT2 layout",
        "",
        "Made by `semtalk make-dataset` (`semtalk.synth.dataset.make_dataset`) with "
        + ", ".join(f"{k}={v}" for k, v in args.items())
        + ".",
        "",
        "Speech: espeak-ng sentences from a built-in vocabulary, resampled to 16 kHz; word and phone "
        "timings from the synthesiser. Motion: generated from the speech by fixed rules - jaw and "
        "expressions follow the loudness envelope at lag 0, beat strokes of the arms at the strongest audio "
        "onsets, semantic gestures on keywords (annotated in sem/), weight shifts with planted feet.",
        "",
        "| id | name | voice | dominant hand |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s.speaker_id} | {s.name} | {s.voice.name} | {s.dominant} |" for s in speakers]
    return "\n".join(lines) + "\n"


def make_dataset(
    out: str | Path,
    *,
    num_speakers: int = 4,
    clips_per_speaker: int = 10,
    clip_seconds: float = 20.0,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Generate the dataset into `out` (see the module docstring) and return its statistics.

    Args:
        out: output folder (created; must be empty or hold this same dataset).
        num_speakers: 1-25 BEAT2 English speakers, speaker 2 ("scott") first.
        clips_per_speaker: 3-118 clips per speaker.
        clip_seconds: mean clip length; clips vary uniformly within +-20 % (whole sentences).
        seed: everything is drawn from it.
        progress: show a progress bar on stderr.

    Returns:
        Statistics: clips, frames, seconds, hours, per-split clips/frames/seconds, the share of frames
        with a semantic score (> 0.1 as SemTalk reads sem files), keyword counts per gesture class,
        and the speakers. Also written to `out/dataset_stats.json`.
    """
    _check_arguments(num_speakers, clips_per_speaker, clip_seconds, seed)
    out = Path(out)
    args = {
        "num_speakers": int(num_speakers),
        "clips_per_speaker": int(clips_per_speaker),
        "clip_seconds": float(clip_seconds),
        "seed": int(seed),
        "format_version": FORMAT_VERSION,
    }
    styles = [speaker_style(sid, seed) for sid in speaker_ids(num_speakers)]
    plan = [(s, k, clip_id(s, None, k)) for s in styles for k in range(1, clips_per_speaker + 1)]
    ids = [cid for _, _, cid in plan]
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a folder; choose another output path")
    if out.is_dir() and _check_out(out, args, ids):
        return json.loads((out / "dataset_stats.json").read_text())
    out.mkdir(parents=True, exist_ok=True)

    splits = {
        name: {"clips": 0, "frames": 0, "seconds": 0.0, "semantic_frames": 0} for name in ("train", "val", "test")
    }
    keywords: Counter[str] = Counter()
    rows: dict[str, str] = {}
    # training clips first: the val and test clips say only keywords the training clips said, and the test clips
    # also the held-out synonyms (script.HELD_OUT_KEYWORDS)
    order = sorted(plan, key=lambda p: split_of(p[1], clips_per_speaker) != "train")
    seen: set[str] = set()
    for style, k, cid in tqdm(order, desc="make-dataset", unit="clip", disable=not progress):
        split = split_of(k, clips_per_speaker)
        if split == "train":
            allowed = set(WORD_TO_CLASS) - set(HELD_OUT_KEYWORDS)
        else:
            allowed = seen | (set(HELD_OUT_KEYWORDS) if split == "test" else set())
        clip = make_clip(style, k, seed, clip_seconds, allowed)
        if split == "train":
            seen.update(e.word.lower() for e in clip.events)
        _write_clip(out, cid, clip, style)
        rows[cid] = f"{cid},{split}"
        s = splits[split]
        s["clips"] += 1
        s["frames"] += clip.n_frames
        s["seconds"] += clip.duration
        s["semantic_frames"] += int((frame_scores(clip.sem, clip.n_frames, FPS) > 0).sum())
        keywords.update(e.cls.name for e in clip.events)

    frames = sum(s["frames"] for s in splits.values())
    seconds = sum(s["seconds"] for s in splits.values())
    semantic = sum(s.pop("semantic_frames") for s in splits.values())
    for s in splits.values():
        s["seconds"] = round(s["seconds"], 3)
    stats = {
        "clips": len(plan),
        "frames": frames,
        "seconds": round(seconds, 3),
        "hours": round(seconds / 3600.0, 4),
        "fps": FPS,
        "sample_rate": SAMPLE_RATE,
        "splits": splits,
        "semantic_frame_share": round(semantic / max(frames, 1), 4),
        "keywords": {c.name: keywords.get(c.name, 0) for c in KEYWORD_CLASSES},
        "held_out_keywords": list(HELD_OUT_KEYWORDS),
        "speakers": [
            {"id": s.speaker_id, "name": s.name, "voice": s.voice.name, "dominant_hand": s.dominant} for s in styles
        ],
        "arguments": args,
    }
    # every mark of the TextGrids (silences included), in the order `Vocab.build` indexes them
    marks = textgrid_marks([_paths(out, cid)["textgrid"] for cid in ids])
    write_bytes(out / "weights" / "vocab.pkl", vocab_pickle(marks, seed))
    write_text(out / "train_test_split.csv", "id,type\n" + "\n".join(rows[cid] for cid in ids) + "\n")
    write_text(out / "readme.md", _readme(args, styles))
    write_text(out / "dataset_stats.json", json.dumps(stats, indent=2) + "\n")
    write_text(out / ".complete", json.dumps(args, sort_keys=True) + "\n")
    return stats
