"""The results report (`stages.report`): end to end on a tiny BEAT2-format dataset and tiny trained stages, plus
its parts (the gate counts, the derangement, the keyword frames)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from motion_fixtures import train_tiny_stage1
from semtalk.body.model import BodyModel
from semtalk.metrics.fgd_encoder import random_fgd_encoder
from stages.report import (
    ABLATIONS,
    TABLE1_ROWS,
    ClipData,
    build_report,
    derangement,
    gate_stats,
    keyword_frames,
)

REPO = Path(__file__).resolve().parents[1]
GEN = dict(hidden=32, motion_f=16, heads=2, residual_layers=1, residual_heads=2, motion_encoder_layers=1, dropout=0.0)


def _fit(stage: L.LightningModule, loader, out: Path, name: str) -> str:
    trainer = L.Trainer(
        default_root_dir=out,
        accelerator="cpu",
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(stage, loader)
    path = out / f"{name}.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)
    return str(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory, smplx_root):
    """A tiny BEAT2-format dataset with its feature cache and weights, stage checkpoints trained for 2 steps
    (one ablation checkpoint among them), a data config and an FGD encoder file."""
    from semtalk.body.synthetic_model import write_synthetic_smplx
    from semtalk.data.weights import MEAN_VEL_FILE, SMPLX_FILE, compute_mean_velocity, save_npy_atomic
    from semtalk.synth.dataset import make_dataset
    from stages.base import BaseStage
    from stages.report import datamodule_from_config
    from stages.sparse import SparseStage

    top = tmp_path_factory.mktemp("report")
    root = top / "data"
    make_dataset(root, num_speakers=2, clips_per_speaker=3, clip_seconds=8.0, seed=1, progress=False)
    write_synthetic_smplx(root / "weights" / "smplx_models" / SMPLX_FILE, seed=0)
    save_npy_atomic(
        root / "weights" / MEAN_VEL_FILE,
        compute_mean_velocity(root, BodyModel(root / "weights" / "smplx_models"), progress=False),
    )
    config = top / "data.yaml"
    init = dict(root=str(root), cache_dir=str(top / "cache"), extractors=str(REPO / "configs/data/tiny.yaml"))
    config.write_text(yaml.safe_dump({"data": {"init_args": {**init, "batch_size": 6}}}))
    dm = datamodule_from_config(config)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    ck = top / "checkpoints"
    s1 = train_tiny_stage1(ck)
    tokenizers = {p: s1[p] for p in ("face", "upper", "hands", "lower")}
    base = BaseStage(tokenizers, s1["global_motion"], spec=dm.spec, generator=dict(GEN, audio_layers=1, face_layers=1))
    base_path = _fit(base, loader, ck, "base")
    sparse_gen = dict(GEN, semantic_layers=1, word_dim=8)
    _fit(SparseStage(base_path, spec=dm.spec, generator=sparse_gen), loader, ck, "sparse")
    wf_only = SparseStage(base_path, spec=dm.spec, generator=sparse_gen, feature_weighting=True, loss_weighting=False)
    _fit(wf_only, loader, ck / "ablation", "sparse_wf_only")
    fgd = top / "fgd.pt"
    torch.save({"model_state": random_fgd_encoder(1).state_dict()}, fgd)
    timing = top / "timing.json"
    timing.write_text(json.dumps({"steps": [{"name": "dataset", "seconds": 1.5}], "total_seconds": 9.25}))
    return {"root": root, "config": config, "checkpoints": ck, "fgd": fgd, "timing": timing, "top": top}


@pytest.fixture(scope="module")
def report(project):
    out = project["top"] / "reports" / "demo.md"
    metrics = build_report(
        project["config"], project["checkpoints"], out, "test", project["fgd"], project["timing"], workers=2
    )
    return out, metrics


def _table(text: str, title: str) -> dict[str, list[str]]:
    """Rows of the markdown table under `## <title>`: first cell -> the other cells."""
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in r.strip("|").split("|")] for r in rows[1:])}


def test_report_tables_claims_and_files(project, report):
    out, metrics = report
    text = out.read_text()
    clips = metrics["clips"]
    assert len(clips) == 2 and all((n - 4) % 60 == 0 and n >= 184 for n in clips.values())  # 8 s +- 20 %: 4 + 60 k

    t1 = _table(text, "Table 1")
    assert set(t1) == set(TABLE1_ROWS.values())
    keyword = "keyword_accuracy" in metrics["rows"]["full"]
    for label, cells in t1.items():
        assert len(cells) == 9
        # keyword accuracy: n/a without keyword segments of classes the training split has (a tiny dataset)
        assert (cells[7] == "n/a") == (not keyword or not math.isfinite(metrics["rows"]["full"]["keyword_accuracy"]))
        cells = cells[:7] + cells[8:]
        if label != "mean pose":  # a constant jaw has no lip-sync correlation
            assert all(math.isfinite(float(c)) for c in cells), (label, cells)
    # the table prints the paper-scaled values of metrics.json
    rows = metrics["rows"]
    assert float(t1["full model (SemTalk)"][0]) == pytest.approx(rows["full"]["fgd"] * 10, abs=1e-3)
    assert float(t1["base only (SemTalk*)"][4]) == pytest.approx(rows["base_only"]["face_mse"] * 1e8, abs=1e-3)
    assert rows["ground_truth"]["fgd"] == pytest.approx(0.0, abs=1e-4)
    assert rows["ground_truth"]["rotation_error"] == pytest.approx(0.0, abs=1e-6)
    assert float(t1["mean pose"][8]) == pytest.approx(rows["mean_pose"]["rotation_error"], rel=1e-3)
    if keyword and math.isfinite(rows["ground_truth"]["keyword_accuracy"]):  # the ground truth: the ceiling
        assert float(t1["ground truth"][7]) == pytest.approx(rows["ground_truth"]["keyword_accuracy"], abs=1e-3)
        assert 0.0 <= rows["base_only"]["keyword_accuracy"] <= 1.0
    for row in ("mean_pose", "shuffled_audio", "base_shuffled", "base_only", "full", "random_psi", "wf_only"):
        assert rows[row]["rotation_error"] > 0.0
        for key in ("fgd", "bc", "diversity", "face_mse", "lvd", "bc_contrast"):
            assert math.isfinite(rows[row][key]), (row, key)
        assert rows[row]["frames"] == sum(clips.values())

    t2 = _table(text, "Table 2")
    assert len(t2) == 6
    assert t2["with W_f"][-1] != "–" and "not run" in t2["with W_l"][0]
    assert all(len(cells) == 6 for cells in t2.values())
    assert "not run" in t2["gate without weighting (no W_f, no W_l)"][0]
    gate = metrics["gate"]
    for label, row in (("full (W_f and W_l)", "full"), ("random ψ (uniform, seed 0)", "random_psi")):
        assert float(t2[label][4]) == pytest.approx(gate[row]["accuracy"], abs=1e-3)
        assert 0.0 <= gate[row]["accuracy"] <= 1.0
    assert gate["without_gate"]["accuracy"] == pytest.approx(1 - gate["full"]["semantic"] / gate["full"]["tokens"])

    claims = re.findall(r"^- \*\*(holds|does not hold)\*\*: (.+)$", text, flags=re.M)
    n_claims = 15 if keyword else 13
    assert len(claims) == n_claims and len(metrics["claims"]) == n_claims
    fusion = metrics["fusion"]
    assert fusion["closed_changed"] == 0 and fusion["face_changed"] == 0 and metrics["claims"][-1]["holds"]
    assert fusion["open_tokens"] + fusion["closed_tokens"] > 0
    for (verdict, line), claim in zip(claims, metrics["claims"]):
        assert (verdict == "holds") == claim["holds"] and claim["claim"] in line
    full_vs_base = metrics["claims"][0]
    assert full_vs_base["holds"] == (rows["full"]["fgd"] < rows["base_only"]["fgd"])
    by_text = {c["claim"]: c["holds"] for c in metrics["claims"]}
    assert by_text["bc base_only > bc base_shuffled"] == (rows["base_only"]["bc"] > rows["base_shuffled"]["bc"])
    assert by_text["rotation_error base_only < rotation_error mean_pose"] == (
        rows["base_only"]["rotation_error"] < rows["mean_pose"]["rotation_error"]
    )

    assert "| dataset | 1.5 |" in text and "9.2" in text  # the timing file
    assert "random-init" not in text.split("## Table 1")[0]  # a seed-1 encoder file is not the seed-0 init
    assets = out.with_suffix("")
    pngs = sorted(p.name for p in assets.glob("*.png"))
    assert any(p.startswith("psi_") for p in pngs) and any(p.startswith("keywords_") for p in pngs)
    for name in pngs:
        assert f"demo/{name}" in text
    for row in (*TABLE1_ROWS, "random_psi", "wf_only"):
        files = sorted((assets / row).glob("*.npz"))
        assert [f.stem for f in files] == sorted(clips)
        for f in files:
            with np.load(f) as z:
                assert z["poses"].shape == (clips[f.stem], 165) and z["betas"].shape == (300,)
    assert not any((assets / name).exists() for name in ABLATIONS if name != "wf_only")
    assert json.loads((assets / "metrics.json").read_text())["claims"] == metrics["claims"]


def test_report_rows_differ_where_they_should(report):
    out, metrics = report
    assets = out.with_suffix("")
    clip = sorted(metrics["clips"])[0]

    def poses(row: str) -> np.ndarray:
        with np.load(assets / row / f"{clip}.npz") as z:
            return z["poses"]

    gt, mean = poses("ground_truth"), poses("mean_pose")
    assert np.allclose(mean, mean[:1])  # one pose on every frame
    assert not np.allclose(poses("full"), poses("shuffled_audio"))  # other speech, other motion
    assert not np.allclose(poses("base_only"), poses("base_shuffled"))
    assert not np.allclose(poses("full"), gt)
    with np.load(assets / "mean_pose" / f"{clip}.npz") as m, np.load(assets / "ground_truth" / f"{clip}.npz") as g:
        assert np.allclose(m["trans"], g["trans"][:1])  # the root stays at the clip's first frame


def _clip(sem: list[float], clip_id: str = "2_scott_0_1_1") -> ClipData:
    n = len(sem)
    z = np.zeros
    return ClipData(clip_id, n, 1, {}, torch.zeros(1, 1, 1), torch.zeros(1, 4, 337), torch.zeros(1, 3),
                    z((n, 165)), z((n, 3)), z((n, 100)), z(300), np.asarray(sem, np.float32))  # fmt: skip


def test_gate_stats_counts_tokens():
    clip = _clip([0, 0, 0, 0, 0.5, 0.5, 0, 0, 1, 1, 1, 1])  # tokens: plain, semantic (mean 0.25), semantic
    psi = np.repeat([0.2, 0.9, 0.3], 4)
    stats = gate_stats([psi], [clip], beta=0.5)
    assert (stats.correct, stats.opened, stats.semantic, stats.tokens) == (2, 1, 2, 3)
    closed = gate_stats([None], [clip], beta=0.5)
    assert closed.accuracy == pytest.approx(1 / 3) and closed.open_share == 0


def test_derangement_moves_every_clip():
    for n in (2, 3, 8):
        d = derangement(n)
        assert sorted(d) == list(range(n)) and all(d[i] != i for i in range(n))
    with pytest.raises(ValueError, match="at least two"):
        derangement(1)


def test_keyword_frames_pick_the_strongest_segments(tmp_path):
    from semtalk.data.root import Beat2Root

    (tmp_path / "sem").mkdir()
    rows = [
        ("01_beat_align", 0.0, 1.0, 0.1, ""),
        ("09_metaphoric", 1.0, 2.0, 0.9, "big"),
        ("05_deictic", 2.0, 3.0, 0.5, "you"),
        ("09_metaphoric", 9.0, 11.0, 0.9, "late"),  # past the generated frames
    ]
    lines = [f"{a}\t{s:.4f}\t{e:.4f}\t{e - s:.4f}\t{sc}\t{k}" for a, s, e, sc, k in rows]
    (tmp_path / "sem" / "2_scott_0_1_1.txt").write_text("\n".join(lines) + "\n")
    picks = keyword_frames(Beat2Root(tmp_path), _clip([0.0] * 240), threshold=0.1, count=4)
    assert picks == [(45, "big", 0.9), (75, "you", 0.5)]


def test_feature_weighting_switches_w_f():
    from semtalk.nn.sparse_generator import SparseGenerator

    g = torch.Generator().manual_seed(0)
    b, t = 2, 16
    inputs = dict(
        words=torch.randint(0, 50, (b, t), generator=g),
        clip=torch.randn(b, 20, generator=g),
        hubert=torch.randn(b, t, 24, generator=g),
        latent_all=torch.randn(b, t, 337, generator=g),
        mask=torch.ones(b, t, 337),
        speaker=torch.zeros(b, dtype=torch.long),
        emotion=torch.randn(b, t, 10, generator=g),
    )
    zero = torch.zeros(b, t // 4)
    torch.manual_seed(0)
    weighted = SparseGenerator.tiny(blend_base=False, dropout=0.0).eval()
    torch.manual_seed(0)
    plain = SparseGenerator.tiny(blend_base=False, dropout=0.0, feature_weighting=False).eval()
    with torch.no_grad():
        w, p = weighted(**inputs, psi_override=zero), plain(**inputs, psi_override=zero)
    assert torch.equal(w.fusion, p.fusion)
    assert w.semantic.abs().max() == 0  # W_f: psi = 0 silences the semantic features
    assert torch.allclose(p.semantic, plain.semantic_mlp(p.fusion)) and p.semantic.abs().max() > 0


def test_sparse_stage_sets_w_f_once(project):
    from stages.sparse import SparseStage

    base = str(project["checkpoints"] / "base.ckpt")
    gen = dict(GEN, semantic_layers=1, word_dim=8)
    stage = SparseStage(base, spec={"vocab_size": 20, "clip_dim": 32, "emotion_dim": 32, "hubert_dim": 64},
                        generator=gen, feature_weighting=False)  # fmt: skip
    assert stage.generator.feature_weighting is False
    with pytest.raises(ValueError, match="set it in one place"):
        SparseStage(base, spec={}, generator=dict(gen, feature_weighting=True), feature_weighting=False)


def test_fgd_speech_assignment_script_matches_the_report(project, report):
    import importlib.util

    spec = importlib.util.spec_from_file_location("fgd_speech_assignment", REPO / "scripts/fgd_speech_assignment.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    res = script.assignment_fgd(project["checkpoints"], project["config"], "test", project["fgd"], draws=2)
    rows, scored = res["rows"], report[1]["rows"]
    assert set(rows) == {"its own", "clip i+1's", "clip i+2's", "clip i+3's", "its own, rotated by half"}
    assert all(np.isfinite(v) and v > 0 for r in rows.values() for v in r.values())
    # the own and i+1 rows are the report's base-only / shuffled rows, scored the same way
    for label, own, shuffled in (("base only", "base_only", "base_shuffled"), ("full model", "full", "shuffled_audio")):
        assert rows["its own"][label] == pytest.approx(scored[own]["fgd"], rel=1e-4)
        assert rows["clip i+1's"][label] == pytest.approx(scored[shuffled]["fgd"], rel=1e-4)
    assert rows["its own, rotated by half"]["base only"] != rows["its own"]["base only"]
    assert len(res["train_draws"]) == 2 and np.isfinite(res["held_out"])
