"""Beat2DataModule: window bookkeeping, spec, batch shapes, and that setup only reads the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import textgrid
import torch

from semtalk.data.cache import build_cache, read_clip_file, read_manifest
from semtalk.data.datamodule import Beat2DataModule
from semtalk.data.errors import DataError
from semtalk.data.root import Beat2Root
from semtalk.data.windows import (
    SequenceDataset,
    generated_length,
    generation_starts,
    sequence_length,
    train_starts,
    usable_frames,
)
from semtalk.features.registry import load_extractor_config

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SAMPLE = SHARED / "data" / "beat2-sample"


def tiny_config(body_root: Path) -> dict:
    cfg = load_extractor_config(REPO / "configs" / "data" / "tiny.yaml")
    cfg["motion"]["body_model_root"] = str(body_root)
    return cfg


def check_window_batch(batch: dict, b: int, spec: dict) -> None:
    """Shapes of a training batch, as the stages expect them."""
    w, k = spec["window"], spec["tokens_per_window"]
    assert batch["hubert"].shape == (b, w, spec["hubert_dim"]) and batch["hubert"].dtype == torch.float32
    assert batch["beat"].shape == (b, w, 3)
    assert batch["words"].shape == (b, w) and batch["words"].dtype == torch.int64
    assert batch["sem"].shape == (b, w) and batch["sem_token"].shape == (b, k)
    assert batch["emotion"].shape == (b, w, spec["emotion_dim"])
    assert batch["clip_text"].shape == (b, spec["clip_dim"])
    for part, dim in {"face": 106, "upper": 78, "hands": 180, "lower": 61}.items():
        assert batch[part].shape == (b, w, dim)
    assert batch["latent_all"].shape == (b, w, 337)
    assert batch["poses"].shape == (b, w, 165) and batch["betas"].shape == (b, 300)
    assert batch["speaker"].shape == (b,) and batch["speaker"].dtype == torch.int64
    assert int(batch["words"].max()) < spec["vocab_size"]


def test_length_bookkeeping_matches_the_reference():
    # 2_scott_0_1_1: 1906 motion frames, 64.10 s of audio -> 63 s -> 1890 -> 1888 -> 31 windows -> 1864 frames
    assert usable_frames(1906) == 1890 and sequence_length(1906) == 1888
    assert generated_length(1888) == 1864 and len(generation_starts(1888)) == 31
    assert generation_starts(1888)[:3] == [0, 60, 120]
    starts = train_starts(1906, 64, 20)
    assert starts[0] == 0 and starts[-1] + 64 <= 1890 and starts[-1] + 20 + 64 > 1890
    assert train_starts(63) == [] and generated_length(40) == 4


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, smplx_root):
    from semtalk.synth.dataset import make_dataset

    root = tmp_path_factory.mktemp("beat2")
    make_dataset(root, num_speakers=2, clips_per_speaker=3, clip_seconds=4.0, seed=1, progress=False)
    return root, tiny_config(smplx_root)


@pytest.fixture(scope="module")
def datamodule(embedded, tmp_path_factory):
    root, cfg = embedded
    dm = Beat2DataModule(str(root), str(tmp_path_factory.mktemp("cache")), cfg, batch_size=3, progress=False)
    spec_before = dm.spec  # computed from the configuration alone: no cache yet
    with pytest.raises(DataError, match="no feature cache"):
        dm.setup("fit")
    dm.prepare_data()
    assert dm.spec == spec_before  # the cache's recorded widths agree
    return dm


def test_spec_is_plain_data_with_every_width(datamodule):
    spec = datamodule.spec
    assert json.loads(json.dumps(spec)) == spec  # storable in checkpoints
    assert spec["part_dims"] == {"face": 106, "upper": 78, "hands": 180, "lower": 61}
    assert spec["latent_all_dim"] == 337 and spec["beat_dim"] == 3
    assert (spec["hubert_dim"], spec["clip_dim"], spec["emotion_dim"]) == (64, 32, 32)
    assert spec["vocab_size"] == read_manifest(datamodule.cache_dir)["vocab"]["size"] > 4
    assert (spec["window"], spec["stride"], spec["seed_frames"], spec["fps"]) == (64, 20, 4, 30)
    assert spec["num_speakers"] == 25


def test_setup_reads_only_and_batches_have_reference_shapes(datamodule):
    cache = datamodule.cache_dir
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    datamodule.setup("fit")
    datamodule.setup("test")
    train = datamodule.datasets["train"]
    manifest = read_manifest(cache)
    root = Beat2Root(datamodule.root)
    ids = root.clip_ids(("train",))
    assert len(train) == sum(len(train_starts(manifest["clips"][c]["frames"])) for c in ids) > 3
    batch = next(iter(datamodule.train_dataloader()))
    check_window_batch(batch, 3, datamodule.spec)

    # a window is exactly the cached rows, and the part features are the cached motion
    item = train[len(train) - 1]
    arrays, _ = read_clip_file(cache / f"clips/{item['clip_id']}.safetensors")
    s = item["start"]
    np.testing.assert_array_equal(item["hubert"].numpy(), arrays["hubert"][s : s + 64])
    np.testing.assert_array_equal(item["words"].numpy(), arrays["words"][s : s + 64])
    torch.testing.assert_close(item["latent_all"][:, 330:333], torch.from_numpy(arrays["trans"][s : s + 64]))
    torch.testing.assert_close(item["lower"][:, 57:61], torch.from_numpy(arrays["contact"][s : s + 64]))
    torch.testing.assert_close(item["sem_token"], item["sem"].reshape(16, 4).mean(-1))
    k = train_starts(manifest["clips"][item["clip_id"]]["frames"]).index(s)
    np.testing.assert_array_equal(item["clip_text"].numpy(), arrays["clip_text"][k])

    for split in ("val", "test"):
        for seq in datamodule.datasets[split]:
            n = seq["length"]
            assert n % 8 == 0 and seq["hubert"].shape == (n, 64) and seq["latent_all"].shape == (n, 337)
            assert seq["generated_length"] == generated_length(n)
            assert seq["clip_text"].shape == (len(generation_starts(n)), 32)
    after = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}
    assert after == before  # setup and loading never write


def test_speaker_filter_and_workers(datamodule):
    root = Beat2Root(datamodule.root)
    speaker = int(root.clip_ids(("train",))[0].split("_")[0])
    dm = Beat2DataModule(str(datamodule.root), str(datamodule.cache_dir), datamodule._extractors,
                         speakers=[speaker], batch_size=2, num_workers=2, progress=False)  # fmt: skip
    dm.setup("fit")
    ds = dm.datasets["train"]
    assert len(ds) > 0 and {ds.clip_ids[c].split("_")[0] for c, _, _ in ds.index} == {str(speaker)}
    batches = list(dm.train_dataloader())
    assert batches and all(b["hubert"].shape[1:] == (64, 64) for b in batches)


def test_setup_rejects_a_cache_built_with_other_settings(datamodule):
    other = dict(datamodule._extractors)
    other["beat"] = {"amplitude": "reference"}
    dm = Beat2DataModule(str(datamodule.root), str(datamodule.cache_dir), other, progress=False)
    with pytest.raises(DataError, match=r"other extractor settings \(\['beat'\]\)"):
        dm.setup("fit")
    strided = Beat2DataModule(str(datamodule.root), str(datamodule.cache_dir), datamodule._extractors, stride=32)
    with pytest.raises(DataError, match="clip_text"):
        strided.setup("fit")  # sentence windows follow the stride


def test_real_sample_clip_caches_and_batches(tmp_path, smplx_root):
    if not (SAMPLE / "2_scott_0_1_1.npz").is_file():
        pytest.skip(f"the real BEAT2 sample clip is not at {SAMPLE}")
    root = tmp_path / "beat2"
    for sub, ext in (("smplxflame_30", "npz"), ("wave16k", "wav")):
        (root / sub).mkdir(parents=True)
        os.symlink(SAMPLE / f"2_scott_0_1_1.{ext}", root / sub / f"2_scott_0_1_1.{ext}")
    (root / "textgrid").mkdir()
    words = [(0.0, 1.5, "hello"), (1.5, 64.1, "")]  # the sample has no TextGrid: a two-word stand-in
    tg = textgrid.TextGrid(minTime=0.0, maxTime=64.1)
    tier = textgrid.IntervalTier("words", 0.0, 64.1)
    for a, b, w in words:
        tier.add(a, b, w)
    tg.append(tier)
    tg.write(str(root / "textgrid" / "2_scott_0_1_1.TextGrid"))
    (root / "train_test_split.csv").write_text("id,type\n2_scott_0_1_1,train\n")
    cfg = tiny_config(smplx_root)
    dm = Beat2DataModule(str(root), str(tmp_path / "cache"), cfg, speakers=[2], batch_size=8, progress=False)
    dm.prepare_data()
    dm.setup("fit")
    entry = read_manifest(dm.cache_dir)["clips"]["2_scott_0_1_1"]
    assert entry["frames"] == 1906 and entry["speaker"] == 2
    assert len(dm.datasets["train"]) == len(train_starts(1906)) == 92  # (1890 - 64) // 20 + 1
    batch = next(iter(dm.train_dataloader()))
    check_window_batch(batch, 8, dm.spec)
    assert (batch["speaker"] == 1).all()  # speaker 2 is embedding index 1
    assert float(batch["sem"].abs().sum()) == 0.0  # no sem file: scores are 0
    seq = SequenceDataset([dm.cache_dir / entry["file"]], [1906])[0]
    assert seq["length"] == 1888 and seq["generated_length"] == 1864 and seq["clip_text"].shape == (31, 32)
    again = build_cache(root, dm.cache_dir, dm.extractor_config, speakers=[2], progress=False)
    assert again.written == []
