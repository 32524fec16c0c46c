"""Mean ± sd over several runs of the report (`metrics.json` of `python -m stages.report`), e.g. the main job
under several seeds (`make demo SEED=k`), and how many runs each claim holds in.

    python -m stages.aggregate outputs/demo/demo/metrics.json outputs/seed1/demo/metrics.json ... --out outputs/seeds.md

Writes the markdown table and `<out without .md>.json` (every per-run value, the means and the sds). The sd is
the sample standard deviation (n - 1); with one run it is not defined and printed as "n/a".
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semtalk.atomic import write_text_atomic
from semtalk.metrics.tables import PAPER_SCALES
from stages.report import ABLATIONS, TABLE1_ROWS

#: the report's rows: Table 1, random psi and the Sem-gate ablations
ROWS = (*TABLE1_ROWS, "random_psi", *ABLATIONS)
METRICS = ("fgd", "bc", "diversity", "lipsync_z", "keyword_accuracy", "rotation_error")


SHORT = {"lipsync_z": "lip-sync z", "keyword_accuracy": "keyword accuracy", "rotation_error": "rotation error (rad)"}


def _scale(key: str) -> tuple[str, float]:
    """Column heading and print scale of a metric (the report's paper scales)."""
    if key in PAPER_SCALES:
        name, scale = PAPER_SCALES[key][0], PAPER_SCALES[key][1]
        return (f"{name} ×{scale:g}" if scale != 1 else name), scale
    return SHORT.get(key, key), 1.0


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (nan for one value) of finite `values` (nan, nan when none)."""
    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return math.nan, math.nan
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else math.nan
    return m, sd


def _fmt(m: float, sd: float, scale: float) -> str:
    if not math.isfinite(m):
        return "n/a"
    text = f"{m * scale:.4g}"
    if not math.isfinite(sd):
        return text + " ± n/a"
    sd = 0.0 if sd <= 1e-9 * max(abs(m), 1e-12) else sd  # equal runs up to float rounding
    return text + f" ± {sd * scale:.2g}"


def load_runs(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    runs = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: give the metrics.json files of `make report` runs")
        data = json.loads(path.read_text())
        if "rows" not in data:
            raise ValueError(f"{path} is not a report's metrics.json (no 'rows')")
        data["_path"] = str(path)
        runs.append(data)
    if not runs:
        raise ValueError("no runs given")
    splits = {r.get("split") for r in runs}
    if len(splits) > 1:
        raise ValueError(f"the runs score different splits ({sorted(map(str, splits))}): aggregate one split")
    return runs


def aggregate(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per row and metric: the values of every run, their mean and sd; per gate setting the same for the gate
    accuracy; per claim the number of runs it holds in."""
    rows: dict[str, dict[str, Any]] = {}
    for row in ROWS:
        if not any(row in r["rows"] for r in runs):
            continue
        rows[row] = {}
        for key in METRICS:
            vals = [r["rows"].get(row, {}).get(key) for r in runs]
            m, sd = mean_sd(vals)
            rows[row][key] = {"values": vals, "mean": m, "sd": sd}
    gate = {}
    for name in sorted({g for r in runs for g in r.get("gate", {})}):
        vals = [r.get("gate", {}).get(name, {}).get("accuracy") for r in runs]
        m, sd = mean_sd(vals)
        gate[name] = {"values": vals, "mean": m, "sd": sd}
    claims: dict[str, dict[str, Any]] = {}
    for r in runs:
        for c in r.get("claims", []):
            entry = claims.setdefault(c["claim"], {"holds": 0, "runs": 0, "numbers": []})
            entry["runs"] += 1
            entry["holds"] += bool(c["holds"])
            entry["numbers"].append(c.get("numbers"))
    return {"runs": [r["_path"] for r in runs], "split": runs[0].get("split"), "rows": rows, "gate": gate,
            "claims": claims}  # fmt: skip


def render(agg: dict[str, Any]) -> str:
    n = len(agg["runs"])
    lines = [
        f"# The report over {n} runs: mean ± sd",
        "",
        "Written by `python -m stages.aggregate` (`make aggregate`) from:",
        "",
        *[f"- `{p}`" for p in agg["runs"]],
        "",
        f"Split: `{agg['split']}`. sd: sample standard deviation over the runs. Scales as in the report.",
        "",
    ]
    heads = [_scale(k)[0] for k in METRICS]
    lines += ["| row | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(METRICS)]
    for row, vals in agg["rows"].items():
        cells = [_fmt(vals[k]["mean"], vals[k]["sd"], _scale(k)[1]) for k in METRICS]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    if agg["gate"]:
        lines += ["", "| gate setting | gate accuracy |", "|---|---:|"]
        for name, g in agg["gate"].items():
            lines.append(f"| {name} | {_fmt(g['mean'], g['sd'], 1.0)} |")
    if agg["claims"]:
        lines += ["", "## Claims: runs in which each holds", "", "| claim | holds in |", "|---|---:|"]
        for claim, c in agg["claims"].items():
            lines.append(f"| {claim} | {c['holds']} of {c['runs']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics", nargs="+", help="metrics.json files of report runs")
    ap.add_argument("--out", default="outputs/seeds.md", help="markdown file; the JSON goes next to it")
    args = ap.parse_args(argv)
    agg = aggregate(load_runs(args.metrics))
    out = Path(args.out)
    write_text_atomic(out, render(agg))
    write_text_atomic(out.with_suffix(".json"), json.dumps(agg, indent=2, sort_keys=True) + "\n")
    print(render(agg))
    return agg


if __name__ == "__main__":
    main()
