"""The benchmarks under `bench/` run at test size and report a table with their columns and finite numbers."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
QUICK = ["--size", "tiny", "--device", "cpu", "--warmup", "0", "--repeats", "1", "--threads", "1"]


def _script(name: str):
    """Import `bench/<name>.py` as a module (the scripts import their neighbours `common`, `stage_models`)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _number(cell: str) -> float:
    return float(cell.replace(",", ""))


def _check_table(printed: str, columns: tuple[str, ...], numeric: tuple[str, ...]) -> list[dict[str, str]]:
    """The printed markdown table has exactly `columns`, and every `numeric` cell that is filled is finite."""
    from common import parse_markdown_table

    header, cells = parse_markdown_table(printed)
    assert tuple(header) == columns
    assert cells, "the table has no rows"
    rows = [dict(zip(header, row)) for row in cells]
    for row in rows:
        for col in numeric:
            if row[col]:
                assert math.isfinite(_number(row[col])), f"{col}={row[col]!r} in {row}"
    return rows


def _check_jsonl(path: Path, count: int, keys: tuple[str, ...]) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == count
    for rec in lines:
        assert rec["machine"]["cores"] >= 1 and rec["date"]
        for k in keys:
            assert math.isfinite(rec[k]) and rec[k] > 0, (k, rec[k])
    return lines


def test_train_step_bench(tmp_path, capsys):
    mod = _script("train_step")
    out = tmp_path / "train.jsonl"
    stages = ["vq_face", "global_motion", "sparse"]
    rows = mod.main([*QUICK, "--precision", "32", "--stages", *stages, "--flops", "--no-body-model", "--out", str(out)])
    numeric = ("params_M", "step_ms", "samples_per_s", "peak_mem_MiB", "gflop_per_step")
    table = _check_table(capsys.readouterr().out, mod.COLUMNS, numeric)
    assert [r["stage"] for r in table] == stages
    for r in rows:
        assert r["samples_per_s"] == pytest.approx(r["batch"] / (r["step_ms"] / 1e3))
        assert r["gflop_per_step"] > 0 and r["params_M"] > 0 and r["mfu_pct"] is None  # no MFU on the CPU
    # the sparse stage trains its own generator only (the frozen base it reads is not counted)
    from stage_models import build_stage

    sparse = build_stage("sparse", "tiny", tmp_path / "upstream")
    assert rows[-1]["params_M"] * 1e6 == sum(p.numel() for p in sparse.generator.parameters() if p.requires_grad)
    _check_jsonl(out, len(stages), ("step_ms", "samples_per_s", "gflop_per_step"))


def test_train_step_passes_and_operator_counts(capsys):
    """`--passes batched sequential --ops` with the three passes on (`--masked-passes on`; the demo config trains the
    generation pass alone): both variants of the base step, the batched one with fewer operator calls (one call per
    layer instead of three) and fewer FLOPs (the speech encoders run once)."""
    mod = _script("train_step")
    rows = mod.main([*QUICK, "--precision", "32", "--stages", "base", "vq_face", "--passes", "batched", "sequential",
                     "--masked-passes", "on", "--ops", "--flops", "--no-body-model"])  # fmt: skip
    _check_table(capsys.readouterr().out, mod.COLUMNS, ("step_ms", "gflop_per_step", "kops_per_step"))
    base = {r["passes"]: r for r in rows if r["stage"] == "base"}
    assert set(base) == {"batched", "sequential"}
    assert base["batched"]["kops_per_step"] < 0.6 * base["sequential"]["kops_per_step"]
    assert base["batched"]["gflop_per_step"] < base["sequential"]["gflop_per_step"]
    vq = [r for r in rows if r["stage"] == "vq_face"]
    assert len(vq) == 1 and vq[0]["passes"] == "-" and vq[0]["kops_per_step"] > 0  # no passes to choose


def test_cache_bench(tmp_path, capsys):
    mod = _script("cache")
    out = tmp_path / "cache.jsonl"
    extractors = ["motion", "beat", "words", "semantic"]
    rows = mod.main([*QUICK, "--seconds", "3", "--extractors", *extractors, "--out", str(out)])
    table = _check_table(capsys.readouterr().out, mod.COLUMNS, ("clip_audio_s", "seconds_per_clip", "audio_s_per_s"))
    assert [r["extractor"] for r in table] == ["read clip", *extractors, "all (one clip)"]
    for r in rows:
        assert r["audio_s_per_s"] == pytest.approx(r["clip_audio_s"] / r["seconds_per_clip"])
    total = rows[-1]["seconds_per_clip"]
    assert total == pytest.approx(sum(r["seconds_per_clip"] for r in rows[:-1]))
    _check_jsonl(out, len(rows), ("clip_audio_s", "audio_s_per_s"))


def test_generation_bench(tmp_path, capsys):
    mod = _script("generation")
    out = tmp_path / "gen.jsonl"
    rows = mod.main([*QUICK, "--seconds", "3", "--chunk-seconds", "0.5", "--ops", "--out", str(out)])
    numeric = ("audio_s", "wall_s", "x_realtime", "encoders_s", "generators_s", "x_realtime_gen", "chunk_ms_p95")
    table = _check_table(capsys.readouterr().out, mod.COLUMNS, numeric)
    assert [r["mode"] for r in table] == ["offline", "streaming 0.5 s"]
    offline, streaming = rows
    assert offline["audio_s"] == pytest.approx(3.0)
    assert offline["x_realtime"] == pytest.approx(offline["audio_s"] / offline["wall_s"])
    # the parts are measured inside the whole run
    assert offline["encoders_s"] + offline["generators_s"] + offline["decode_s"] <= offline["wall_s"]
    assert offline["windows"] == streaming["windows"] == 2  # 90 frames: windows at frames 0 and 60
    assert streaming["chunk_ms_p95"] <= streaming["chunk_ms_max"]
    assert 1 < offline["kops_per_window"] < 100  # thousands of operator calls a window, counted inside the windows
    _check_jsonl(out, 2, ("wall_s", "x_realtime", "x_realtime_gen"))


def test_fused_window_runs_the_base_encoder_once(tmp_path):
    """The speed-up the generation benchmark showed: a fused window encodes with the frozen base once (its codes and
    the latents the sparse generator blends with come from the same pass) and gives what two passes gave."""
    import torch

    _script("stage_models")
    from stage_models import build_stage, synthetic_batch

    from semtalk.nn.sparse_generator import fuse_codes

    stage = build_stage("sparse", "tiny", tmp_path).eval()
    base = stage.base
    b = synthetic_batch("tiny", 2, seed=5)
    latent = b["latent_all"]
    mask = torch.ones_like(latent)
    mask[:, :4] = 0
    feats = {k: b[k] for k in ("hubert", "beat", "words", "emotion")}
    speaker, clip = b["speaker"], b["clip_text"]
    calls = []
    encode = base.generator._encode
    base.generator._encode = lambda *a, **k: calls.append(1) or encode(*a, **k)
    with torch.no_grad():
        codes, psi = stage.window_fn(speaker, clip[:, None], 0.5)(feats, latent, mask, 0)
        assert len(calls) == 1
        base_codes = base.generator.generate_codes(b["hubert"], b["beat"], latent, mask, speaker, base.codes_of)
        base_latents = base.generator.forward_latents(b["hubert"], b["beat"], latent, mask, speaker)
        sparse_codes, psi2 = stage.generator.generate_codes(
            b["words"], clip, b["hubert"], latent, mask, speaker, b["emotion"], base_latents, base.codes_of
        )
    expected = fuse_codes(base_codes, sparse_codes, psi2, 0.5)
    assert torch.equal(psi, psi2)
    assert all(torch.equal(codes[p], expected[p]) for p in expected)
