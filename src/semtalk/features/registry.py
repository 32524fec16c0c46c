"""The extractor configuration: which extractors run, with which arguments, and what identifies their outputs.

A configuration maps extractor names to their constructor arguments (YAML: `configs/data/tiny.yaml`,
`configs/data/real.yaml`); a name that is absent or `null` is switched off (`motion` is always on):

    hubert:    {tiny: {hidden_size: 64, ...}}        # or {model: facebook/hubert-large-ls960-ft}
    beat:      {amplitude: per_hop}
    words:     {vocab: auto}                          # auto | textgrids | path/to/vocab.pkl
    semantic:  {threshold: 0.1}
    clip_text: {tiny: {...}}                          # or {model: ViT-B-32, pretrained: openai}
    emotion:   {tiny: {...}}                          # or {model: iic/emotion2vec_plus_large}
    motion:    {body_model_root: null}                # null: <root>/weights/smplx_models
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semtalk.data.errors import DataError
from semtalk.data.root import Beat2Root
from semtalk.features.base import digest
from semtalk.features.beat import BeatFeatures
from semtalk.features.clip_text import ClipTextFeatures
from semtalk.features.emotion import EmotionFeatures
from semtalk.features.hubert import HubertFeatures
from semtalk.features.motion import MotionFeatures
from semtalk.features.semantic import SemanticFeatures
from semtalk.features.vocab import Vocab, load_vocab_pkl, textgrid_marks
from semtalk.features.words import WordFeatures

#: every extractor, in the order the cache runs them
EXTRACTORS: dict[str, type] = {
    "motion": MotionFeatures,
    "hubert": HubertFeatures,
    "beat": BeatFeatures,
    "words": WordFeatures,
    "semantic": SemanticFeatures,
    "clip_text": ClipTextFeatures,
    "emotion": EmotionFeatures,
}


def load_extractor_config(config: str | Path | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Read a YAML file or take a mapping; check names; drop switched-off extractors; `motion` always on."""
    if isinstance(config, (str, Path)):
        import yaml

        path = Path(config)
        if not path.is_file():
            raise DataError(path, "extractor configuration not found", "see configs/data/tiny.yaml and real.yaml")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise DataError(path, f"not valid YAML ({exc})", "fix the file") from exc
        where: str | Path = path
    else:
        data, where = dict(config), "extractor configuration"
    if not isinstance(data, Mapping):
        raise DataError(where, f"expected a mapping of extractor names, got {type(data).__name__}",
                        f"use the names {sorted(EXTRACTORS)}")  # fmt: skip
    unknown = sorted(set(data) - set(EXTRACTORS))
    if unknown:
        raise DataError(where, f"unknown extractors {unknown}", f"valid names: {sorted(EXTRACTORS)}")
    out: dict[str, dict[str, Any]] = {}
    for name in EXTRACTORS:
        section = data.get(name, {} if name == "motion" else None)
        if section is None:
            continue
        if not isinstance(section, Mapping):
            raise DataError(where, f"'{name}' must be a mapping of arguments, not {section!r}",
                            "write e.g. `beat: {amplitude: per_hop}`")  # fmt: skip
        out[name] = {k: v for k, v in section.items()}
    try:  # plain JSON data from here on (tuples -> lists, paths -> str), as the manifest stores it
        return json.loads(json.dumps(out, default=_plain))
    except (TypeError, ValueError) as exc:
        raise DataError(where, f"arguments must be plain data ({exc})", "use numbers, strings, lists, dicts") from exc


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not plain data")


def with_windows(config: Mapping[str, Any], window: int, stride: int, seed_frames: int) -> dict[str, Any]:
    """A copy of `config` whose sentence windows (`clip_text`) follow the given window bookkeeping."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in config.items()}
    if out.get("clip_text") is not None:
        out["clip_text"].update(window=window, stride=stride, seed_frames=seed_frames)
    return out


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_vocab(root: Beat2Root, option: str = "auto") -> Vocab:
    """`auto`: BEAT2's `weights/vocab.pkl` when the root has one, else built from its TextGrids;
    `textgrids`: always built; anything else: a `vocab.pkl` path."""
    if option == "auto":
        pkl = root.weights_dir / "vocab.pkl"
        option = str(pkl) if pkl.is_file() else "textgrids"
    if option == "textgrids":
        paths = sorted((root.root / "textgrid").glob("*.TextGrid"))
        if not paths:
            raise DataError(root.root / "textgrid", "no TextGrids to build a vocabulary from",
                            "add word alignments, or give BEAT2's weights/vocab.pkl as words.vocab")  # fmt: skip
        return Vocab.build(textgrid_marks(paths), source="textgrids")
    return load_vocab_pkl(option)


def vocab_sources(root: Beat2Root, option: str = "auto") -> list[Path]:
    """The files a vocabulary option is made from (for change detection)."""
    if option == "auto":
        pkl = root.weights_dir / "vocab.pkl"
        option = str(pkl) if pkl.is_file() else "textgrids"
    if option == "textgrids":
        return sorted((root.root / "textgrid").glob("*.TextGrid"))
    return [Path(option)]


@dataclass
class ExtractorPlan:
    """One configured extractor: constructor arguments, fingerprint, and how to build it."""

    name: str
    cls: type
    kwargs: dict[str, Any]
    fingerprint: str

    @property
    def sources(self) -> tuple[str, ...]:
        return self.cls.sources

    def dims(self) -> dict[str, int]:
        return self.cls.output_dims(**self.kwargs)

    def build(self, device: str = "auto"):
        kwargs = dict(self.kwargs)
        if "device" in self.cls.runtime_keys:
            kwargs["device"] = device
        return self.cls(**kwargs)


def plan_extractors(
    config: Mapping[str, Mapping[str, Any]],
    root: Beat2Root,
    vocab: Vocab | None = None,
    body_model_digest: str | None = None,
) -> dict[str, ExtractorPlan]:
    """Resolve a loaded configuration against a dataset root (vocabulary, body-model folder) and fingerprint
    each extractor from its outputs-relevant arguments, its code version and what it was resolved against."""
    plans: dict[str, ExtractorPlan] = {}
    for name, section in config.items():
        cls = EXTRACTORS[name]
        kwargs = dict(section)
        valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]  # words: vocab is a path
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise DataError("extractor configuration", f"'{name}' has no arguments {unknown}", f"valid: {valid}")
        context: dict[str, Any] = {}
        if name == "words":
            option = str(kwargs.pop("vocab", "auto"))
            kwargs = {"vocab": vocab if vocab is not None else resolve_vocab(root, option), **kwargs}
            context["vocab"] = kwargs["vocab"].digest
        if name == "motion":
            from semtalk.data.weights import SMPLX_FILE, smplx_root_of

            body_root = kwargs.get("body_model_root") or smplx_root_of(root.root)
            kwargs["body_model_root"] = str(body_root)
            model_file = Path(body_root) / SMPLX_FILE
            context["body_model"] = body_model_digest or (file_sha256(model_file) if model_file.is_file() else None)
            kwargs.pop("device", None)
        relevant = {k: v for k, v in kwargs.items() if k not in cls.runtime_keys and k != "vocab"}
        if name == "motion":
            relevant.pop("body_model_root", None)  # the file's content counts, not where it lies
        fp = digest({"name": name, "version": cls.version, "args": relevant, "context": context})
        plans[name] = ExtractorPlan(name, cls, kwargs, fp)
    return plans


def feature_dims(plans: Mapping[str, ExtractorPlan]) -> dict[str, int]:
    """Every feature width the configured extractors produce (0 for switched-off features)."""
    dims = {"hubert": 0, "beat": 0, "vocab_size": 0, "sem": 0, "clip_text": 0, "emotion": 0}
    for plan in plans.values():
        dims.update(plan.dims())
    return dims
