"""English sentences for the speakers to say, from a small built-in vocabulary and templates.

Templates mix plain sentences with keyword slots (see `gestures.KEYWORD_CLASSES`), so that keywords of
every class occur often: with the default mix about one sentence in two carries a keyword, which puts
the semantic-gesture share of frames at roughly a fifth. Filler words never contain a keyword, so every
gesture is triggered by a slot.
"""

from __future__ import annotations

import re

import numpy as np

from semtalk.synth.gestures import WORD_TO_CLASS

FILLERS: dict[str, tuple[str, ...]] = {
    "subj": ("we", "they", "she", "he", "our team", "the students", "her friend", "the manager",
             "the neighbours", "his family", "the children", "our teacher"),
    "subjp": ("we", "they", "the students", "the neighbours", "the children", "our friends"),
    "verb": ("visit", "build", "paint", "open", "finish", "watch", "cook", "read", "plan", "explore",
             "clean", "fix", "change", "share", "carry", "design"),
    "verbed": ("visited", "built", "painted", "opened", "finished", "watched", "cooked", "read",
               "planned", "explored", "cleaned", "fixed", "changed", "shared", "carried", "designed"),
    "noun": ("project", "house", "story", "garden", "problem", "question", "plan", "book", "river",
             "market", "movie", "song", "kitchen", "bridge", "window", "letter", "journey", "picture",
             "machine", "village", "concert", "lesson", "recipe", "building"),
    "nouns": ("projects", "houses", "stories", "gardens", "problems", "questions", "books", "rivers",
              "movies", "songs", "bridges", "windows", "letters", "pictures", "machines", "lessons",
              "recipes", "buildings", "boxes", "chairs"),
    "adj": ("good", "new", "old", "quiet", "bright", "simple", "strange", "early", "busy", "warm",
            "cold", "beautiful", "difficult", "famous", "green", "modern", "friendly", "careful"),
    "place": ("in the city", "at home", "near the river", "at the office", "in the garden", "on the train",
              "at school", "by the sea", "in the kitchen", "downtown"),
    "time": ("yesterday", "last year", "each morning", "on sunday", "this week", "after lunch",
             "in the evening", "next month", "last summer", "today"),
    "feel": ("happy", "tired", "surprised", "excited", "calm", "curious"),
}  # fmt: skip

KEYWORD_SLOTS: dict[str, tuple[str, ...]] = {
    "I": ("i",),
    "me": ("me", "myself"),
    "my": ("my",),
    "you": ("you",),
    "your": ("your",),
    "big": ("big", "huge", "large", "giant", "wide", "enormous"),
    "small": ("small", "tiny", "little", "short"),
    "num": ("two", "three", "four", "five"),
    "one": ("one",),
    "think": ("think", "remember", "know", "imagine"),
}

#: one synonym per keyword class (where the slot has several words) that the training and validation clips never
#: say: the test clips may, so that a model's gesture for an unseen word of a known class can be scored apart
HELD_OUT_KEYWORDS: tuple[str, ...] = ("myself", "enormous", "little", "five", "imagine")

#: (template, weight). Slots in braces; keyword slots start upper-case or are listed in KEYWORD_SLOTS.
TEMPLATES: tuple[tuple[str, float], ...] = (
    # plain sentences (beat gestures only)
    ("{subj} {verbed} the {adj} {noun} {time}.", 1.0),
    ("the {noun} was {adj} and very {adj}.", 1.0),
    ("{subj} will {verb} the {noun} {place}.", 1.0),
    ("there is a {adj} {noun} {place}.", 1.0),
    ("{subj} {verbed} some {nouns} {place} {time}.", 1.0),
    ("it was a {adj} day, so {subj} {verbed} the {noun}.", 1.0),
    ("{subj} felt {feel} when the {noun} was {verbed}.", 1.0),
    ("after the {noun}, {subj} {verbed} the {adj} {nouns}.", 1.0),
    ("{subjp} like to {verb} {nouns} {place}.", 1.0),
    ("the {adj} {noun} {place} was {verbed} {time}.", 1.0),
    # self
    ("{I} {verbed} the {adj} {noun} {time}.", 0.8),
    ("{subj} gave {me} a {adj} {noun} {time}.", 0.6),
    ("{my} {noun} is {place}, and it is very {adj}.", 0.6),
    ("{subj} {verbed} {my} {noun} {time}.", 0.5),
    # listener
    ("{you} should {verb} the {adj} {noun} {place}.", 0.7),
    ("{your} {noun} looks {adj} {time}.", 0.6),
    ("{subj} will show {you} the {noun} {place}.", 0.5),
    # count
    ("{subj} {verbed} {num} {adj} {nouns} {place}.", 0.7),
    ("there were {num} {nouns} {place} {time}.", 0.6),
    ("{subj} {verbed} {one} {adj} {noun} {time}.", 0.4),
    # size
    ("{subj} {verbed} a {big} {noun} {place}.", 0.7),
    ("the {noun} {place} is {big}.", 0.5),
    ("{subj} found a {small} {noun} {place}.", 0.6),
    ("the {adj} {noun} was really {small}.", 0.5),
    # think
    ("{subjp} {think} the {noun} was {adj}.", 0.6),
    ("that was a {adj} idea for the {noun}.", 0.5),
    # negation
    ("{subj} never {verbed} the {noun} {place}.", 0.5),
    ("{subj} did not {verb} the {adj} {noun}.", 0.5),
    ("there was no {noun} {place} {time}.", 0.4),
    ("nothing {place} was {adj} {time}.", 0.3),
    # totality
    ("everyone {verbed} the {adj} {noun} {time}.", 0.5),
    ("{subjp} always {verb} the {nouns} {place}.", 0.4),
    ("all the {nouns} were {adj} {time}.", 0.4),
    ("everything {place} was {adj}.", 0.3),
)

_SLOT = re.compile(r"\{(\w+)\}")


def keyword_slots(allowed: set[str] | None = None) -> dict[str, tuple[str, ...]]:
    """`KEYWORD_SLOTS` with each slot's words limited to `allowed` (None: every word but `HELD_OUT_KEYWORDS`); a
    slot none of whose words is allowed keeps its words that are not held out."""
    out = {}
    for slot, words in KEYWORD_SLOTS.items():
        seen = tuple(w for w in words if w not in HELD_OUT_KEYWORDS)
        out[slot] = seen if allowed is None else (tuple(w for w in words if w in allowed) or seen)
    return out


def _fill(template: str, rng: np.random.Generator, slots: dict[str, tuple[str, ...]]) -> str:
    def pick(match: re.Match) -> str:
        key = match.group(1)
        options = slots.get(key) or FILLERS[key]
        return options[int(rng.integers(len(options)))]

    text = _SLOT.sub(pick, template)
    text = re.sub(r"\bi\b", "I", text)
    return text[0].upper() + text[1:]


def make_sentence(rng: np.random.Generator, allowed: set[str] | None = None) -> str:
    """One random sentence (capitalised, with final punctuation). `allowed`: the only keywords it may say (its
    keyword slots draw from them, see `keyword_slots`, and a template whose fixed words say another keyword is drawn
    again); None: every keyword."""
    weights = np.array([w for _, w in TEMPLATES])
    slots = KEYWORD_SLOTS if allowed is None else keyword_slots(allowed)
    for _ in range(100):
        k = int(rng.choice(len(TEMPLATES), p=weights / weights.sum()))
        text = _fill(TEMPLATES[k][0], rng, slots)
        if allowed is None or set(keywords_in(text)) <= allowed:
            return text
    raise RuntimeError(f"no sentence with keywords only from {sorted(allowed)} in 100 draws")


def keywords_in(sentence: str) -> list[str]:
    """The keyword words of a sentence, lower-case, in order."""
    return [w for w in re.findall(r"[a-z']+", sentence.lower()) if w in WORD_TO_CLASS]
