"""The results report of the main job: tables, claims and figures written by code from the trained checkpoints.

    python -m stages.report --data-config configs/data/embedded.yaml --checkpoints checkpoints \
        --out outputs/demo/demo.md [--split test] [--fgd-encoder checkpoints/fgd.pt] [--timing runs/demo_timing.json]

For every clip of the split it writes BEAT2-format npz files into `<out without .md>/<row>/` (rows below), scores
each row folder with `semtalk.metrics.evaluate.evaluate_folder` (profile `corrected`) against the ground-truth
folder, and writes the markdown report, `metrics.json` and the figures next to it. Every file is written
atomically; the report is regenerated on each run.

Rows (every row covers the same frames of each clip: its generated length, `4 + 60 k`):

| row | motion |
|---|---|
| ground_truth | the clip's own motion |
| mean_pose | the training split's mean pose and expression on every frame, root at the clip's first frame |
| shuffled_audio | the full model driven by another clip's speech (a fixed derangement: clip i gets clip i+1's) |
| base_shuffled | the base checkpoint driven by another clip's speech (the same derangement) |
| base_only | the base (rhythm) checkpoint |
| full | the sparse checkpoint with the Sem-gate fusion |
| random_psi | the full checkpoint with psi replaced by uniform random values (fixed seed) |
| no_weighting, wf_only, wl_only | sparse checkpoints trained without W_f and W_l / with W_f only / with W_l only
  (`checkpoints/ablation/sparse_<name>.ckpt`, `make ablation`) |

"Without gate" (fusion off) takes the base codes everywhere, which is the base_only row by construction.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from semtalk.atomic import write_bytes_atomic, write_text_atomic
from semtalk.body.face_mesh import FaceMeshBody
from semtalk.body.joints import FPS, NUM_JOINTS
from semtalk.body.model import BodyModel
from semtalk.body.rotations import axis_angle_to_matrix, axis_angle_to_rot6d, joint_rotation_error, rot6d_to_axis_angle
from semtalk.data.beat2 import load_motion, load_sem
from semtalk.data.datamodule import Beat2DataModule
from semtalk.data.root import Beat2Root
from semtalk.export import save_smplx_npz
from semtalk.generation import decode_generated, generate_codes_autoregressive, num_windows, pad_frames
from semtalk.metrics.evaluate import evaluate_folder
from semtalk.metrics.fgd_encoder import FGDAutoencoder, load_fgd_encoder, random_fgd_encoder
from semtalk.metrics.keyword_gesture import fit_on_root, held_out_keywords, root_segments, score_motions
from semtalk.metrics.motion_inputs import body_joints
from semtalk.metrics.tables import PAPER_SCALES, SYNCHRONY_ROWS
from semtalk.nn.base_generator import BODY_PARTS
from stages.base import BaseStage
from stages.sparse import SparseStage, token_scores

SPEECH_KEYS = ("hubert", "beat", "words", "emotion")
ABLATIONS: dict[str, str] = {
    "no_weighting": "gate without weighting (no W_f, no W_l)",
    "wf_only": "with W_f",
    "wl_only": "with W_l",
}
TABLE1_ROWS: dict[str, str] = {
    "ground_truth": "ground truth",
    "mean_pose": "mean pose",
    "shuffled_audio": "shuffled audio (full model, another clip's speech)",
    "base_shuffled": "shuffled audio (base only)",
    "base_only": "base only (SemTalk*)",
    "full": "full model (SemTalk)",
}
TABLE1_METRICS = ("fgd", "bc", "bc_contrast", "diversity", "face_mse", "lvd", "lipsync_z", "keyword_accuracy",
                  "rotation_error")  # fmt: skip
TABLE2_METRICS = ("fgd", "bc", "diversity", "keyword_accuracy")
KEYWORD_CLAIM = 0.60
RANDOM_PSI_SEED = 0
GATE_CLAIM = 0.80


# ------------------------------------------------------------------------------------------------ the clips
@dataclass
class ClipData:
    """One clip of the split, cut to its generated length n.

    Attributes:
        features: speech features of the whole sequence, name -> `(1, L, ...)` (L >= n): hubert, beat, words,
            emotion.
        clip_text: `(1, G, Dc)` sentence feature per generation window.
        seed: `(1, seed_frames, 337)` the first frames (the test protocol seeds with them); start_trans: `(1, 3)`.
        poses, trans, expressions: ground truth `(n, 165)`, `(n, 3)`, `(n, 100)`; betas `(300,)`; sem `(n,)`.
    """

    clip_id: str
    frames: int
    speaker: int
    features: dict[str, torch.Tensor]
    clip_text: torch.Tensor
    seed: torch.Tensor
    start_trans: torch.Tensor
    poses: np.ndarray
    trans: np.ndarray
    expressions: np.ndarray
    betas: np.ndarray
    sem: np.ndarray


@dataclass
class Motion:
    """A motion of n frames for one clip: `poses (n, 165)`, `trans (n, 3)`, `expressions (n, 100)`, and the
    per-frame `psi (n,)` of a sparse generation (None otherwise)."""

    poses: np.ndarray
    trans: np.ndarray
    expressions: np.ndarray
    psi: np.ndarray | None = None


def datamodule_from_config(path: str | Path) -> Beat2DataModule:
    """A `Beat2DataModule` from a data YAML (`data: {init_args: ...}` as the stages' configs hold it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data config {path} not found; pass e.g. --data-config configs/data/embedded.yaml")
    cfg = yaml.safe_load(path.read_text()) or {}
    args = (cfg.get("data") or {}).get("init_args")
    if not isinstance(args, dict):
        raise ValueError(f"{path} has no data.init_args mapping (see configs/data/embedded.yaml)")
    return Beat2DataModule(**{**args, "progress": False})


def load_split_clips(dm: Beat2DataModule, split: str = "test") -> list[ClipData]:
    """Every clip of the `val` or `test` split from the feature cache, cut to its generated length."""
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    dm.setup("validate" if split == "val" else "test")
    clips = []
    for b in dm.val_dataloader() if split == "val" else dm.test_dataloader():
        n = int(b["generated_length"])
        clips.append(
            ClipData(
                clip_id=str(b["clip_id"][0]),
                frames=n,
                speaker=int(b["speaker"][0]),
                features={k: b[k] for k in SPEECH_KEYS if k in b},
                clip_text=b["clip_text"].float(),
                seed=b["latent_all"][:, : dm.seed_frames].float(),
                start_trans=b["trans"][:, 0].float(),
                poses=b["poses"][0, :n].float().numpy(),
                trans=b["trans"][0, :n].float().numpy(),
                expressions=b["expressions"][0, :n].float().numpy(),
                betas=b["betas"][0].float().numpy(),
                sem=b["sem"][0, :n].float().numpy(),
            )
        )
    if not clips:
        raise ValueError(f"the {split} split of {dm.root} holds no clip long enough to generate for")
    return clips


def training_mean_pose(root: Beat2Root, splits: Sequence[str], speakers: Sequence[int] | None) -> Motion:
    """The mean pose and expression over every frame of the training clips, as a one-frame `Motion`: joint
    rotations averaged as rot6d and mapped back to rotations (Gram-Schmidt); translation zero."""
    ids = root.clip_ids(splits, speakers)
    if not ids:
        raise ValueError(f"{root.split_path} lists no clips of {list(splits)}: the mean pose needs training clips")
    rot_sum = torch.zeros(55, 6, dtype=torch.float64)
    expr_sum = np.zeros(100)
    count = 0
    for cid in ids:
        m = load_motion(root.motion_path(cid))
        rot_sum += axis_angle_to_rot6d(torch.from_numpy(m.poses).double().reshape(-1, 55, 3)).sum(0)
        expr_sum += m.expressions.astype(np.float64).sum(0)
        count += m.num_frames
    poses = rot6d_to_axis_angle(rot_sum / count).reshape(1, 165).float().numpy()
    return Motion(poses, np.zeros((1, 3), np.float32), (expr_sum / count).astype(np.float32)[None])


# ------------------------------------------------------------------------------------------------ generation
def _loop_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """`(B, L, ...)` repeated along time to `(B, frames, ...)`."""
    return x[:, torch.arange(frames) % x.shape[1]]


def generate_clips(
    stage: BaseStage | SparseStage,
    clips: Sequence[ClipData],
    speech_from: Sequence[int] | None = None,
    psi_override: Callable[[int, int], torch.Tensor] | None = None,
    observe: Callable[..., None] | None = None,
) -> list[Motion]:
    """Generate every clip in one batch: codes autoregressively over the longest clip, then each clip's own codes
    decoded to its own length (the same result as generating the clip alone).

    Args:
        stage: a base stage (rhythm only) or a sparse stage (the fused model).
        clips: the clips (seed frames, start translation and speaker are each clip's own).
        speech_from: index of the clip whose speech drives clip i (default: its own); another clip's speech is
            looped to cover clip i's length.
        psi_override: sparse stage only: `f(window, tokens) -> (B, tokens)` psi replacing the gate's.
        observe: sparse stage only: `f(window, base_codes, fused_codes, psi)` per window (`SparseStage.window_fn`).
    """
    source = list(range(len(clips))) if speech_from is None else list(speech_from)
    frames = max(c.frames for c in clips)
    windows = num_windows(frames, stage.window, stage.seed_frames)
    feats: dict[str, torch.Tensor] = {}
    for key in clips[0].features:
        per_clip = []
        for c, s in zip(clips, source):
            x = clips[s].features[key]
            x = x[:, : c.frames] if x.shape[1] >= c.frames else _loop_frames(x, c.frames)
            per_clip.append(pad_frames(x, frames))
        feats[key] = torch.cat(per_clip)
    feats = {k: (v.float() if v.is_floating_point() else v.long()) for k, v in feats.items()}
    texts = []
    for i, (c, s) in enumerate(zip(clips, source)):
        own = num_windows(c.frames, stage.window, stage.seed_frames)
        text = clips[s].clip_text if s == i else _loop_frames(clips[s].clip_text, own)
        texts.append(pad_frames(text, windows))
    clip_text = torch.cat(texts)
    speaker = torch.tensor([c.speaker for c in clips], dtype=torch.long)
    seed = torch.cat([c.seed for c in clips])
    start = torch.cat([c.start_trans for c in clips])
    with torch.no_grad():
        if isinstance(stage, SparseStage):
            beta = float(stage.hparams.beta)
            fn = stage.window_fn(speaker, clip_text, beta, psi_override=psi_override, observe=observe)
        else:
            fn = stage.window_fn(speaker)
        codec = stage.codec
        codes, psi = generate_codes_autoregressive(fn, feats, seed, codec, frames, stage.window, stage.seed_frames)
        out = []
        step = stage.window - stage.seed_frames
        for i, c in enumerate(clips):
            covered = stage.seed_frames + step * num_windows(c.frames, stage.window, stage.seed_frames)
            tokens = covered // codec.downsample  # the tokens generating this clip alone would give
            own = {p: v[i : i + 1, :tokens] for p, v in codes.items()}
            res = decode_generated(
                codec, own, None if psi is None else psi[i : i + 1, :tokens], start[i : i + 1], c.frames
            )
            p = res.params
            out.append(
                Motion(
                    p.poses[0].float().numpy(),
                    p.trans[0].float().numpy(),
                    p.expressions[0].float().numpy(),
                    None if res.psi is None else res.psi[0].float().numpy(),
                )
            )
    return out


def rotation_error(motions: Sequence[Motion], clips: Sequence[ClipData]) -> float:
    """Mean geodesic angle (radians) between generated and ground-truth joint rotations over the 53 modelled
    joints (eyes excluded) and every frame of every clip (frame-weighted)."""
    total, frames = 0.0, 0
    for m, c in zip(motions, clips):
        pred = axis_angle_to_matrix(torch.from_numpy(m.poses).double().reshape(-1, NUM_JOINTS, 3))
        gt = axis_angle_to_matrix(torch.from_numpy(c.poses).double().reshape(-1, NUM_JOINTS, 3))
        total += float(joint_rotation_error(pred, gt).sum())
        frames += c.frames
    return total / max(frames, 1)


def random_psi(batch: int, seed: int = RANDOM_PSI_SEED) -> Callable[[int, int], torch.Tensor]:
    """A psi override drawing uniform values in [0, 1) per token from a fixed seed: `f(window, tokens)`."""
    gen = torch.Generator().manual_seed(seed)
    return lambda window, tokens: torch.rand(batch, tokens, generator=gen)


def derangement(n: int) -> list[int]:
    """The fixed derangement of the shuffled-audio row: clip i is driven by clip (i + 1) mod n."""
    if n < 2:
        raise ValueError("the shuffled-audio row needs at least two clips in the split")
    return [(i + 1) % n for i in range(n)]


@dataclass
class GateStats:
    """Token counts of the Sem-gate against the annotation (target: mean of the token's 4 frames of sem > 0)."""

    correct: int = 0
    opened: int = 0
    semantic: int = 0
    tokens: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.tokens if self.tokens else math.nan

    @property
    def open_share(self) -> float:
        return self.opened / self.tokens if self.tokens else math.nan

    @property
    def semantic_share(self) -> float:
        return self.semantic / self.tokens if self.tokens else math.nan


@dataclass
class FusionCheck:
    """`SparseStage.window_fn`'s `observe` callback: per window, the fused codes against the base codes of the
    same window (same seed frames), counted per token: body-part tokens that differ, split by whether the gate
    selected them (`psi > beta`), and face tokens that differ (the face always comes from the base)."""

    beta: float = 0.5
    open_tokens: int = 0
    open_changed: int = 0
    closed_tokens: int = 0
    closed_changed: int = 0
    face_changed: int = 0

    def __call__(self, window: int, base_codes: dict, fused: dict, psi: torch.Tensor) -> None:
        select = psi > self.beta
        changed = torch.zeros_like(select)
        for part in BODY_PARTS:
            changed |= (fused[part] != base_codes[part]).any(-1)
        self.face_changed += int((fused["face"] != base_codes["face"]).any(-1).sum())
        self.open_tokens += int(select.sum())
        self.open_changed += int((changed & select).sum())
        self.closed_tokens += int((~select).sum())
        self.closed_changed += int((changed & ~select).sum())

    @property
    def holds(self) -> bool:
        return self.closed_changed == 0 and self.face_changed == 0


def gate_stats(psis: Sequence[np.ndarray | None], clips: Sequence[ClipData], beta: float, frames_per_token: int = 4):
    """Pooled gate counts over the clips: token psi (every 4th frame of the per-frame psi) `> beta` against
    `token_scores(sem) > 0`. A None psi is a gate that never opens (fusion off)."""
    stats = GateStats()
    for psi, c in zip(psis, clips):
        target = token_scores(torch.from_numpy(c.sem)[None], frames_per_token)[0] > 0
        if psi is None:
            opened = torch.zeros_like(target)
        else:
            opened = torch.from_numpy(np.asarray(psi))[::frames_per_token][: target.shape[0]] > beta
        stats.correct += int((opened == target).sum())
        stats.opened += int(opened.sum())
        stats.semantic += int(target.sum())
        stats.tokens += int(target.numel())
    return stats


# ------------------------------------------------------------------------------------------------ scoring
def load_fgd(path: str | Path | None) -> tuple[FGDAutoencoder, str]:
    """The FGD encoder and a sentence describing it for the report (random-init when no file is given, or when
    the file holds the seed-0 random initialisation)."""
    if path is None:
        return random_fgd_encoder(0), (
            "**random-init encoder** (no --fgd-encoder given): FGD compares the rows with each other only, "
            "through random features; train one with `make checkpoints/fgd.pt`"
        )
    try:
        from semtalk.metrics.fgd_training import load_fgd_encoder_file, read_fgd_metadata

        encoder, meta = load_fgd_encoder_file(path), read_fgd_metadata(path)
    except ImportError:
        encoder, meta = load_fgd_encoder(path), {}
    reference = random_fgd_encoder(0).state_dict()
    if all(torch.equal(v, reference[k]) for k, v in encoder.state_dict().items()):
        return encoder, f"**random-init encoder** (`{path}` holds the seed-0 initialisation, untrained)"
    text = f"`{encoder.identity}`"
    training = meta.get("training") or {}
    if training:
        losses = training.get("losses") or [math.nan]
        text += (
            f", trained on the {training.get('split', 'train')} split ({training.get('clips')} clips, "
            f"{training.get('frames')} frames, {training.get('epochs')} epochs, final loss {losses[-1]:.5f})"
        )
    return encoder, text


@dataclass
class Scorer:
    """Writes row folders and scores them against the ground-truth folder with `evaluate_folder`."""

    out_dir: Path
    clips: Sequence[ClipData]
    audio_dir: Path
    body: nn.Module
    fgd: FGDAutoencoder
    mean_vel: Path

    @property
    def gt_dir(self) -> Path:
        return self.out_dir / "ground_truth"

    def write(self, row: str, motions: Sequence[Motion]) -> Path:
        folder = self.out_dir / row
        folder.mkdir(parents=True, exist_ok=True)
        keep = {f"{c.clip_id}.npz" for c in self.clips}
        for stale in folder.glob("*.npz"):
            if stale.name not in keep:
                stale.unlink()
        for c, m in zip(self.clips, motions):
            if m.poses.shape[0] != c.frames:
                raise ValueError(f"row {row}, clip {c.clip_id}: {m.poses.shape[0]} frames, expected {c.frames}")
            save_smplx_npz(folder / f"{c.clip_id}.npz", m.poses, m.trans, m.expressions, c.betas)
        return folder

    def score(self, row: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        res = evaluate_folder(
            self.out_dir / row,
            self.gt_dir,
            self.audio_dir,
            profile="corrected",
            body_model=self.body,
            fgd_encoder=self.fgd,
            mean_vel=self.mean_vel,
        )
        res.pop("curves", None)
        res["seconds"] = round(time.perf_counter() - t0, 2)
        shown = ", ".join(f"{k} {res[k]:.4g}" for k in ("fgd", "bc", "diversity") if k in res)
        print(f"[report] scored {row:15s} in {res['seconds']:5.1f} s: {shown}", flush=True)
        return res


_POOL_SCORER: Scorer | None = None


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _score_in_worker(row: str) -> dict[str, Any]:
    assert _POOL_SCORER is not None, "the scoring pool was not set up"
    return _POOL_SCORER.score(row)


class ScoringPool:
    """Scores rows in `workers` forked processes (which inherit the body model and the FGD encoder) while the
    caller goes on generating; one worker, or a platform without fork, scores each row on submission."""

    def __init__(self, scorer: Scorer, workers: int = 2) -> None:
        import multiprocessing

        self.scorer = scorer
        self.pending: dict[str, Any] = {}
        self.pool = None
        if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
            global _POOL_SCORER
            _POOL_SCORER = scorer
            threads = max(1, torch.get_num_threads() // workers)  # the cores shared out, not oversubscribed
            self.pool = multiprocessing.get_context("fork").Pool(workers, _init_worker, (threads,))

    def __enter__(self) -> ScoringPool:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is None:
            return
        if exc[0] is not None:
            self.pool.terminate()  # a failure: drop the rows still being scored
        else:
            self.pool.close()
        self.pool.join()

    def submit(self, row: str) -> None:
        if self.pool is None:
            self.pending[row] = self.scorer.score(row)
        else:
            self.pending[row] = self.pool.apply_async(_score_in_worker, (row,))

    def results(self) -> dict[str, dict[str, Any]]:
        """Every submitted row's `evaluate_folder` result (waits for the workers)."""
        return {row: (r if isinstance(r, dict) else r.get()) for row, r in self.pending.items()}


# ------------------------------------------------------------------------------------------------ figures
def _write_png(path: Path, image: np.ndarray) -> Path:
    import io

    import matplotlib.image

    buffer = io.BytesIO()
    matplotlib.image.imsave(buffer, image, format="png")
    write_bytes_atomic(path, buffer.getvalue())
    return path


def keyword_frames(
    root: Beat2Root, clip: ClipData, threshold: float = 0.1, count: int = 4
) -> list[tuple[int, str, float]]:
    """Up to `count` (frame, keyword, score) at the middle of the clip's highest-scoring semantic segments
    (score above `threshold`, inside the generated frames), in time order."""
    path = root.sem_path(clip.clip_id)
    if not path.is_file():
        return []
    picks = []
    for r in load_sem(path):
        frame = int(round((r.start + r.end) / 2 * FPS))
        if r.score > threshold and 0 <= frame < clip.frames:
            picks.append((frame, (r.keywords or r.name).strip() or r.name, float(r.score)))
    picks.sort(key=lambda x: (-x[2], x[0]))
    return sorted(picks[:count])


def write_figures(
    out_dir: Path,
    root: Beat2Root,
    clips: Sequence[ClipData],
    rows: dict[str, Sequence[Motion]],
    body: nn.Module,
    beta: float,
    threshold: float,
) -> dict[str, Any]:
    """psi against the annotation for the test clip with the most semantic frames, and stick figures at its
    keywords: ground truth, full model, base only."""
    from semtalk.render import psi_plot, skeleton_panel

    pick = max(range(len(clips)), key=lambda i: (int((clips[i].sem > 0).sum()), -i))
    clip = clips[pick]
    for stale in [*out_dir.glob("psi_*.png"), *out_dir.glob("keywords_*.png")]:
        stale.unlink()  # figures of an earlier run
    psi = rows["full"][pick].psi
    psi_png = _write_png(out_dir / f"psi_{clip.clip_id}.png", psi_plot(psi, clip.sem, beta))
    keys = keyword_frames(root, clip, threshold)
    info: dict[str, Any] = {"clip": clip.clip_id, "psi_png": psi_png, "keywords": keys, "frames_png": None}
    if keys:
        panel = [
            (label, body_joints(body, rows[row][pick].poses, clip.betas))
            for row, label in (("ground_truth", "ground truth"), ("full", "full model"), ("base_only", "base only"))
        ]
        image = skeleton_panel(panel, [f for f, _, _ in keys])
        info["frames_png"] = _write_png(out_dir / f"keywords_{clip.clip_id}.png", image)
    return info


# ------------------------------------------------------------------------------------------------ markdown
def _cell(res: dict[str, Any] | None, key: str) -> str:
    if res is None or res.get(key) is None or not math.isfinite(float(res[key])):
        return "n/a"
    scale = PAPER_SCALES.get(key, SYNCHRONY_ROWS.get(key, ("", 1.0, "")))[1]
    value = float(res[key]) * scale
    if abs(value) < 5e-7:
        return "0.000"
    return f"{value:.3f}" if abs(value) >= 1 else f"{value:.4g}"


def _header(key: str) -> str:
    if key == "rotation_error":
        return "rotation error (rad) ↓"
    if key == "lipsync_z":
        return "lip-sync z ↑"
    if key == "bc_contrast":
        return "BC contrast ↑"
    if key == "keyword_accuracy":
        return "keyword accuracy ↑"
    name, scale, better = PAPER_SCALES[key]
    arrow = "↓" if better == "lower" else "↑"
    exponent = round(math.log10(scale))
    shown = "" if scale == 1 else (f" ×1e{exponent}" if scale == 10.0**exponent and exponent > 1 else f" ×{scale:g}")
    return f"{name}{shown} {arrow}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|---" + "|---:" * (len(headers) - 1) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def claims(
    results: dict[str, dict[str, Any]], gate: dict[str, GateStats], fusion: FusionCheck | None = None
) -> list[tuple[str, bool, str]]:
    """The report's claims, each (statement, holds, the numbers)."""

    def fgd(row: str) -> float:
        return float(results[row].get("fgd", math.nan))

    out = []
    for a, b in (
        ("full", "base_only"),
        ("full", "shuffled_audio"),
        ("base_only", "shuffled_audio"),
        ("full", "mean_pose"),
        ("base_only", "mean_pose"),
    ):
        holds = fgd(a) < fgd(b)
        out.append((f"FGD {a} < FGD {b}", holds, f"{fgd(a):.6g} vs {fgd(b):.6g}"))

    def value(row: str, key: str) -> float:
        return float(results[row].get(key, math.nan))

    # the base alone: in sync with its own speech, and nearer the ground truth than the mean pose
    for key, a, b, higher in (
        ("bc", "base_only", "base_shuffled", True),
        ("bc_contrast", "base_only", "base_shuffled", True),
        ("lipsync_z", "base_only", "base_shuffled", True),
        ("lipsync_z", "full", "shuffled_audio", True),
        ("rotation_error", "base_only", "mean_pose", False),
        ("rotation_error", "full", "mean_pose", False),
    ):
        va, vb = value(a, key), value(b, key)
        holds = va > vb if higher else va < vb
        out.append((f"{key} {a} {'>' if higher else '<'} {key} {b}", holds, f"{va:.6g} vs {vb:.6g}"))
    if "keyword_accuracy" in results.get("full", {}):
        va, vb = value("full", "keyword_accuracy"), value("base_only", "keyword_accuracy")
        out.append(("keyword_accuracy full > keyword_accuracy base_only", va > vb, f"{va:.4g} vs {vb:.4g}"))
        kw = results["full"]["keyword"]
        out.append(
            (
                f"keyword accuracy of the full model >= {KEYWORD_CLAIM:.2f}",
                va >= KEYWORD_CLAIM,
                f"{va:.4f} (chance {kw['chance']:.4f}; ground truth {value('ground_truth', 'keyword_accuracy'):.4f})",
            )
        )
    acc = gate["full"].accuracy
    closed = gate["without_gate"].accuracy
    out.append(
        (
            f"gate accuracy of the full model >= {GATE_CLAIM:.2f}",
            acc >= GATE_CLAIM,
            f"{acc:.4f} (a gate that never opens scores {closed:.4f}; random psi {gate['random_psi'].accuracy:.4f})",
        )
    )
    if fusion is not None:
        out.append(
            (
                "the fused codes differ from the base codes only on tokens the gate selected",
                fusion.holds,
                f"body tokens changed: {fusion.closed_changed} of {fusion.closed_tokens} closed, "
                f"{fusion.open_changed} of {fusion.open_tokens} open; face tokens changed: {fusion.face_changed}",
            )
        )
    return out


def render_markdown(
    *,
    split: str,
    clips: Sequence[ClipData],
    results: dict[str, dict[str, Any]],
    gate: dict[str, GateStats],
    ablations: dict[str, Path | None],
    checkpoints: Path,
    fgd_text: str,
    figures: dict[str, Any],
    claim_rows: Sequence[tuple[str, bool, str]],
    timing: dict[str, Any] | None,
    timing_path: Path | None,
    seconds: float,
    out_dir_name: str,
) -> str:
    frames = sum(c.frames for c in clips)
    lines = [
        "# SemTalk demo: results on the embedded dataset",
        "",
        "Written by `python -m stages.report` (`make report`) from the checkpoints in "
        f"`{checkpoints}`; every number and figure below comes from code. Do not edit by hand: rerun.",
        "",
        f"- split: `{split}`, {len(clips)} clips, {frames} frames ({frames / FPS:.1f} s) scored per row; each clip "
        "is cut to its generated length (4 + 60 k frames) and every row covers the same frames.",
        "- metric profile: `corrected` (`semtalk.metrics.evaluate.evaluate_folder`); tables print the paper "
        f"scales (FGD ×10, BC ×10, face MSE ×1e8, LVD ×1e5); raw values are in `{out_dir_name}/metrics.json`.",
        f"- FGD encoder: {fgd_text}.",
        f"- motions: BEAT2-format npz per row in `{out_dir_name}/<row>/`.",
        "",
        f"## Table 1: comparison on the {split} split",
        "",
    ]
    rows = [[label] + [_cell(results.get(row), k) for k in TABLE1_METRICS] for row, label in TABLE1_ROWS.items()]
    lines += _table(["method"] + [_header(k) for k in TABLE1_METRICS], rows)
    lines += [
        "",
        "Ground truth is scored against itself (FGD, face MSE and LVD are 0 up to rounding). Shuffled audio: clip i "
        "is generated from clip i+1's speech (hubert, beat, words, emotion, sentence features; looped to length) "
        "and scored with clip i's audio and ground truth. Mean pose: the training split's mean rotation of every "
        "joint and mean expression on every frame. The face always comes from the base generator, so the face "
        "columns of the full model can equal those of base only.",
        "",
    ]
    kw = (results.get("ground_truth") or {}).get("keyword")
    if kw:
        lines += [
            f"Keyword accuracy: each of the split's {kw['segments']} annotated keyword segments "
            f"({len(kw['classes'])} classes) is classified from the upper body and hands over its frames by a "
            "nearest-neighbour classifier fitted on the ground truth's training-split segments "
            f"(`semtalk.metrics.keyword_gesture`); chance {kw['chance']:.3f}, most frequent class "
            f"{kw['majority']:.3f}; the ground-truth row is the ceiling.",
        ]
        if kw.get("held_out_segments"):
            held = [(label, (results.get(row) or {}).get("keyword") or {}) for row, label in TABLE1_ROWS.items()]
            shown = "; ".join(f"{label} {k['held_out_accuracy']:.3f} (seen {k['seen_accuracy']:.3f})"
                              for label, k in held if k)  # fmt: skip
            lines += [
                "",
                f"Held-out synonyms: {kw['held_out_segments']} of the segments say a keyword the training clips never "
                f"said (a synonym of a trained class). Their keyword accuracy, and that of the others: {shown}.",
            ]
        lines.append("")
    lines += [
        "## Table 2: Sem-gate ablation",
        "",
    ]
    t2 = [("without gate (fusion off ≡ base only)", "base_only", "without_gate")]
    t2.append(("random ψ (uniform, seed 0)", "random_psi", "random_psi"))
    for name, label in ABLATIONS.items():
        t2.append((label, name, name))
    t2.append(("full (W_f and W_l)", "full", "full"))
    rows = []
    for label, row, gate_row in t2:
        if row in ABLATIONS and ablations.get(row) is None:
            rows.append([label, "not run (`make ablation`)"] + ["–"] * (len(TABLE2_METRICS) + 1))
            continue
        g = gate.get(gate_row)
        acc = "n/a" if g is None else f"{g.accuracy:.3f}"
        share = "n/a" if g is None else f"{g.open_share:.3f}"
        rows.append([label] + [_cell(results.get(row), k) for k in TABLE2_METRICS] + [acc, share])
    lines += _table(["setting"] + [_header(k) for k in TABLE2_METRICS] + ["gate accuracy ↑", "gate open"], rows)
    sem_share = gate["full"].semantic_share
    lines += [
        "",
        "Gate accuracy: per token, `ψ > β` against `mean over the token's 4 frames of sem > 0`, pooled over "
        f"{gate['full'].tokens} tokens; {sem_share:.3f} of them are annotated semantic, so a gate that never "
        f'opens scores {1 - sem_share:.3f}. "gate open": share of tokens that took the sparse model\'s codes. '
        "Without gate, the base codes are used everywhere: the base-only motion, and a gate that never opens. "
        "Random ψ replaces the gate's ψ in the feature weighting, the blend and the fusion.",
    ]
    missing = [n for n, p in ablations.items() if p is None]
    if missing:
        lines += [
            "",
            f'Rows marked "not run" need `{checkpoints}/ablation/sparse_<name>.ckpt` '
            f"({', '.join(missing)}): train them with `make ablation`.",
        ]
    lines += ["", "## Claims", "", "Each line is computed from the tables above.", ""]
    for text, holds, numbers in claim_rows:
        lines.append(f"- {'**holds**' if holds else '**does not hold**'}: {text} ({numbers})")
    if "random" in fgd_text:
        lines += ["", "The FGD claims above were measured with a random-init FGD encoder and carry little weight."]
    lines += ["", "## Figures", ""]
    clip = figures["clip"]
    lines += [
        f"ψ of the full model over time against the annotated semantic frames, test clip `{clip}` (the clip with "
        "the most semantic frames):",
        "",
        f"![psi]({out_dir_name}/{figures['psi_png'].name})",
        "",
    ]
    if figures["frames_png"] is not None:
        keys = ", ".join(f'frame {f} ({f / FPS:.1f} s): "{k}" (score {s:.2f})' for f, k, s in figures["keywords"])
        lines += [
            f"Stick figures at its semantic keywords ({keys}); rows: ground truth, full model, base only:",
            "",
            f"![keywords]({out_dir_name}/{figures['frames_png'].name})",
        ]
    else:
        lines.append(f"Clip `{clip}` has no annotated semantic keyword inside its generated frames.")
    lines += ["", "## Timing", ""]
    if timing is not None:
        rows = [[s["name"], f"{float(s['seconds']):.1f}"] for s in timing.get("steps", [])]
        if timing.get("total_seconds") is not None:
            rows.append(["**total**", f"{float(timing['total_seconds']):.1f}"])
        lines += [f"Wall time of the main job's steps (`{timing_path}`):", ""]
        lines += _table(["step", "seconds"], rows)
        lines.append("")
        if timing.get("calibration_step_seconds"):
            lines += [
                f"This machine's demo-size base training step (`bench/train_step.py`, median): "
                f"{float(timing['calibration_step_seconds']):.3f} s; the steps above cost "
                f"{float(timing['total_seconds']) / float(timing['calibration_step_seconds']):,.0f} such steps "
                "(a machine-independent cost).",
                "",
            ]
    else:
        lines += ["No timing file was given (`--timing runs/demo_timing.json`).", ""]
    lines.append(f"This report took {seconds:.1f} s (generation of every row, scoring, figures).")
    return "\n".join(lines) + "\n"


def read_timing(path: Path) -> dict[str, Any]:
    """`{"steps": [{"name", "seconds"}], "total_seconds"}` from the main job's timing file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"timing file {path} is not readable JSON ({exc}); the main job writes it") from exc
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, list) or not all(isinstance(s, dict) and {"name", "seconds"} <= set(s) for s in steps):
        raise ValueError(f'{path}: expected {{"steps": [{{"name": ..., "seconds": ...}}], "total_seconds": ...}}')
    return data


# ------------------------------------------------------------------------------------------------ stages
def load_stages(
    checkpoints: Path, cache: Path
) -> tuple[BaseStage, SparseStage, dict[str, SparseStage | None], dict[str, Path | None]]:
    """The base stage, the full sparse stage and the ablation sparse stages present in `checkpoints/ablation/`,
    frozen, in eval mode, on the CPU."""
    from stages.inference import load_pipeline

    if not (checkpoints / "sparse.ckpt").is_file():
        raise FileNotFoundError(
            f"{checkpoints / 'sparse.ckpt'}: no stage-3 checkpoint. Fix: `make train-sparse` or pass --checkpoints DIR"
        )
    pipe = load_pipeline(checkpoints, mode="full", cache=cache)
    base, full = pipe.base, pipe.sparse
    spec = dict(full.hparams.get("spec") or {})
    spec["word_embeddings"] = None
    stages: dict[str, SparseStage | None] = {}
    paths: dict[str, Path | None] = {}
    for name in ABLATIONS:
        path = checkpoints / "ablation" / f"sparse_{name}.ckpt"
        paths[name] = path.resolve() if path.is_file() else None
        if paths[name] is None:
            stages[name] = None
            continue
        with contextlib.chdir(pipe.root):
            stage = SparseStage.load_from_checkpoint(
                paths[name],
                map_location="cpu",
                weights_only=True,
                base=str((checkpoints / "base.ckpt").resolve()),
                spec=spec,
            )
        stage.base = base  # the same frozen weights (the sha256 was checked on load)
        stages[name] = stage.eval().requires_grad_(False)
    return base, full, stages, paths


# ------------------------------------------------------------------------------------------------ main
def build_report(
    data_config: str | Path,
    checkpoints: str | Path,
    out: str | Path,
    split: str = "test",
    fgd_encoder: str | Path | None = None,
    timing: str | Path | None = None,
    workers: int = 2,
) -> dict[str, Any]:
    """Generate, score and write the report (see the module docstring); `workers` processes score the rows while
    the next ones are generated. Returns the content of metrics.json."""
    t_start = time.perf_counter()
    out = Path(out)
    if out.suffix != ".md":
        raise ValueError(f"--out must name a markdown file (e.g. outputs/demo/demo.md), got {out}")
    out_dir = out.with_suffix("")
    checkpoints = Path(checkpoints)
    timing_data = read_timing(Path(timing)) if timing is not None else None
    torch.manual_seed(0)

    dm = datamodule_from_config(data_config)
    root = Beat2Root(dm.root)
    clips = load_split_clips(dm, split)
    print(f"[report] {len(clips)} {split} clips, {sum(c.frames for c in clips)} frames", flush=True)
    base, full, ablation_stages, ablation_paths = load_stages(checkpoints, dm.cache_dir)
    beta = float(full.hparams.beta)
    fgd, fgd_text = load_fgd(fgd_encoder)
    mean_vel = root.weights_dir / "mean_vel_smplxflame_30.npy"
    if not mean_vel.is_file():
        raise FileNotFoundError(f"{mean_vel} not found: BC needs the dataset's mean joint speeds (weights/)")
    body = FaceMeshBody(BodyModel(dm.spec["smplx_root"]))
    scorer = Scorer(out_dir, clips, root.audio_path(clips[0].clip_id).parent, body, fgd, mean_vel)

    fusion = FusionCheck(beta)
    motions: dict[str, list[Motion]] = {
        "ground_truth": [Motion(c.poses, c.trans, c.expressions) for c in clips],
    }
    mean = training_mean_pose(root, dm.train_splits, dm.speakers)
    motions["mean_pose"] = [
        Motion(
            np.repeat(mean.poses, c.frames, 0),
            np.repeat(c.trans[:1], c.frames, 0),
            np.repeat(mean.expressions, c.frames, 0),
        )
        for c in clips
    ]
    jobs: list[tuple[str, Callable[[], list[Motion]]]] = [
        ("base_only", lambda: generate_clips(base, clips)),
        ("full", lambda: generate_clips(full, clips, observe=fusion)),
        ("shuffled_audio", lambda: generate_clips(full, clips, derangement(len(clips)))),
        ("base_shuffled", lambda: generate_clips(base, clips, derangement(len(clips)))),
        ("random_psi", lambda: generate_clips(full, clips, psi_override=random_psi(len(clips)))),
    ]
    for name, stage in ablation_stages.items():
        if stage is not None:
            jobs.append((name, lambda stage=stage: generate_clips(stage, clips)))
        else:
            shutil.rmtree(out_dir / name, ignore_errors=True)  # motions of an earlier run's checkpoint
    with ScoringPool(scorer, workers) as pool:
        for name in motions:
            scorer.write(name, motions[name])
            pool.submit(name)
        for name, job in jobs:
            t0 = time.perf_counter()
            motions[name] = job()
            print(f"[report] generated {name:15s} in {time.perf_counter() - t0:5.1f} s", flush=True)
            scorer.write(name, motions[name])
            pool.submit(name)
        threshold = float((dm.extractor_config.get("semantic") or {}).get("threshold", 0.1))
        figures = write_figures(out_dir, root, clips, motions, body, beta, threshold)
        results = pool.results()
    for name, rows in motions.items():
        results[name]["rotation_error"] = rotation_error(rows, clips)
    keyword = keyword_scores(root, dm, clips, motions, body)
    for name, res in keyword.items():
        results[name]["keyword_accuracy"], results[name]["keyword"] = res["accuracy"], res

    gate = {"without_gate": gate_stats([None] * len(clips), clips, beta)}
    gated = {"full": full, "random_psi": full, **{n: s for n, s in ablation_stages.items() if s is not None}}
    for name, stage in gated.items():
        gate[name] = gate_stats([m.psi for m in motions[name]], clips, float(stage.hparams.beta))
    claim_rows = claims(results, gate, fusion)
    seconds = time.perf_counter() - t_start
    text = render_markdown(
        split=split,
        clips=clips,
        results=results,
        gate=gate,
        ablations=ablation_paths,
        checkpoints=checkpoints,
        fgd_text=fgd_text,
        figures=figures,
        claim_rows=claim_rows,
        timing=timing_data,
        timing_path=Path(timing) if timing is not None else None,
        seconds=seconds,
        out_dir_name=out_dir.name,
    )
    metrics = {
        "split": split,
        "clips": {c.clip_id: c.frames for c in clips},
        "fgd_encoder": fgd.identity,
        "beta": beta,
        "rows": results,
        "gate": {k: {**vars(g), "accuracy": g.accuracy, "open_share": g.open_share} for k, g in gate.items()},
        "claims": [{"claim": t, "holds": h, "numbers": n} for t, h, n in claim_rows],
        "fusion": vars(fusion),
        "ablations": {k: (str(v) if v else None) for k, v in ablation_paths.items()},
        "figures": {k: (str(v) if isinstance(v, Path) else v) for k, v in figures.items()},
        "seconds": round(seconds, 2),
    }
    write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n")
    write_text_atomic(out, text)
    for t, h, n in claim_rows:
        print(f"[report] claim {'holds' if h else 'does not hold'}: {t} ({n})", flush=True)
    print(f"[report] wrote {out} and {out_dir}/ in {seconds:.1f} s", flush=True)
    return metrics


def keyword_scores(
    root: Beat2Root, dm: Beat2DataModule, clips: Sequence[ClipData], motions: dict[str, list[Motion]], body: nn.Module
) -> dict[str, dict[str, Any]]:
    """Keyword-gesture accuracy of every row (`semtalk.metrics.keyword_gesture`), the classifier fitted on the
    ground truth's training-split segments; empty when the split's clips have no keyword segments."""
    segments = root_segments(root, [c.clip_id for c in clips], frames={c.clip_id: c.frames for c in clips})
    if not segments:
        return {}
    try:
        classifier = fit_on_root(root, body, dm.train_splits, dm.speakers)
    except ValueError as exc:  # a training split with fewer than two keyword classes
        print(f"[report] no keyword-gesture accuracy: {exc}", flush=True)
        return {}
    held = held_out_keywords(root)
    return {
        name: score_motions(
            classifier, body, {c.clip_id: (m.poses, c.betas) for c, m in zip(clips, rows)}, segments, held
        )  # fmt: skip
        for name, rows in motions.items()
    }


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory in the heap instead of returning it to the kernel.

    Scoring allocates and frees arrays of about 100 MB per clip (face meshes, their float64 copies); by default
    glibc serves each from a fresh mapping and unmaps it on free, so every pass pays page faults on every page,
    which costs more than the arithmetic. A no-op where the C library has no `mallopt` (not glibc)."""
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_max = -1, -4
    mallopt(m_mmap_max, 0)
    mallopt(m_trim_threshold, 2**31 - 1)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-config", default="configs/data/embedded.yaml", help="data YAML of the stages")
    ap.add_argument("--checkpoints", default="checkpoints", help="folder with base.ckpt, sparse.ckpt, ablation/")
    ap.add_argument("--out", default="outputs/demo/demo.md", help="the markdown report; assets in <out without .md>/")
    ap.add_argument("--split", default="test", choices=("val", "test"))
    ap.add_argument("--fgd-encoder", default=None, help="FGD encoder weights (default: a random-init encoder)")
    ap.add_argument("--timing", default=None, help="JSON of the main job's step times")
    ap.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes that score rows (1: in turn)"
    )
    args = ap.parse_args(argv)
    keep_freed_memory()
    build_report(args.data_config, args.checkpoints, args.out, args.split, args.fgd_encoder, args.timing, args.workers)


if __name__ == "__main__":
    main()
