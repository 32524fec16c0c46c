"""BEAT2-format data: readers, the dataset root, features, cache and the LightningDataModule."""

from semtalk.data.beat2 import (
    BEAT2_SPEAKERS,
    Clip,
    Motion,
    SemRow,
    WordInterval,
    load_audio,
    load_motion,
    load_sem,
    load_split,
    load_textgrid,
    speaker_index,
    speaker_of,
)
from semtalk.data.errors import DataError
from semtalk.data.root import Beat2Root

__all__ = [
    "BEAT2_SPEAKERS",
    "Beat2Root",
    "Clip",
    "DataError",
    "Motion",
    "SemRow",
    "WordInterval",
    "load_audio",
    "load_motion",
    "load_sem",
    "load_split",
    "load_textgrid",
    "speaker_index",
    "speaker_of",
]
