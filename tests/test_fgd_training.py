"""The FGD encoder trained on a dataset of one's own: the file format, the identity naming the training data,
known-answer FGD values, and `semtalk train-fgd` (one tiny generated dataset: 1 speaker x 5 clips x 6 s)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.cli import main
from semtalk.data.beat2 import load_motion
from semtalk.data.root import Beat2Root
from semtalk.export import save_smplx_npz
from semtalk.metrics.evaluate import evaluate_folder
from semtalk.metrics.fgd_encoder import FGDAutoencoder, load_fgd_encoder
from semtalk.metrics.fgd_training import (
    epoch_windows,
    load_fgd_encoder_file,
    read_fgd_metadata,
    rot6d_statistics,
    train_fgd_encoder,
    training_data_digest,
)
from semtalk.metrics.motion_inputs import fgd_rot6d
from semtalk.schedules import warmup_cosine_factor


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    from semtalk.synth.dataset import make_dataset

    root = tmp_path_factory.mktemp("fgd") / "tinyset"
    make_dataset(root, num_speakers=1, clips_per_speaker=5, clip_seconds=6.0, seed=2, progress=False)
    return root


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("weights") / "fgd.pt"
    return train_fgd_encoder(tiny_root, out, epochs=12, batch_size=2, lr=1e-3, seed=0, progress=False)


def test_file_loads_strictly_with_weights_only_and_names_its_data(trained, tiny_root):
    assert sorted(p.name for p in trained.parent.iterdir()) == ["fgd.pt"]  # written atomically, no leftovers
    plain = load_fgd_encoder(trained)  # BEAT2's loader, weights_only=True, strict
    assert isinstance(plain, FGDAutoencoder) and len(plain.state_dict()) == 56
    assert plain.identity.startswith("fgd.pt sha256:")
    named = load_fgd_encoder_file(trained)
    root = Beat2Root(tiny_root)
    digest = training_data_digest(root, root.clip_ids(("train",)))
    assert named.identity.startswith(f"trained:tinyset:{digest} (fgd.pt weights sha256:")
    for (k, a), b in zip(plain.state_dict().items(), named.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    meta = read_fgd_metadata(trained)["training"]
    assert meta["clips"] == len(root.clip_ids(("train",))) == 3 and meta["split"] == "train"
    frames = sum(int(np.load(root.motion_path(c))["poses"].shape[0]) for c in root.clip_ids(("train",)))
    assert meta["frames"] == frames and len(meta["losses"]) == 12 and all(np.isfinite(meta["losses"]))
    # it learned: the training clips' standardised rot6d is reconstructed far better than by the mean pose
    poses = [torch.from_numpy(load_motion(root.motion_path(c)).poses) for c in root.clip_ids(("train",))]
    mean, std = rot6d_statistics(poses)
    x = torch.stack([fgd_rot6d(p[:128]) for p in poses])
    with torch.no_grad():
        error = float(((named.decode(named(x)) - (x - mean) / std) ** 2).mean())
    assert error < 0.75 * float((((x - mean) / std) ** 2).mean())
    # the weights moved away from the seed's initialisation, and only inside the skeleton masks
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        init = FGDAutoencoder()
    conv = "encoder.layers.0.0.residual.0"
    assert not torch.equal(init.state_dict()[f"{conv}.weight"], plain.state_dict()[f"{conv}.weight"])
    mask = plain.state_dict()[f"{conv}.mask"]
    assert float(plain.state_dict()[f"{conv}.weight"][mask == 0].abs().max()) == 0.0


def test_identity_names_the_weights_not_the_file(trained, tmp_path):
    """Another training time in the file (a re-run that trained the same weights) keeps the identity; another
    weight changes it. BEAT2's loader names the file itself."""
    blob = torch.load(trained, map_location="cpu", weights_only=True)
    blob["training"] = {**blob["training"], "seconds": blob["training"]["seconds"] + 1.5}
    rerun = tmp_path / "rerun" / "fgd.pt"
    rerun.parent.mkdir()
    torch.save(blob, rerun)
    assert load_fgd_encoder(rerun).identity != load_fgd_encoder(trained).identity  # the files differ
    assert load_fgd_encoder_file(rerun).identity == load_fgd_encoder_file(trained).identity
    name = "encoder.layers.0.0.residual.0.bias"
    blob["model_state"][name] = blob["model_state"][name].clone()
    blob["model_state"][name][0] += 1e-6
    other = tmp_path / "other" / "fgd.pt"
    other.parent.mkdir()
    torch.save(blob, other)
    assert load_fgd_encoder_file(other).identity != load_fgd_encoder_file(trained).identity


def test_known_answer_fgd(trained, tiny_root, tmp_path):
    """FGD(gt, gt) = 0; noisier motion scores a larger FGD than slightly noisy motion, which scores above 0."""
    root = Beat2Root(tiny_root)
    ids = root.clip_ids(("train", "val", "test"))
    gen = np.random.default_rng(0)
    values = {}
    for name, sigma in (("same", 0.0), ("slight", 0.02), ("noisy", 0.2)):
        folder = tmp_path / name
        for cid in ids:
            with np.load(root.motion_path(cid)) as gt:
                poses = gt["poses"] + sigma * gen.standard_normal(gt["poses"].shape).astype(np.float32)
                save_smplx_npz(folder / f"{cid}.npz", poses, gt["trans"], gt["expressions"], gt["betas"])
        result = evaluate_folder(
            folder,
            tiny_root / "smplxflame_30",
            profile="corrected",
            fgd_encoder=load_fgd_encoder_file(trained),
            output_dir=folder,
        )
        assert result["num_files"] == 5
        values[name] = result["fgd"]
        written = json.loads((folder / "metrics.json").read_text())
        assert written["fgd_encoder"].startswith("trained:tinyset:")
    assert abs(values["same"]) < 1e-6
    assert values["noisy"] > values["slight"] > 1e-6
    assert values["noisy"] > 10 * values["slight"]


def test_training_data_digest_follows_the_train_clips(tiny_root, tmp_path):
    root = Beat2Root(tiny_root)
    train = root.clip_ids(("train",))
    copy = tmp_path / "copy"
    shutil.copytree(tiny_root, copy)
    assert training_data_digest(Beat2Root(copy), train) == training_data_digest(root, train)
    path = Beat2Root(copy).motion_path(train[0])
    with np.load(path) as data:
        arrays = dict(data)
    arrays["poses"] = arrays["poses"] + 0.01
    np.savez(path, **arrays)
    assert training_data_digest(Beat2Root(copy), train) != training_data_digest(root, train)


def test_windows_and_schedule():
    gen = torch.Generator().manual_seed(0)
    windows = epoch_windows([200, 64, 40], 64, gen)
    assert {c for c, _ in windows} == {0, 1}  # the 40-frame clip holds no window
    assert all(s + 64 <= (200 if c == 0 else 64) for c, s in windows)
    starts = [s for c, s in windows if c == 0]
    assert len(starts) in (2, 3) and all(b - a == 64 for a, b in zip(starts, starts[1:], strict=False))
    factors = [warmup_cosine_factor(s, 100, 0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False)) and factors[-1] < 0.01


def test_bad_settings_are_named(tiny_root, tmp_path):
    with pytest.raises(ValueError, match="multiple of 16"):
        train_fgd_encoder(tiny_root, tmp_path / "a.pt", window=40, progress=False)
    with pytest.raises(ValueError, match="lists no train clips of speakers"):
        train_fgd_encoder(tiny_root, tmp_path / "a.pt", speakers=[7], progress=False)
    with pytest.raises(ValueError, match="shorter than the 256-frame window"):
        train_fgd_encoder(tiny_root, tmp_path / "a.pt", window=256, progress=False)
    assert not (tmp_path / "a.pt").exists()


def test_cli_train_fgd(tiny_root, tmp_path, capsys):
    out = tmp_path / "ckpt" / "fgd.pt"
    main(["train-fgd", str(tiny_root), "--out", str(out), "--epochs", "1", "--batch-size", "8", "--quiet"])
    printed = capsys.readouterr().out
    meta = read_fgd_metadata(out)["training"]
    assert out.is_file() and "trained:tinyset:" in printed and f"3 clips ({meta['frames']} frames)" in printed
    assert meta["epochs"] == 1
