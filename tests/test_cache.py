"""The feature cache: complete first build, no-op rebuild, partial rebuilds, atomic writes and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from semtalk.data.cache import MANIFEST, build_cache, read_clip_file, read_manifest
from semtalk.data.errors import DataError
from semtalk.data.root import Beat2Root
from semtalk.features.registry import file_sha256, load_extractor_config

REPO = Path(__file__).resolve().parents[1]
TINY = load_extractor_config(REPO / "configs" / "data" / "tiny.yaml")
#: the cheaper half of the tiny configuration (no CLIP, no emotion2vec): enough for the cache machinery
LIGHT_NAMES = ("motion", "hubert", "beat", "words", "semantic")


def light_config(body_root: Path) -> dict:
    cfg = {k: dict(TINY[k]) for k in LIGHT_NAMES}
    cfg["motion"]["body_model_root"] = str(body_root)
    cfg["hubert"]["chunk_seconds"] = 2.0
    return cfg


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """`{relative path: (mtime_ns, sha256)}` of every file under `folder`."""
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, file_sha256(p))
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from semtalk.synth.dataset import make_dataset

    root = tmp_path_factory.mktemp("beat2")
    make_dataset(root, num_speakers=2, clips_per_speaker=3, clip_seconds=4.0, seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def built(dataset, smplx_root, tmp_path_factory):
    """A first build of the light configuration: (dataset root, cache folder, config, report)."""
    out = tmp_path_factory.mktemp("cache")
    cfg = light_config(smplx_root)
    report = build_cache(dataset, out, cfg, progress=False)
    return dataset, out, cfg, report


def test_first_build_writes_every_clip_with_its_sources_and_config(built):
    root, out, cfg, report = built
    ids = Beat2Root(root).clip_ids(("train", "val", "test"))
    assert sorted(report.written) == ids and report.skipped == 0
    assert report.extractor_runs == {name: len(ids) for name in LIGHT_NAMES}
    manifest = read_manifest(out)
    assert manifest["config"] == load_extractor_config(cfg)
    assert set(manifest["extractors"]) == set(LIGHT_NAMES)
    words = json.loads((out / "vocab.json").read_text())["words"]
    assert manifest["vocab"]["size"] == len(words) and words[:4] == ["<PAD>", "<SOS>", "<EOS>", "<UNK>"]
    beat2 = Beat2Root(root)
    for cid in ids:
        entry = manifest["clips"][cid]
        assert entry["sources"]["audio"]["sha256"] == file_sha256(beat2.audio_path(cid))
        assert entry["sources"]["motion"]["sha256"] == file_sha256(beat2.motion_path(cid))
        arrays, meta = read_clip_file(out / entry["file"])
        n = entry["frames"]
        clip = beat2.load_clip(cid)
        assert n == min(clip.motion.num_frames, len(clip.audio) * 30 // 16000)
        assert meta["features"] == entry["features"]
        assert arrays["hubert"].shape == (n, 64) and arrays["beat"].shape == (n, 3)
        assert arrays["words"].shape == (n,) and arrays["words"].dtype == np.int64
        assert arrays["sem"].shape == (n,) and arrays["contact"].shape == (n, 4)
        assert set(np.unique(arrays["contact"])) <= {0.0, 1.0}
        np.testing.assert_array_equal(arrays["poses"], clip.motion.poses[:n])


def test_second_run_is_a_no_op(built):
    root, out, cfg, _ = built
    before = snapshot(out)
    report = build_cache(root, out, cfg, progress=False)
    assert report.written == [] and report.extractor_runs == {} and report.skipped == report.clips
    assert snapshot(out) == before  # not a single byte (or mtime) changed


def test_changed_config_rebuilds_only_that_feature(built, tmp_path):
    root, out, cfg, _ = built
    work = tmp_path / "cache"
    os.system(f"cp -a {out} {work}")
    before = {p.name: read_clip_file(p)[0] for p in (work / "clips").glob("*.safetensors")}
    changed = {**cfg, "beat": {"amplitude": "reference"}}
    report = build_cache(root, work, changed, progress=False)
    assert report.extractor_runs == {"beat": report.clips}
    for p in (work / "clips").glob("*.safetensors"):
        after = read_clip_file(p)[0]
        for key in ("hubert", "words", "sem", "contact", "poses"):
            np.testing.assert_array_equal(after[key], before[p.name][key])
        assert not np.array_equal(after["beat"][:, 0], before[p.name]["beat"][:, 0])
    assert read_manifest(work)["config"]["beat"] == {"amplitude": "reference"}


def test_changed_source_rebuilds_only_that_clip_and_feature(built, tmp_path):
    root, out, cfg, _ = built
    data, work = tmp_path / "data", tmp_path / "cache"
    os.system(f"cp -a {root} {data} && cp -a {out} {work}")
    beat2 = Beat2Root(data)
    cid = beat2.clip_ids(("train",))[0]
    os.utime(beat2.audio_path(cid))  # touched, same content: hashes decide, nothing rebuilds
    assert build_cache(data, work, cfg, progress=False).written == []
    sem = beat2.sem_path(cid)
    sem.write_text("05_iconic_h\t0.0\t1.0\t1.0\t0.7\tthing\n")
    report = build_cache(data, work, cfg, progress=False)
    assert report.written == [cid] and report.extractor_runs == {"semantic": 1}
    arrays, _ = read_clip_file(work / "clips" / f"{cid}.safetensors")
    assert arrays["sem"][0] == pytest.approx(0.7) and arrays["sem"][31] == 0.0


def test_damaged_clip_file_is_rebuilt(built, tmp_path):
    root, out, cfg, _ = built
    work = tmp_path / "cache"
    os.system(f"cp -a {out} {work}")
    victim = sorted((work / "clips").glob("*.safetensors"))[0]
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])
    report = build_cache(root, work, cfg, progress=False)
    assert report.written == [victim.stem] and victim.read_bytes() == good


def test_interrupted_build_resumes_to_identical_files(built, tmp_path):
    """A build killed (SIGKILL) half-way through writing its third clip file resumes without redoing the
    finished clips and ends with files identical to an uninterrupted build."""
    root, _, light, _ = built
    cfg = {k: light[k] for k in ("motion", "beat", "words", "semantic")}  # keeps the subprocess quick
    clean, work = tmp_path / "clean", tmp_path / "work"
    build_cache(root, clean, cfg, progress=False)
    script = textwrap.dedent(f"""
        import json, os, signal
        import semtalk.data.cache as cache
        real, count = cache.write_bytes_atomic, [0]
        def dying(path, data):
            if path.suffix == ".safetensors":
                count[0] += 1
                if count[0] == 3:  # die in the middle of writing the third clip
                    with open(path.parent / ("." + path.name + ".x.tmp"), "wb") as f:
                        f.write(data[: len(data) // 2])
                    os.kill(os.getpid(), signal.SIGKILL)
            real(path, data)
        cache.write_bytes_atomic = dying
        cache.build_cache({str(root)!r}, {str(work)!r}, json.loads({json.dumps(json.dumps(cfg))}),
                          progress=False, manifest_every=1e9)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert len(list((work / "clips").glob("*.safetensors"))) == 2
    assert list((work / "clips").glob(".*.tmp")) and not (work / MANIFEST).exists()

    report = build_cache(root, work, cfg, progress=False)
    assert report.skipped == 2 and len(report.written) == report.clips - 2
    assert report.extractor_runs == {name: report.clips - 2 for name in cfg}
    assert not list((work / "clips").glob(".*.tmp"))
    for p in sorted((clean / "clips").glob("*.safetensors")):
        assert (work / "clips" / p.name).read_bytes() == p.read_bytes(), p.name
    assert (work / MANIFEST).read_bytes() == (clean / MANIFEST).read_bytes()


def test_bad_inputs_name_the_problem(built, tmp_path):
    root, out, cfg, _ = built
    with pytest.raises(DataError, match="unknown extractors"):
        build_cache(root, tmp_path / "c1", {"huBERT": {}}, progress=False)
    with pytest.raises(DataError, match="SMPL-X body model not found"):
        build_cache(root, tmp_path / "c2", {**cfg, "motion": {"body_model_root": str(tmp_path)}}, progress=False)
    with pytest.raises(DataError, match="dataset folder not found"):
        build_cache(tmp_path / "nowhere", tmp_path / "c3", cfg, progress=False)
