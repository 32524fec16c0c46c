"""Word vectors for the embedded dataset, written as BEAT2's `weights/vocab.pkl`.

BEAT2 ships fastText vectors (300-d) for its vocabulary, and SemTalk's sparse generator starts from them: words of
like meaning lie close together, so a keyword the model saw rarely (or never) still lands near its class. The
embedded dataset has no fastText, so it writes vectors with that one property, by construction:

- every keyword class (`gestures.KEYWORD_CLASSES`) has a random unit direction; each of its words is that
  direction plus a word-specific random offset of norm `KEYWORD_SPREAD`, normalised (cosine between two words of
  a class about 0.8, between classes about 0);
- every other word is a random unit vector; the special tokens and silence (`""`) are zero.

Random draws are seeded by the dataset seed and the word itself, so a word's vector does not depend on the order
in which words appear. The pickle is a plain dict with BEAT2's `Vocab` attributes (`word2index`, `index2word`,
`n_words`, `word_embedding_weights`), read by `semtalk.features.vocab.load_vocab_pkl`.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterable

import numpy as np

from semtalk.features.vocab import SPECIALS
from semtalk.synth.gestures import KEYWORD_CLASSES, keyword_class

WORD_DIM = 300
#: norm of a keyword's own offset from its class direction (before normalising)
KEYWORD_SPREAD = 0.5


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim)
    return v / np.linalg.norm(v)


def _rng(seed: int, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def word_vectors(words: Iterable[str], seed: int, dim: int = WORD_DIM) -> np.ndarray:
    """`(len(words), dim)` float32 vectors for `words` (rules in the module docstring)."""
    classes = {c.name: _unit(_rng(seed, f"class:{c.name}"), dim) for c in KEYWORD_CLASSES}
    rows = []
    for w in words:
        if w in SPECIALS or not w.strip():
            rows.append(np.zeros(dim))
            continue
        own = _unit(_rng(seed, f"word:{w.lower()}"), dim)
        cls = keyword_class(w.lower())
        if cls is None:
            rows.append(own)
        else:
            v = classes[cls.name] + KEYWORD_SPREAD * own
            rows.append(v / np.linalg.norm(v))
    return np.asarray(rows, dtype=np.float32).reshape(-1, dim)


def vocab_pickle(marks: Iterable[str], seed: int, dim: int = WORD_DIM) -> bytes:
    """BEAT2's `vocab.pkl` for the word marks of a dataset (in order of first appearance after the 4 special
    tokens, as `Vocab.build` indexes them), with `word_vectors`."""
    index2word: dict[int, str] = dict(enumerate(SPECIALS))
    word2index: dict[str, int] = {}
    for m in marks:
        if m not in word2index:
            word2index[m] = len(index2word)
            index2word[len(index2word)] = m
    words = [index2word[i] for i in range(len(index2word))]
    state = {
        "name": "embedded",
        "word2index": word2index,
        "index2word": index2word,
        "n_words": len(words),
        "word_embedding_weights": word_vectors(words, seed, dim),
    }
    return pickle.dumps(state, protocol=4)
