"""Score a folder of generated SMPL-X motions against BEAT2 ground truth.

Files are BEAT2-format npz (`poses` (T, 165) axis-angle, `expressions` (T, 100), `betas` (300,), ...).
Predictions are matched to ground truth by file name; a leading `res_` / `gt_` (the prefixes SemTalk's
test outputs carry) is ignored when matching. Audio, when given, is `<audio_dir>/<name>.wav` at 16 kHz.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from semtalk.atomic import write_text_atomic
from semtalk.body.joints import NUM_BETAS, NUM_EXPRESSIONS, NUM_JOINTS
from semtalk.metrics.beat_consistency import load_bc_audio
from semtalk.metrics.motion_inputs import BodyModelLike, body_joints, face_vertices, fgd_rot6d
from semtalk.metrics.profiles import MetricProfile, evaluation_length, get_profile
from semtalk.metrics.synchrony_metrics import BCContrast, GestureSync, LipSync
from semtalk.metrics.tables import metrics_table, scaled
from semtalk.metrics.torchmetrics_impl import FGD, LVD, BeatConsistency, Diversity, FaceMSE

_PREFIXES = ("res_", "gt_")


def match_key(path: Path) -> str:
    """File name without extension and without a leading `res_` / `gt_`."""
    stem = path.stem
    for prefix in _PREFIXES:
        if stem.startswith(prefix):
            return stem[len(prefix) :]
    return stem


def _index(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {folder} does not exist")
    out: dict[str, Path] = {}
    for p in sorted(folder.glob("*.npz")):
        key = match_key(p)
        if key in out:
            raise ValueError(f"{what} folder {folder} has two files for '{key}': {out[key].name} and {p.name}")
        out[key] = p
    return out


def load_motion(path: Path) -> dict[str, np.ndarray]:
    """Read `poses` (T, 165), `expressions` (T, 100) and `betas` (300,) from a BEAT2-format npz."""
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"could not read {path} as an npz file: {exc}") from exc
    with data:
        missing = [k for k in ("poses", "expressions", "betas") if k not in data.files]
        if missing:
            raise ValueError(
                f"{path} lacks {', '.join(missing)}; BEAT2-format files need poses (T, 165), "
                f"expressions (T, 100) and betas ({NUM_BETAS},)"
            )
        poses = np.asarray(data["poses"], np.float32)
        expressions = np.asarray(data["expressions"], np.float32)
        betas = np.asarray(data["betas"], np.float32)
    if poses.ndim != 2 or poses.shape[1] != NUM_JOINTS * 3:
        raise ValueError(f"{path}: poses must be (T, {NUM_JOINTS * 3}) axis-angle, got {poses.shape}")
    if expressions.shape != (poses.shape[0], NUM_EXPRESSIONS):
        raise ValueError(
            f"{path}: expressions must be ({poses.shape[0]}, {NUM_EXPRESSIONS}) to match poses, got {expressions.shape}"
        )
    if betas.ndim == 2:
        betas = betas[0]
    if betas.shape != (NUM_BETAS,):
        raise ValueError(f"{path}: betas must be ({NUM_BETAS},), got {betas.shape}")
    return {"poses": poses, "expressions": expressions, "betas": betas}


def _load_mean_vel(mean_vel: np.ndarray | str | Path | None) -> np.ndarray | None:
    if mean_vel is None or isinstance(mean_vel, np.ndarray):
        return mean_vel
    path = Path(mean_vel)
    if not path.is_file():
        raise FileNotFoundError(
            f"mean joint speeds not found at {path}; use BEAT2's weights/mean_vel_smplxflame_30.npy"
        )
    return np.load(path)


def evaluate_folder(
    pred_dir: str | Path,
    gt_dir: str | Path,
    audio_dir: str | Path | None = None,
    profile: str | MetricProfile = "semtalk2024",
    body_model: BodyModelLike | None = None,
    fgd_encoder: torch.nn.Module | None = None,
    mean_vel: np.ndarray | str | Path | None = None,
    output_dir: str | Path | None = None,
) -> dict:
    """Score every prediction in `pred_dir` against its ground truth in `gt_dir`.

    Args:
        audio_dir: folder of `<name>.wav`; needed for BC (and, under `semtalk2024`, for the length rule).
        profile: `"semtalk2024"` (paper-comparable) or `"corrected"`.
        body_model: SMPL-X body (see `semtalk.metrics.motion_inputs`); needed for BC, Diversity, face MSE
            and LVD.
        fgd_encoder: FGD feature extractor (`load_fgd_encoder`); FGD is skipped without it.
        mean_vel: `(55,)` mean joint speeds or the path of BEAT2's `mean_vel_smplxflame_30.npy`; needed
            for BC.
        output_dir: when given, `metrics.json` and `metrics.md` are written there atomically.

    Returns:
        `{"profile", "fgd_encoder", "num_files", "frames", "files": {name: frames}, "fgd", "bc",
        "diversity", "face_mse", "lvd", "scaled": {...}}`, metrics absent when their inputs are missing.
        With audio, the synchrony measures of `semtalk.metrics.synchrony` are added: `lipsync_z`,
        `lipsync_lag_s`, `expression_sync_z`, `expression_sync_lag_s` (no body model needed), and with a body
        model and mean speeds `bc_contrast`, `bc_shifted_std`, `gesture_sync_z`, `gesture_sync_lag_s`; the
        correlation curves are under `"curves"` (`{"lipsync" | "expression_sync" | "gesture_sync": {"lags_s",
        "corr"}}`, null where a lag was not measured).
    """
    prof = get_profile(profile)
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    preds, gts = _index(pred_dir, "prediction"), _index(gt_dir, "ground-truth")
    if not preds:
        raise ValueError(f"no .npz predictions in {pred_dir}")
    unmatched = sorted(set(preds) - set(gts))
    if unmatched:
        raise ValueError(f"no ground truth in {gt_dir} for: {', '.join(unmatched)} (files match by name)")
    mv = _load_mean_vel(mean_vel)
    if audio_dir is not None and body_model is not None and mv is None:
        raise ValueError("BC needs mean joint speeds: pass mean_vel (BEAT2's weights/mean_vel_smplxflame_30.npy)")

    fgd = FGD(fgd_encoder, prof) if fgd_encoder is not None else None
    bc = BeatConsistency(mv, prof) if (audio_dir is not None and body_model is not None) else None
    div = Diversity() if body_model is not None else None
    mse = FaceMSE() if body_model is not None else None
    lvd = LVD(prof) if body_model is not None else None
    bc_contrast = BCContrast(mv, prof) if bc is not None else None
    gesture_sync = GestureSync() if bc is not None else None
    lipsync = LipSync() if audio_dir is not None else None

    files: dict[str, int] = {}
    for key in sorted(preds):
        pred, gt = load_motion(preds[key]), load_motion(gts[key])
        audio = None
        audio_seconds = None
        if audio_dir is not None:
            wav = Path(audio_dir) / f"{key}.wav"
            if not wav.is_file():
                raise FileNotFoundError(f"no audio for '{key}': expected {wav}")
            audio_seconds = sf.info(str(wav)).duration
            if bc is not None or lipsync is not None:
                audio = load_bc_audio(wav, "corrected")  # raw 16 kHz; BeatConsistency applies the profile
        try:
            n = evaluation_length(prof, gt["poses"].shape[0], pred["poses"].shape[0], audio_seconds)
        except ValueError as exc:
            raise ValueError(f"{preds[key].name}: {exc}") from exc
        files[key] = n
        p_poses, g_poses = pred["poses"][:n], gt["poses"][:n]
        if fgd is not None:
            fgd.update(fgd_rot6d(p_poses)[None], fgd_rot6d(g_poses)[None])
        if lipsync is not None:
            try:
                lipsync.update(
                    torch.from_numpy(p_poses)[None], torch.from_numpy(pred["expressions"][:n])[None],
                    torch.from_numpy(audio)[None],
                )  # fmt: skip
            except ValueError as exc:
                raise ValueError(f"{preds[key].name}: {exc}") from exc
        if body_model is None:
            continue
        joints = torch.from_numpy(body_joints(body_model, p_poses, gt["betas"]))[None]
        div.update(joints)
        if bc is not None:
            try:
                bc.update(joints, torch.from_numpy(audio)[None])
                bc_contrast.update(joints, torch.from_numpy(audio)[None])
                gesture_sync.update(joints, torch.from_numpy(audio)[None])
            except ValueError as exc:
                raise ValueError(f"{preds[key].name}: {exc}") from exc
        fv_pred = face_vertices(body_model, p_poses, pred["expressions"][:n], gt["betas"])
        fv_gt = face_vertices(body_model, g_poses, gt["expressions"][:n], gt["betas"])
        mse.update(torch.from_numpy(fv_pred)[None], torch.from_numpy(fv_gt)[None])
        lvd.update(torch.from_numpy(fv_pred)[None], torch.from_numpy(fv_gt)[None])

    results: dict = {
        "profile": prof.name,
        "fgd_encoder": fgd.encoder_name if fgd is not None else None,
        "num_files": len(files),
        "frames": int(sum(files.values())),
        "files": files,
    }
    for name, metric in (("fgd", fgd), ("bc", bc), ("diversity", div), ("face_mse", mse), ("lvd", lvd)):
        if metric is not None:
            results[name] = float(metric.compute())
    curves = {}
    if bc_contrast is not None:
        c = bc_contrast.compute()
        results["bc_contrast"], results["bc_shifted_std"] = float(c["bc_contrast"]), float(c["bc_shifted_std"])
    for name, metric in (("lipsync", lipsync), ("gesture_sync", gesture_sync)):
        if metric is None:
            continue
        c = metric.compute()
        prefixes = ("lipsync", "expression_sync") if name == "lipsync" else ("gesture_sync",)
        for prefix in prefixes:
            results[f"{prefix}_z"] = float(c[f"{prefix}_z"])
            results[f"{prefix}_lag_s"] = float(c[f"{prefix}_lag_s"])
            corr = [round(v, 6) if np.isfinite(v) else None for v in c[f"{prefix}_curve"].tolist()]
            curves[prefix] = {"lags_s": [round(v, 6) for v in c["lags_s"].tolist()], "corr": corr}
    if curves:
        results["curves"] = curves
    results["scaled"] = scaled({k: v for k, v in results.items() if isinstance(v, float)})
    if output_dir is not None:
        out = Path(output_dir)
        write_text_atomic(out / "metrics.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
        write_text_atomic(out / "metrics.md", metrics_table(results, prof, results["fgd_encoder"]))
    return results
