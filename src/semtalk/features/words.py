"""Frame-level words: the vocabulary index of the word spoken at each 30 fps frame.

Rules of the reference loader: frame i at `t = i / 30` takes the first TextGrid interval with
`start <= t <= end`; a mark that is a single space is PAD (0); any other mark (including the empty silence
mark `""`, an ordinary vocabulary entry) is looked up, unknown words giving UNK (3); frames covered by no
interval are UNK.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from semtalk.data.beat2 import WordInterval
from semtalk.features.base import ClipInput
from semtalk.features.timeline import first_match
from semtalk.features.vocab import PAD, UNK, Vocab


def frame_marks(words: Sequence[WordInterval], num_frames: int) -> list[str | None]:
    """The mark at each frame (first matching interval), `None` where no interval covers the frame."""
    idx = first_match([w.start for w in words], [w.end for w in words], num_frames)
    return [words[k].word if k >= 0 else None for k in idx]


def frame_word_indices(words: Sequence[WordInterval], num_frames: int, vocab: Vocab) -> np.ndarray:
    """`(num_frames,)` int64 vocabulary index per frame (reference PAD/UNK rules)."""
    table = np.array([PAD if w.word == " " else vocab.index(w.word) for w in words] + [UNK], dtype=np.int64)
    idx = first_match([w.start for w in words], [w.end for w in words], num_frames)
    return table[idx]  # -1 picks the trailing UNK


class WordFeatures:
    """`words`: `(T,)` int64 vocabulary index per frame.

    Args:
        vocab: the vocabulary (BEAT2's `vocab.pkl` or one built from the dataset's TextGrids).
    """

    name: ClassVar[str] = "words"
    sources: ClassVar[tuple[str, ...]] = ("textgrid",)
    version: ClassVar[int] = 1
    runtime_keys: ClassVar[tuple[str, ...]] = ()

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab

    @classmethod
    def output_dims(cls, vocab: Vocab, **kwargs: Any) -> dict[str, int]:
        return {"vocab_size": len(vocab)}

    def __call__(self, item: ClipInput) -> dict[str, np.ndarray]:
        return {"words": frame_word_indices(item.clip.words, item.num_frames, self.vocab)}
