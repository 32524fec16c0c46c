"""The word vocabulary: BEAT2's `weights/vocab.pkl` when present, else built from the dataset's TextGrids.

Indices follow BEAT2's `Vocab`: 0 `<PAD>`, 1 `<SOS>`, 2 `<EOS>`, 3 `<UNK>`, then words in order of first
appearance. Every mark is a word, including `""` (silence). `vocab.pkl` pickles a class
`dataloaders.build_vocab.Vocab` from EMAGE's code; it is read with a restricted unpickler that rebuilds
only that class's attributes and numpy arrays, so no code from the pickle runs.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from semtalk.data.errors import DataError

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS: tuple[str, ...] = ("<PAD>", "<SOS>", "<EOS>", "<UNK>")


class Vocab:
    """Word <-> index table, with an optional `(n_words, dim)` embedding matrix (fastText in BEAT2).

    Args:
        words: index -> word for every index (the 4 special tokens first).
        embeddings: optional `(len(words), dim)` float32 initial word embeddings.
        source: where it came from (a path or `"textgrids"`), for messages.
    """

    def __init__(self, words: Sequence[str], embeddings: np.ndarray | None = None, source: str = "") -> None:
        self.words = list(words)
        self.word2index: dict[str, int] = {}
        for i, w in enumerate(self.words):
            if i >= len(SPECIALS):
                self.word2index.setdefault(w, i)
        if embeddings is not None:
            embeddings = np.asarray(embeddings, dtype=np.float32)
            if embeddings.ndim != 2 or embeddings.shape[0] != len(self.words):
                raise ValueError(f"embedding matrix {embeddings.shape} does not match {len(self.words)} words")
        self.embeddings = embeddings
        self.source = source

    def __len__(self) -> int:
        return len(self.words)

    def index(self, word: str) -> int:
        """Index of `word`; unknown words give UNK (3)."""
        return self.word2index.get(word, UNK)

    @property
    def digest(self) -> str:
        """Identifies the word -> index table (what frame indices depend on)."""
        return hashlib.sha256(json.dumps(self.words).encode("utf-8")).hexdigest()

    @classmethod
    def build(cls, marks: Iterable[str], source: str = "textgrids") -> Vocab:
        """Index every mark in order of first appearance after the special tokens."""
        words = list(SPECIALS)
        seen: set[str] = set()
        for m in marks:
            if m not in seen:
                seen.add(m)
                words.append(m)
        return cls(words, source=source)

    def to_json(self) -> bytes:
        """The word table as JSON (`vocab.json` in a cache); embeddings are stored separately."""
        return json.dumps({"source": self.source, "words": self.words}, ensure_ascii=False).encode("utf-8")

    @classmethod
    def load_json(cls, path: str | Path, embeddings: str | Path | None = None) -> Vocab:
        """Read a `vocab.json` (and optionally a `.npy` embedding matrix)."""
        path = Path(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        emb = None
        if embeddings is not None and Path(embeddings).is_file():
            try:
                emb = np.load(embeddings, allow_pickle=False)  # a pickled object array is refused, never run
            except (ValueError, OSError, EOFError) as exc:
                raise DataError(embeddings, f"not a plain .npy embedding matrix ({exc})",
                                "rebuild the cache (`semtalk cache`)") from exc  # fmt: skip
        return cls(data["words"], emb, source=data.get("source", str(path)))


class _PickledVocab:
    """Receives the attributes of a pickled `dataloaders.build_vocab.Vocab`."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy 1.26
    from numpy.core.multiarray import _reconstruct, scalar

_ALLOWED = {
    ("dataloaders.build_vocab", "Vocab"): _PickledVocab,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("collections", "OrderedDict"): dict,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def load_vocab_pkl(path: str | Path) -> Vocab:
    """Read BEAT2's `weights/vocab.pkl` (word2index, index2word, n_words, word_embedding_weights)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            obj = _RestrictedUnpickler(f).load()
    except FileNotFoundError:
        raise DataError(path, "vocabulary not found", "use BEAT2's weights/vocab.pkl or words.vocab: auto") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as exc:
        raise DataError(path, f"not a BEAT2 vocabulary pickle ({exc})",
                        "give BEAT2's weights/vocab.pkl, or set words.vocab: textgrids to build one "
                        "from the dataset")  from exc  # fmt: skip
    state = obj.__dict__ if isinstance(obj, _PickledVocab) else obj if isinstance(obj, dict) else None
    if not state or "index2word" not in state:
        raise DataError(path, "the pickle holds no index2word table", "give BEAT2's weights/vocab.pkl")
    index2word = state["index2word"]
    n = int(state.get("n_words", len(index2word)))
    missing = [i for i in range(n) if i not in index2word]
    if missing:
        raise DataError(path, f"index2word lacks {len(missing)} of {n} indices (first {missing[0]})",
                        "the vocabulary is corrupt; re-download BEAT2's weights/vocab.pkl")  # fmt: skip
    words = [str(index2word[i]) for i in range(n)]
    emb = state.get("word_embedding_weights")
    vocab = Vocab(words, np.asarray(emb, dtype=np.float32) if emb is not None else None, source=str(path))
    w2i = state.get("word2index") or {}
    bad = [w for w, i in w2i.items() if vocab.index(w) != i]
    if bad:
        raise DataError(path, f"word2index disagrees with index2word for {len(bad)} words (e.g. {bad[0]!r})",
                        "the vocabulary is corrupt; re-download BEAT2's weights/vocab.pkl")  # fmt: skip
    return vocab


def textgrid_marks(paths: Iterable[Path]) -> Iterable[str]:
    """Marks of the first tier of every TextGrid, in file then time order."""
    from semtalk.data.beat2 import load_textgrid

    for p in paths:
        for w in load_textgrid(p):
            yield w.word
