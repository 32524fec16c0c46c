"""A BEAT2-format dataset root: where each modality of a clip lives, which clips a split holds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from semtalk.data.beat2 import (
    Clip,
    load_audio,
    load_motion,
    load_sem,
    load_split,
    load_textgrid,
    speaker_of,
)
from semtalk.data.errors import DataError


class Beat2Root:
    """A dataset folder in BEAT2's layout (real BEAT2's `beat_english_v2.0.0/` or the embedded dataset).

    Args:
        root: the folder holding `smplxflame_30/`, `wave16k/`, `textgrid/`, `sem/`, `train_test_split.csv`.
        max_length_mismatch: largest allowed difference between audio and motion duration, seconds
            (BEAT2 clips differ by up to ~0.6 s; loaders cut to the shorter).
    """

    def __init__(self, root: str | Path, max_length_mismatch: float = 2.0) -> None:
        self.root = Path(root)
        self.max_length_mismatch = max_length_mismatch
        if not self.root.is_dir():
            raise DataError(
                self.root,
                "dataset folder not found",
                "run `semtalk make-dataset DIR` for the embedded dataset, or point to BEAT2's "
                "beat_english_v2.0.0 folder",
            )

    def motion_path(self, clip_id: str) -> Path:
        return self.root / "smplxflame_30" / f"{clip_id}.npz"

    def audio_path(self, clip_id: str) -> Path:
        return self.root / "wave16k" / f"{clip_id}.wav"

    def textgrid_path(self, clip_id: str) -> Path:
        return self.root / "textgrid" / f"{clip_id}.TextGrid"

    def sem_path(self, clip_id: str) -> Path:
        return self.root / "sem" / f"{clip_id}.txt"

    @property
    def split_path(self) -> Path:
        return self.root / "train_test_split.csv"

    @property
    def weights_dir(self) -> Path:
        return self.root / "weights"

    def clip_ids(self, splits: Iterable[str] = ("train",), speakers: Sequence[int] | None = None) -> list[str]:
        """Clip ids of the given split types (and speakers), sorted; every listed clip must have its motion
        and audio on disk."""
        table = load_split(self.split_path)
        wanted = set(splits)
        ids = sorted(
            cid for cid, kind in table.items() if kind in wanted and (speakers is None or speaker_of(cid) in speakers)
        )
        missing = [cid for cid in ids if not self.motion_path(cid).is_file() or not self.audio_path(cid).is_file()]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise DataError(
                self.split_path,
                f"{len(missing)} listed clips lack their npz or wav: {shown}",
                "download the missing files or remove their rows",
            )
        return ids

    def load_clip(self, clip_id: str, *, words: bool = True, sem: bool = True) -> Clip:
        """Load and cross-check every modality of a clip. TextGrid and sem are optional on disk."""
        motion = load_motion(self.motion_path(clip_id))
        audio = load_audio(self.audio_path(clip_id))
        clip = Clip(clip_id=clip_id, speaker=speaker_of(clip_id), motion=motion, audio=audio, sample_rate=16000)
        gap = clip.audio_seconds - motion.seconds
        if abs(gap) > self.max_length_mismatch:
            longer = "audio" if gap > 0 else "motion"
            raise DataError(
                self.audio_path(clip_id),
                f"audio lasts {clip.audio_seconds:.2f} s but motion {motion.seconds:.2f} s "
                f"({longer} longer by {abs(gap):.2f} s)",
                "the wav and npz do not belong together, or one is truncated",
            )
        if words and self.textgrid_path(clip_id).is_file():
            clip.words = load_textgrid(self.textgrid_path(clip_id), duration=clip.audio_seconds)
        if sem and self.sem_path(clip_id).is_file():
            clip.sem = load_sem(self.sem_path(clip_id))
        return clip
