"""Markdown tables of metric results: raw values beside the scaled values papers print.

The BEAT2 tables of EMAGE and SemTalk print FGD x 10, BC x 10, Diversity raw, face MSE x 1e8 and
LVD x 1e5 (their column labels say "x10^-1", "x10^-8", "x10^-5").
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from semtalk.metrics.profiles import MetricProfile, get_profile

#: metric key -> (display name, paper scale factor, direction)
PAPER_SCALES: dict[str, tuple[str, float, str]] = {
    "fgd": ("FGD", 10.0, "lower"),
    "bc": ("BC", 10.0, "higher"),
    "diversity": ("Diversity", 1.0, "higher"),
    "face_mse": ("Face MSE", 1e8, "lower"),
    "lvd": ("LVD", 1e5, "lower"),
    "gate_accuracy": ("Gate accuracy", 1.0, "higher"),
}

#: synchrony measures (`semtalk.metrics.synchrony`), printed unscaled after the paper metrics
SYNCHRONY_ROWS: dict[str, tuple[str, float, str]] = {
    "bc_contrast": ("BC contrast (BC - BC at +-1..3 s audio offsets)", 1.0, "higher"),
    "bc_shifted_std": ("BC spread over audio offsets", 1.0, "-"),
    "lipsync_z": ("Lip-sync z (jaw vs RMS, lag 0)", 1.0, "higher"),
    "lipsync_lag_s": ("Lip-sync peak lag (s, + = motion late)", 1.0, "near 0"),
    "expression_sync_z": ("Expression-sync z (lag 0)", 1.0, "higher"),
    "gesture_sync_z": ("Gesture-sync z (lag 0)", 1.0, "-"),
}


def _fmt(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    value = float(value)
    if value != 0.0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.{digits}e}"
    return f"{value:.{digits}f}"


def scaled(metrics: Mapping[str, float]) -> dict[str, float]:
    """The paper-scaled value of each known metric in `metrics`."""
    return {k: float(v) * PAPER_SCALES[k][1] for k, v in metrics.items() if k in PAPER_SCALES and v is not None}


def metrics_table(metrics: Mapping[str, float], profile: str | MetricProfile, fgd_encoder: str | None = None) -> str:
    """A markdown table with one row per known metric (FGD, BC, Diversity, face MSE, LVD, gate accuracy,
    then the synchrony measures of `SYNCHRONY_ROWS`): raw value, paper-scaled value, the scale and which
    direction is better. A header names the profile and the FGD encoder; rows are skipped for metrics that
    are absent."""
    prof = get_profile(profile)
    note = " (comparable with the SemTalk paper)" if prof.name == "semtalk2024" else ""
    lines = [
        f"Metric profile: `{prof.name}`{note}",
        f"FGD encoder: `{fgd_encoder}`" if fgd_encoder else "FGD encoder: none (FGD not computed)",
        "",
        "| metric | raw | paper-scaled | scale | better |",
        "|---|---:|---:|---:|---|",
    ]
    for key, (name, factor, direction) in {**PAPER_SCALES, **SYNCHRONY_ROWS}.items():
        if key not in metrics or metrics[key] is None:
            continue
        raw = float(metrics[key])
        scale = "1" if factor == 1.0 else f"x{factor:g}"
        lines.append(f"| {name} | {_fmt(raw, 6)} | {_fmt(raw * factor)} | {scale} | {direction} |")
    return "\n".join(lines) + "\n"
