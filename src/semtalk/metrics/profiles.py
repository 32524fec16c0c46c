"""The two metric profiles and the sequence-length bookkeeping of the BEAT2 test protocol.

`semtalk2024` reproduces every behaviour of the evaluation code that produced SemTalk's (and EMAGE's)
published BEAT2 numbers, quirks included; `corrected` fixes those quirks. Numbers from the two
profiles are not interchangeable: compare against the paper with `semtalk2024` only.

| aspect             | `semtalk2024`                                  | `corrected`                          |
|--------------------|------------------------------------------------|--------------------------------------|
| sequence length    | generated length (whole s -> x8 -> 60k+4)       | min(len(pred), len(gt))              |
| Frechet distance   | sqrtm without offset, 1e-6 I only on failure    | symmetric eigen-decomposition, exact |
| BC motion input    | |x - mean(x)| (the Diversity pass mutated it)   | raw joint positions                  |
| BC speed threshold | tested at the uncropped index (60-frame offset) | tested at the right frame            |
| BC audio window    | [2 s, n/30 s]                                  | [2 s, n/30 - 2 s]                    |
| BC audio loading   | 16 kHz -> 22.05 kHz -> 16 kHz round trip        | 16 kHz as is                         |
| LVD                | L1 vertex position error over frames 1..n-1     | sum|dpred - dgt| / ((n-1) * 31,425)  |

Both profiles share: BC sigma 0.3 s, argrelextrema order 7, threshold 0.3, 60-frame margins, the 13
upper-body joints, per-file weight n - 120; FGD windows of 32 frames; face MSE over the whole mesh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from semtalk.body.joints import BC_JOINTS, FPS

ProfileName = Literal["semtalk2024", "corrected"]
PROFILE_NAMES: tuple[str, ...] = ("semtalk2024", "corrected")

#: Frames per FGD feature window (the encoder emits one 240-d vector per 16 frames).
FGD_WINDOW = 32
#: Seed frames and window hop of the 2024 autoregressive generation loop.
SEED_FRAMES = 4
GENERATION_HOP = 60


@dataclass(frozen=True)
class MetricProfile:
    """How every metric is computed. See the module docstring for the two named profiles."""

    name: str
    length_rule: Literal["generated", "min"]
    frechet: Literal["semtalk2024", "corrected"]
    bc_on_l1_deviation: bool
    bc_mask_at_uncropped_index: bool
    bc_audio_window: Literal["to_end", "symmetric"]
    bc_audio_roundtrip_22050: bool
    lvd: Literal["semtalk2024", "corrected"]
    bc_threshold: float = 0.3
    bc_sigma: float = 0.3
    bc_order: int = 7
    bc_margin: int = 60
    bc_joints: tuple[int, ...] = BC_JOINTS
    fps: int = FPS
    fgd_window: int = FGD_WINDOW


SEMTALK2024 = MetricProfile(
    name="semtalk2024",
    length_rule="generated",
    frechet="semtalk2024",
    bc_on_l1_deviation=True,
    bc_mask_at_uncropped_index=True,
    bc_audio_window="to_end",
    bc_audio_roundtrip_22050=True,
    lvd="semtalk2024",
)

CORRECTED = MetricProfile(
    name="corrected",
    length_rule="min",
    frechet="corrected",
    bc_on_l1_deviation=False,
    bc_mask_at_uncropped_index=False,
    bc_audio_window="symmetric",
    bc_audio_roundtrip_22050=False,
    lvd="corrected",
)

PROFILES: dict[str, MetricProfile] = {p.name: p for p in (SEMTALK2024, CORRECTED)}


def get_profile(profile: str | MetricProfile) -> MetricProfile:
    """Look a profile up by name (`"semtalk2024"` or `"corrected"`); profiles pass through."""
    if isinstance(profile, MetricProfile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown metric profile {profile!r}; choose one of {', '.join(PROFILE_NAMES)}") from None


def generated_length(
    motion_frames: int,
    audio_seconds: float | None = None,
    face_frames: int | None = None,
    fps: int = FPS,
) -> int:
    """Frames the 2024 protocol evaluates for one test file.

    Whole seconds of the shortest modality -> frames -> down to a multiple of 8 -> the length the
    autoregressive loop emits, `((n - 4) // 60) * 60 + 4`. Example: 1906 motion frames with 64.10 s of
    audio -> 63 s -> 1890 -> 1888 -> 1864.
    """
    seconds = [motion_frames // fps]
    if face_frames is not None:
        seconds.append(face_frames // fps)
    if audio_seconds is not None:
        seconds.append(math.floor(audio_seconds))
    n = min(seconds) * fps
    n -= n % 8
    rounds = (n - SEED_FRAMES) // GENERATION_HOP
    if rounds < 1:
        raise ValueError(
            f"a sequence of {motion_frames} motion frames"
            + (f" and {audio_seconds:.2f} s of audio" if audio_seconds is not None else "")
            + f" is too short for the 2024 protocol, which needs at least {SEED_FRAMES + GENERATION_HOP} frames"
        )
    return rounds * GENERATION_HOP + SEED_FRAMES


def fgd_length(n: int, window: int = FGD_WINDOW) -> int:
    """Frames fed to the FGD encoder: `n` cut down to a multiple of `window` (32)."""
    return n - n % window


def evaluation_length(
    profile: str | MetricProfile,
    gt_frames: int,
    pred_frames: int,
    audio_seconds: float | None = None,
) -> int:
    """Frames scored for one file under `profile`.

    `semtalk2024`: the generated length of the ground truth (`generated_length`); the prediction must be
    at least that long. `corrected`: `min(pred_frames, gt_frames)`.
    """
    prof = get_profile(profile)
    if prof.length_rule == "min":
        return min(gt_frames, pred_frames)
    n = generated_length(gt_frames, audio_seconds, fps=prof.fps)
    if pred_frames < n:
        raise ValueError(
            f"the prediction has {pred_frames} frames but the semtalk2024 protocol scores {n} "
            f"(ground truth {gt_frames} frames); generate the full length or use profile='corrected'"
        )
    return n
