"""The feature cache: one safetensors file per clip plus a JSON manifest, built incrementally.

Layout of a cache folder:

    manifest.json               what was built from what: extractor configuration and fingerprints,
                                feature widths, vocabulary, and per clip its file, split, speaker, frame
                                count, source-file hashes and per-extractor fingerprints
    vocab.json                  the word table (index -> word)
    word_embeddings.npy         the vocabulary's fastText matrix, when it has one
    clips/<clip id>.safetensors every feature of one clip (see `semtalk.features`) and `__meta__`, the
                                clip's manifest entry as JSON bytes

`build_cache` is idempotent and resumable: a clip is rewritten only when one of its features' fingerprints
(extractor configuration and version + hashes of the sources that feature reads + frame count) changed,
and then only the changed features are recomputed. Files are written atomically (temporary file, then
rename), so an interrupted run leaves whole files only; each file carries its own manifest entry, so a
rerun recovers the work of a run that died before saving the manifest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semtalk.atomic import write_bytes_atomic
from semtalk.data.beat2 import load_split, speaker_of
from semtalk.data.errors import DataError
from semtalk.data.root import Beat2Root

log = logging.getLogger(__name__)

CACHE_VERSION = 1
MANIFEST = "manifest.json"
META_KEY = "__meta__"
SOURCE_PATHS = {"motion": "motion_path", "audio": "audio_path", "textgrid": "textgrid_path", "sem": "sem_path"}


# --------------------------------------------------------------------------------------------- file helpers
def clip_file_bytes(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> bytes:
    """A clip file: the arrays plus `__meta__` (JSON bytes); deterministic for equal inputs."""
    from safetensors.numpy import save

    payload = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    payload[META_KEY] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    return save(payload)


def read_clip_file(path: str | Path, keys: Sequence[str] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """`(arrays, meta)` of a clip file (`keys`: only these arrays)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        stored = list(f.keys())
        arrays = {k: f.get_tensor(k) for k in stored if k != META_KEY and (keys is None or k in keys)}
        meta = json.loads(f.get_tensor(META_KEY).tobytes().decode("utf-8")) if META_KEY in stored else {}
    return arrays, meta


def read_clip_meta(path: str | Path) -> dict | None:
    """The embedded manifest entry of a clip file, or None when the file is missing or unreadable."""
    try:
        return read_clip_file(path, keys=())[1] or None
    except Exception:  # a damaged file is rebuilt
        return None


def stamp(path: Path, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`{size, mtime_ns, sha256}` of a file; the hash is reused when size and mtime match `previous`."""
    from semtalk.features.registry import file_sha256

    st = path.stat()
    if previous and previous.get("size") == st.st_size and previous.get("mtime_ns") == st.st_mtime_ns:
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": previous["sha256"]}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(path)}


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache folder (POSIX), so two builds never interleave."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with (folder / ".lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(folder, "another process is building this cache", "wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of a cache folder, or None when there is none (or it is from another cache version)."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        log.warning("%s is unreadable (%s): rebuilding the index from the clip files", path, exc)
        return None
    return data if data.get("version") == CACHE_VERSION else None


def _manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8")


# --------------------------------------------------------------------------------------------- the build
@dataclass
class CacheReport:
    """What a `build_cache` run did."""

    out_dir: Path
    clips: int = 0
    written: list[str] = field(default_factory=list)
    skipped: int = 0
    extractor_runs: dict[str, int] = field(default_factory=dict)
    extractor_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # extractor seconds include building the encoders

    def __str__(self) -> str:
        secs = self.extractor_seconds
        runs = ", ".join(f"{k} {v} ({secs.get(k, 0.0):.1f} s)" for k, v in self.extractor_runs.items()) or "none"
        return (f"cache {self.out_dir}: {self.clips} clips, {len(self.written)} written, {self.skipped} up to date "
                f"(extractor runs: {runs}) in {self.seconds:.1f} s")  # fmt: skip


def feature_fingerprint(plan_fp: str, sources: Sequence[str], shas: Mapping[str, str | None], frames: int) -> str:
    """What one feature of one clip depends on: its extractor, the hashes of the sources it reads, its length."""
    from semtalk.features.base import digest

    return digest({"extractor": plan_fp, "sources": {s: shas.get(s) for s in sources}, "frames": frames})


def _resolve_vocab(root: Beat2Root, option: str, out_dir: Path, previous: Mapping[str, Any] | None):
    """The vocabulary for `words`, reusing the cached `vocab.json` when its sources did not change."""
    from semtalk.features.base import digest
    from semtalk.features.registry import resolve_vocab, vocab_sources
    from semtalk.features.vocab import Vocab

    old_stamps = (previous or {}).get("sources", {})
    stamps = {}
    for p in vocab_sources(root, option):
        key = str(p.relative_to(root.root)) if p.is_relative_to(root.root) else str(p)
        stamps[key] = stamp(p, old_stamps.get(key))
    sources_digest = digest({"option": option, "files": {k: v["sha256"] for k, v in stamps.items()}})
    words_json, emb_npy = out_dir / "vocab.json", out_dir / "word_embeddings.npy"
    if previous and previous.get("sources_digest") == sources_digest and words_json.is_file():
        vocab = Vocab.load_json(words_json, emb_npy if previous.get("embeddings") else None)
        if vocab.digest == previous.get("digest"):
            return vocab, {**previous, "sources": stamps}
    vocab = resolve_vocab(root, option)
    write_bytes_atomic(words_json, vocab.to_json())
    if vocab.embeddings is not None:
        import io

        buf = io.BytesIO()
        np.save(buf, vocab.embeddings)
        write_bytes_atomic(emb_npy, buf.getvalue())
    record = {"option": option, "source": vocab.source, "sources_digest": sources_digest, "sources": stamps,
              "digest": vocab.digest, "size": len(vocab), "embeddings": vocab.embeddings is not None,
              "embedding_dim": int(vocab.embeddings.shape[1]) if vocab.embeddings is not None else 0}  # fmt: skip
    return vocab, record


def build_cache(
    root: str | Path,
    out_dir: str | Path,
    extractors: str | Path | Mapping[str, Any],
    splits: Sequence[str] = ("train", "val", "test"),
    speakers: Sequence[int] | None = None,
    *,
    clip_ids: Sequence[str] | None = None,
    device: str = "auto",
    progress: bool = True,
    manifest_every: float = 10.0,
) -> CacheReport:
    """Extract every configured feature of every selected clip into `out_dir` (see the module docstring).

    Args:
        root: BEAT2-format dataset folder.
        out_dir: cache folder (created).
        extractors: extractor configuration: YAML path or mapping (`semtalk.features.registry`).
        splits: split types of `train_test_split.csv` to cache.
        speakers: BEAT2 speaker ids to cache (None: all).
        clip_ids: cache exactly these clips instead of `splits`/`speakers`.
        device: where the encoders run (`"auto"`: the GPU when there is one).
        progress: show a progress bar (clips, time left).
        manifest_every: save the manifest at most this often (seconds) while building, and at the end.

    Returns:
        a `CacheReport`; a second run on unchanged inputs writes nothing.
    """
    from tqdm.auto import tqdm

    from semtalk.data.weights import SMPLX_FILE
    from semtalk.features.base import ClipInput, common_frames, digest
    from semtalk.features.registry import load_extractor_config, plan_extractors

    t0 = time.perf_counter()
    beat2 = Beat2Root(root)
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    config = load_extractor_config(extractors)
    table = load_split(beat2.split_path)
    ids = sorted(clip_ids) if clip_ids is not None else beat2.clip_ids(splits, speakers)
    report = CacheReport(out_dir=out, clips=len(ids))

    with _locked(out):
        for stale in [*out.glob(".*.tmp"), *(out / "clips").glob(".*.tmp")]:  # left by a killed run
            stale.unlink(missing_ok=True)
        previous = read_manifest(out) or {}
        prev_clips: dict[str, Any] = previous.get("clips", {})
        assets = dict(previous.get("assets", {}))

        vocab, vocab_record = None, previous.get("vocab")
        if "words" in config:
            option = str(config["words"].get("vocab", "auto"))
            vocab, vocab_record = _resolve_vocab(beat2, option, out, previous.get("vocab"))
        body_digest = None
        if "motion" in config:
            body_root = Path(config["motion"].get("body_model_root") or beat2.weights_dir / "smplx_models")
            model_file = body_root / SMPLX_FILE
            if model_file.is_file():
                assets["body_model"] = stamp(model_file, assets.get("body_model"))
                body_digest = assets["body_model"]["sha256"]
        plans = plan_extractors(config, beat2, vocab=vocab, body_model_digest=body_digest)

        prev_extractors = previous.get("extractors", {})
        extractors_record = {}
        for name, plan in plans.items():
            old = prev_extractors.get(name, {})
            dims = old["dims"] if old.get("fingerprint") == plan.fingerprint and "dims" in old else plan.dims()
            extractors_record[name] = {"fingerprint": plan.fingerprint, "config": config[name], "dims": dims}

        manifest: dict[str, Any] = {
            "version": CACHE_VERSION,
            "root": str(beat2.root.resolve()),
            "config": config,
            "config_digest": digest(config),
            "extractors": extractors_record,
            "vocab": vocab_record if "words" in config else None,
            "assets": assets,
            "clips": dict(prev_clips),
        }
        built: dict[str, Any] = {}  # extractor instances, made when first needed
        last_save = time.perf_counter()

        def save_manifest() -> None:
            data = _manifest_bytes(manifest)
            path = out / MANIFEST
            if not path.is_file() or path.read_bytes() != data:
                write_bytes_atomic(path, data)

        bar = tqdm(ids, desc="caching features", unit="clip", disable=not progress, dynamic_ncols=True)
        try:
            for cid in bar:
                bar.set_postfix_str(cid, refresh=False)
                rel = f"clips/{cid}.safetensors"
                path = out / rel
                old = prev_clips.get(cid, {})
                sources: dict[str, Any] = {}
                for src, attr in SOURCE_PATHS.items():
                    p = getattr(beat2, attr)(cid)
                    sources[src] = stamp(p, old.get("sources", {}).get(src)) if p.is_file() else None
                shas = {k: (v["sha256"] if v else None) for k, v in sources.items()}
                prev = read_clip_meta(path) if path.is_file() else None  # the file is the truth
                entry_base = {"file": rel, "split": table.get(cid), "speaker": speaker_of(cid)}

                frames = prev["frames"] if prev and prev.get("source_sha256") == shas else None
                wanted = (
                    {n: feature_fingerprint(p.fingerprint, p.sources, shas, frames) for n, p in plans.items()}
                    if frames is not None else None
                )  # fmt: skip
                if wanted is not None and prev.get("features") == wanted:
                    report.skipped += 1
                    manifest["clips"][cid] = {**entry_base, **prev, "sources": sources}
                    continue

                clip = beat2.load_clip(cid)  # the one read of this clip's audio
                frames = common_frames(clip)
                wanted = {n: feature_fingerprint(p.fingerprint, p.sources, shas, frames) for n, p in plans.items()}
                have = (prev or {}).get("features", {}) if prev and prev.get("frames") == frames else {}
                old_keys = (prev or {}).get("keys", {})
                keep = [n for n in plans if have.get(n) == wanted[n] and old_keys.get(n)]
                arrays: dict[str, np.ndarray] = {}
                if keep:
                    arrays = read_clip_file(path, keys=sorted(k for n in keep for k in old_keys[n]))[0]
                    keep = [n for n in keep if all(k in arrays for k in old_keys[n])]
                todo = [n for n in plans if n not in keep]
                keys = {n: old_keys[n] for n in keep}
                item = ClipInput(clip=clip, num_frames=frames)
                for name in todo:
                    started = time.perf_counter()
                    if name not in built:
                        built[name] = plans[name].build(device)
                    try:
                        outputs = built[name](item)
                    except DataError:
                        raise
                    except ValueError as exc:  # the clip's content does not suit the extractor (e.g. too short)
                        source = plans[name].sources[0] if plans[name].sources else "audio"
                        raise DataError(
                            getattr(beat2, SOURCE_PATHS[source])(cid),
                            f"the {name} extractor cannot use clip {cid} ({exc})",
                            "repair the clip, or drop it (remove its row from train_test_split.csv)",
                        ) from exc
                    arrays.update(outputs)
                    keys[name] = sorted(outputs)
                    report.extractor_runs[name] = report.extractor_runs.get(name, 0) + 1
                    spent = report.extractor_seconds.get(name, 0.0) + time.perf_counter() - started
                    report.extractor_seconds[name] = spent
                meta = {"clip_id": cid, "frames": frames, "source_sha256": shas, "features": wanted,
                        "keys": {n: keys[n] for n in plans}}  # fmt: skip
                write_bytes_atomic(path, clip_file_bytes(arrays, meta))
                report.written.append(cid)
                manifest["clips"][cid] = {**entry_base, **meta, "sources": sources}
                if time.perf_counter() - last_save > manifest_every:
                    save_manifest()
                    last_save = time.perf_counter()
        finally:
            bar.close()
            save_manifest()
    report.seconds = time.perf_counter() - t0
    log.info("%s", report)
    return report
