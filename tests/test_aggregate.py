"""stages.aggregate: mean ± sd over several report runs, known values."""

import json
import math

import pytest

from stages.aggregate import aggregate, load_runs, main, mean_sd


def _run(tmp_path, name, fgd, bc, holds, split="test"):
    data = {
        "split": split,
        "rows": {"full": {"fgd": fgd, "bc": bc, "keyword_accuracy": 0.5}, "base_only": {"fgd": 2 * fgd}},
        "gate": {"full": {"accuracy": 0.8 + fgd / 100}},
        "claims": [{"claim": "FGD full < FGD base_only", "holds": holds, "numbers": f"{fgd} vs {2 * fgd}"}],
    }
    path = tmp_path / name / "metrics.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    return path


def test_mean_sd_known_values():
    assert mean_sd([1.0, 2.0, 3.0]) == (2.0, 1.0)
    m, sd = mean_sd([4.0])
    assert m == 4.0 and math.isnan(sd)
    assert all(math.isnan(v) for v in mean_sd([None, float("nan")]))


def test_aggregate_tables_and_claim_counts(tmp_path):
    paths = [
        _run(tmp_path, "a", 1.0, 0.1, True),
        _run(tmp_path, "b", 3.0, 0.3, False),
        _run(tmp_path, "c", 2.0, 0.2, True),
    ]
    agg = aggregate(load_runs(paths))
    fgd = agg["rows"]["full"]["fgd"]
    assert fgd["values"] == [1.0, 3.0, 2.0] and fgd["mean"] == pytest.approx(2.0) and fgd["sd"] == pytest.approx(1.0)
    assert agg["rows"]["base_only"]["fgd"]["mean"] == pytest.approx(4.0)
    assert math.isnan(agg["rows"]["base_only"]["bc"]["mean"])  # absent in every run
    assert agg["gate"]["full"]["mean"] == pytest.approx(0.82)
    assert agg["claims"]["FGD full < FGD base_only"] == {"holds": 2, "runs": 3, "numbers": ["1.0 vs 2.0", "3.0 vs 6.0",
                                                                                           "2.0 vs 4.0"]}  # fmt: skip
    out = tmp_path / "seeds.md"
    main([str(p) for p in paths] + ["--out", str(out)])
    text = out.read_text()
    assert "| full | 20 ± 10 | 2 ± 1 |" in text  # FGD and BC at the paper's x10 scale
    assert "| FGD full < FGD base_only | 2 of 3 |" in text
    assert json.loads(out.with_suffix(".json").read_text())["rows"]["full"]["bc"]["mean"] == pytest.approx(0.2)


def test_refuses_mixed_splits_and_missing_files(tmp_path):
    a, b = _run(tmp_path, "a", 1.0, 0.1, True), _run(tmp_path, "b", 1.0, 0.1, True, split="val")
    with pytest.raises(ValueError, match="different splits"):
        load_runs([a, b])
    with pytest.raises(FileNotFoundError, match="metrics.json"):
        load_runs([tmp_path / "none" / "metrics.json"])
