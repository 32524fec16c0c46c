"""Motion from speech, by fixed rules that a model can learn and a test can check.

Given the 16 kHz speech of a clip, its keyword events and the speaker's style, every frame `i` (time
`i / 30` s) gets SMPL-X parameters built from these rules:

* **Loudness -> face.** `loudness[i]` is the RMS of the 1,024 samples centred on frame `i`, divided by
  the clip's 95th-percentile RMS, clipped to [0, 1.3], raised to the power 0.8 and smoothed with a
  symmetric Gaussian (sigma 0.8 frames). The jaw opens `jaw_rest + jaw_gain * loudness[i]` radians about
  its x axis and the expressions move by `loudness[i] * EXPRESSION_LOADING`. The lag
  (`FACE_LAG_FRAMES`) is **0 frames**: the face moves in synchrony with the sound, by construction.
* **Onsets -> beats.** Audio onsets are found with `librosa.onset.onset_detect(sr=16000,
  hop_length=512)` (the detector of the BEAT2 beat-consistency metric). Speech has an onset on almost
  every syllable, so the beats are the strongest ones: greedily by onset strength, each kept onset at
  least `BEAT_MIN_GAP` = 0.3 s from the stronger kept ones, and only where the loudness exceeds 0.15
  (about two beats per second). A phase that is exactly `2 pi k` at the k-th beat (monotone cubic in
  between) drives each wrist around a small loop in the plane of the speaker's stroke direction: one
  loop (one stroke) per beat, reaching its lowest and slowest point on each beat onset. The loop is a
  limacon (`LOOP_K` = 0.4) whose slowest point still moves at 3/7 of its fastest, so every beat is a
  strict local speed minimum of a moving hand, which is what the beat-consistency metric detects. The
  loop size is `beat_amp * hand_gain * (0.35 + 0.65 * loudness at the beat)`, fading out over 0.3 s
  before and after each phrase (beats less than 1 s apart). The wrist flicks, the elbow swings out, the
  fingers open, and the collars, spine, pelvis and head follow the same loop (the head dips on the beat).
* **Speech activity -> gesture space.** While speaking, the hands rise from the rest pose (lower and
  nearer the body) to the speaker's ready pose in front of the belly; they sink back in long pauses.
* **Keywords -> semantic gestures** (`gestures.py`): on its frames a semantic gesture replaces the
  beat-driven arm pose (weight 1 during stroke and hold), so the semantic signal dominates.
* **Lower body.** Slow weight shifts (lateral pelvis shift with hip roll), slow pelvis yaw and sway; the
  legs follow by inverse kinematics so that the ankles stay planted with flat feet. The spine partly
  counter-rotates the pelvis, leans with the speaker's style and breathes.
* Slow smooth drifts (Gaussian-filtered noise) on the head, arms, eyes and expressions keep the motion
  from being mechanical; the expression drift has four modes through a fixed loading (real expression
  coefficients are strongly correlated). Everything is smooth: there are no jumps between frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import torch
from scipy.interpolate import PchipInterpolator
from scipy.ndimage import gaussian_filter1d

from semtalk.body.joints import FPS, NUM_EXPRESSIONS, NUM_JOINTS, SAMPLE_RATE
from semtalk.body.rotations import matrix_to_rot6d, rot6d_to_matrix
from semtalk.synth.gestures import ArmTargets, GestureEvent, envelope, finger_pose, render_gesture
from semtalk.synth.skeleton import (
    REST_JOINTS,
    aa_to_mat,
    forward_kinematics,
    left_arm_ik,
    leg_ik,
    mat_to_aa,
    mirror_axis_angle,
)
from semtalk.synth.style import SpeakerStyle

RMS_WINDOW = 1024
ONSET_HOP = 512
BEAT_MIN_GAP = 0.3
LOOP_K = 0.4
PHRASE_GAP = 1.0
PHRASE_RAMP = 0.3
#: frames by which the face follows the loudness (0: in synchrony)
FACE_LAG_FRAMES = 0
#: expression change per unit loudness (the first five FLAME components; the rest do not follow it)
EXPRESSION_LOADING = np.zeros(NUM_EXPRESSIONS)
EXPRESSION_LOADING[:5] = (1.6, -0.6, 0.4, 0.3, -0.25)
#: the slow expression drift: `EXPRESSION_DRIFT_RANK` smooth noise channels through a fixed loading, since real
#: FLAME expression coefficients move together (a few modes carry most of their variance)
EXPRESSION_DRIFT_RANK = 4
_DRIFT_SCALE = np.where(np.arange(NUM_EXPRESSIONS) < 10, 0.15, np.where(np.arange(NUM_EXPRESSIONS) < 50, 0.04, 0.01))
EXPRESSION_DRIFT_LOADING = (
    np.random.default_rng(7).standard_normal((EXPRESSION_DRIFT_RANK, NUM_EXPRESSIONS))
    * _DRIFT_SCALE
    / np.sqrt(EXPRESSION_DRIFT_RANK)
)
STANDING_TRANS_Y = 1.285


@dataclass
class AudioFeatures:
    """Frame-rate features of a clip's speech.

    Attributes:
        rms: `(T,)` RMS of the 1,024 samples centred on each frame.
        loudness: `(T,)` normalised, smoothed loudness in [0, 1.3].
        activity: `(T,)` speech activity in [0, 1] (smoothed).
        onsets: `(K,)` all audio onset times in seconds (librosa, BEAT2 beat-consistency settings).
        beats: `(B,)` the onsets that drive beat strokes (see `select_beats`), seconds.
        beat_energy: `(B,)` local loudness at each beat onset, in [0, 1].
    """

    rms: np.ndarray
    loudness: np.ndarray
    activity: np.ndarray
    onsets: np.ndarray
    beats: np.ndarray
    beat_energy: np.ndarray


@dataclass
class Motion:
    """One clip's motion in BEAT2 layout.

    Attributes:
        poses: `(T, 165)` float32 axis-angle of the 55 SMPL-X joints.
        trans: `(T, 3)` float64 root translation (metres, y up).
        expressions: `(T, 100)` float64 FLAME expression coefficients.
        semantic_weight: `(T,)` weight of semantic gestures per frame (max over both arms).
        beat: `(T,)` the beat hits (`Rhythm.hit`): 1 at each beat onset's stroke, 0 between beats.
    """

    poses: np.ndarray
    trans: np.ndarray
    expressions: np.ndarray
    semantic_weight: np.ndarray
    beat: np.ndarray


def frame_rms(audio: np.ndarray, n_frames: int, sr: int = SAMPLE_RATE, fps: int = FPS) -> np.ndarray:
    """RMS of the `RMS_WINDOW` samples centred on each frame time `i / fps`: `(N,) -> (n_frames,)`."""
    half = RMS_WINDOW // 2
    padded = np.pad(np.asarray(audio, dtype=np.float64), (half, half + RMS_WINDOW))
    centres = np.round(np.arange(n_frames) * sr / fps).astype(np.int64)
    idx = centres[:, None] + np.arange(RMS_WINDOW)[None, :]
    idx = np.minimum(idx, len(padded) - 1)
    return np.sqrt(np.mean(padded[idx] ** 2, axis=1))


def delayed(x: np.ndarray, lag: int) -> np.ndarray:
    """`x` delayed by `lag` frames along axis 0 (the first value repeated at the start)."""
    if lag <= 0:
        return x
    return np.concatenate((np.repeat(x[:1], lag, axis=0), x[:-lag]), axis=0)


def select_beats(onsets: np.ndarray, strength: np.ndarray, min_gap: float = BEAT_MIN_GAP) -> np.ndarray:
    """Indices of the onsets that get a beat stroke: greedily the strongest (ties: the earlier), each at
    least `min_gap` seconds from every stronger kept one; returned in time order."""
    order = sorted(range(len(onsets)), key=lambda k: (-float(strength[k]), k))
    kept: list[int] = []
    for k in order:
        if all(abs(onsets[k] - onsets[j]) >= min_gap for j in kept):
            kept.append(k)
    return np.array(sorted(kept), dtype=np.int64)


def audio_features(audio: np.ndarray, n_frames: int) -> AudioFeatures:
    """Loudness, activity, onsets and beat onsets of 16 kHz speech (rules in the module docstring)."""
    rms = frame_rms(audio, n_frames)
    ref = max(float(np.percentile(rms, 95)), 1e-5)
    loud = np.clip(rms / ref, 0.0, 1.3) ** 0.8
    loud = np.clip(gaussian_filter1d(loud, 0.8, mode="nearest"), 0.0, 1.3)
    speaking = (rms > 0.08 * ref).astype(np.float64)
    activity = np.clip(1.6 * gaussian_filter1d(speaking, 0.5 * FPS, mode="nearest"), 0.0, 1.0)
    activity = gaussian_filter1d(activity, 0.2 * FPS, mode="nearest")
    y = np.asarray(audio, dtype=np.float32)
    envelope = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE, hop_length=ONSET_HOP)
    frames = librosa.onset.onset_detect(onset_envelope=envelope, sr=SAMPLE_RATE, hop_length=ONSET_HOP)
    onsets = librosa.frames_to_time(frames, sr=SAMPLE_RATE, hop_length=ONSET_HOP)
    keep = onsets < (n_frames - 1) / FPS
    onsets, strength = onsets[keep], envelope[frames[keep]]
    energy = np.array([loud[int(round(t * FPS)) : int(round(t * FPS)) + 5].max() for t in onsets])
    beats = select_beats(onsets, strength)
    beats = beats[energy[beats] > 0.15] if len(beats) else beats
    return AudioFeatures(rms, loud, activity, onsets, onsets[beats], np.clip(energy[beats], 0.0, 1.0))


@dataclass
class Rhythm:
    """The beat rhythm: a phase that is `2 pi k` at the k-th beat onset and an amplitude envelope.

    Attributes:
        phase: `(T,)` radians, increasing; `2 pi k` exactly at beat k.
        amplitude: `(T,)` in [0, 1]: `0.35 + 0.65 * loudness` at the beats, 0 outside beat phrases.
    """

    phase: np.ndarray
    amplitude: np.ndarray

    def loop(self) -> np.ndarray:
        """`(T, 2)` position on the beat loop, scaled by the amplitude: (along, across) in about [-1, 1].

        The loop is a limacon `r = 1 - LOOP_K cos(phase)`: along the stroke direction it is at +1 (the
        lowest point of the stroke) at every beat, where it is also slowest (a speed minimum of
        `(1 - LOOP_K) / (1 + LOOP_K)` of the fastest point, never zero).
        """
        r = 1.0 - LOOP_K * np.cos(self.phase)
        along = r * np.cos(self.phase) + LOOP_K
        across = r * np.sin(self.phase)
        return self.amplitude[:, None] * np.stack((along, across), -1)

    @property
    def hit(self) -> np.ndarray:
        """`(T,)` in [0, 1]: 1 at the beat hits, 0 halfway between beats and outside phrases."""
        return self.amplitude * 0.5 * (1.0 + np.cos(self.phase))


def rhythm(feats: AudioFeatures, n_frames: int) -> Rhythm:
    """Phase-lock a loop to the beat onsets (monotone cubic phase through `2 pi k` at beat k).

    Beats closer than `PHRASE_GAP` form a phrase; the amplitude interpolates the beat heights linearly and
    ramps to 0 over `PHRASE_RAMP` seconds before a phrase's first and after its last beat.
    """
    t = np.arange(n_frames) / FPS
    beats, energy = feats.beats, feats.beat_energy
    if len(beats) == 0:
        return Rhythm(np.zeros(n_frames), np.zeros(n_frames))
    gaps = np.diff(beats)
    first_gap = float(np.clip(gaps[0] if len(gaps) else 0.5, PHRASE_RAMP, 0.6))
    last_gap = float(np.clip(gaps[-1] if len(gaps) else 0.5, PHRASE_RAMP, 0.6))
    anchor_t = np.concatenate(([beats[0] - first_gap], beats, [beats[-1] + last_gap]))
    anchor_phase = 2.0 * np.pi * np.arange(-1, len(beats) + 1)
    phase = PchipInterpolator(anchor_t, anchor_phase, extrapolate=False)(t)
    phase = np.where(t < anchor_t[0], anchor_phase[0], np.where(t > anchor_t[-1], anchor_phase[-1], phase))
    level = np.interp(t, beats, 0.35 + 0.65 * energy)
    mask = np.zeros(n_frames)
    start = 0
    for k in range(1, len(beats) + 1):
        if k == len(beats) or beats[k] - beats[k - 1] > PHRASE_GAP:
            a, b = beats[start], beats[k - 1]
            mask = np.maximum(mask, envelope(t, a - PHRASE_RAMP, a, b, b + PHRASE_RAMP))
            start = k
    amplitude = gaussian_filter1d(level * mask, 1.0, mode="nearest")
    return Rhythm(phase, np.clip(amplitude, 0.0, 1.0))


def smooth_noise(rng: np.random.Generator, n: int, dims: int, sigma_s: float) -> np.ndarray:
    """Gaussian-filtered white noise with unit standard deviation: `(n, dims)`."""
    sigma = max(sigma_s * FPS, 0.5)
    pad = int(4 * sigma) + 1
    white = rng.standard_normal((n + 2 * pad, dims))
    out = gaussian_filter1d(white, sigma, axis=0, mode="wrap")[pad : pad + n]
    return out * np.sqrt(2.0 * np.sqrt(np.pi) * sigma)


def _weight_shift(rng: np.random.Generator, n: int, every: tuple[float, float]) -> np.ndarray:
    t = np.arange(n) / FPS
    level = float(rng.uniform(-1.0, 1.0))
    out = np.full(n, level)
    switch = float(rng.uniform(0.5, every[1]))
    while switch < n / FPS:
        new = -np.sign(level or 1.0) * float(rng.uniform(0.3, 1.0))
        ramp = np.clip((t - switch) / 1.0, 0.0, 1.0)
        out += (new - level) * ramp * ramp * (3.0 - 2.0 * ramp)
        level = new
        switch += float(rng.uniform(*every))
    return out


def _euler(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """R = R_y(yaw) R_x(pitch) R_z(roll): `(n,)` x 3 -> `(n, 3, 3)`."""
    zeros = np.zeros_like(pitch)
    ry = aa_to_mat(np.stack((zeros, yaw, zeros), -1))
    rx = aa_to_mat(np.stack((pitch, zeros, zeros), -1))
    rz = aa_to_mat(np.stack((zeros, zeros, roll), -1))
    return ry @ rx @ rz


def _lower_body(
    style: SpeakerStyle, rng: np.random.Generator, n: int, poses: np.ndarray, loop: np.ndarray
) -> np.ndarray:
    """Fill pelvis, spine1, hips, knees, ankles, feet and return the translation `(n, 3)`.

    `loop` `(n, 2)` is the beat loop (`Rhythm.loop`): pelvis and spine1 follow it very slightly."""
    shift = _weight_shift(rng, n, style.shift_every)
    drift = smooth_noise(rng, n, 5, 2.0)
    t = np.arange(n) / FPS
    pitch = 0.012 * drift[:, 0] + 0.004 * loop[:, 0]
    yaw = 0.045 * drift[:, 1] + 0.015 * shift
    roll = 0.035 * shift + 0.003 * loop[:, 1]
    r_pelvis = _euler(pitch, yaw, roll)
    poses[:, 0] = mat_to_aa(r_pelvis)
    pelvis_world = np.stack(
        (
            style.shift_amp * shift + 0.004 * drift[:, 2],
            REST_JOINTS[0, 1] + STANDING_TRANS_Y - 0.004 * shift**2 + 0.0015 * np.sin(2 * np.pi * 0.25 * t),
            0.006 * drift[:, 3],
        ),
        axis=-1,
    )
    pelvis_world[:, 0] += REST_JOINTS[0, 0]
    pelvis_world[:, 2] += REST_JOINTS[0, 2]
    trans = pelvis_world - REST_JOINTS[0]
    # planted ankles: the legs of a neutral stance (hips flexed 0.075, knees 0.15) at the standing height
    neutral = np.zeros((1, NUM_JOINTS, 3))
    neutral[0, 1, 0] = neutral[0, 2, 0] = -0.075
    neutral[0, 4, 0] = neutral[0, 5, 0] = 0.15
    stand = forward_kinematics(neutral, np.array([[0.0, STANDING_TRANS_Y, 0.0]]))[0]
    for left, (hip, knee, ankle, foot) in ((True, (1, 4, 7, 10)), (False, (2, 5, 8, 11))):
        side = 1.0 if left else -1.0
        target = stand[ankle] + np.array([side * style.stance, 0.0, 0.0])
        hip_world = pelvis_world + (r_pelvis @ (REST_JOINTS[hip] - REST_JOINTS[0]))
        rots = leg_ik(hip_world, r_pelvis, np.broadcast_to(target, hip_world.shape), left)
        poses[:, hip] = mat_to_aa(rots[:, 0])
        poses[:, knee] = mat_to_aa(rots[:, 1])
        foot_world = aa_to_mat(np.array([0.0, side * style.toe_out, 0.0]))
        chain = r_pelvis @ rots[:, 0] @ rots[:, 1]
        poses[:, ankle] = mat_to_aa(np.swapaxes(chain, -1, -2) @ foot_world)
        poses[:, foot] = 0.0
    poses[:, 3] = np.stack((0.4 * style.lean - 0.5 * pitch + 0.008 * loop[:, 0], -0.4 * yaw, -0.6 * roll), -1)
    return trans


def _accumulate(layers: list, n: int) -> dict[str, dict[str, np.ndarray]]:
    """Weighted sums of the gesture targets per arm."""
    acc: dict[str, dict[str, np.ndarray]] = {}
    for side in ("left", "right"):
        acc[side] = {
            "w": np.zeros(n),
            "pos": np.zeros((n, 3)),
            "swivel": np.zeros(n),
            "hand": np.zeros((n, 6)),
            "fingers": np.zeros((n, 15, 3)),
        }
    for layer in layers:
        f, w = layer.frames, layer.weight
        for side, tg in layer.arms.items():
            a = acc[side]
            a["w"][f] += w
            a["pos"][f] += w[:, None] * tg.pos
            a["swivel"][f] += w * tg.swivel
            a["hand"][f] += w[:, None] * matrix_to_rot6d(torch.as_tensor(tg.hand)).numpy()
            a["fingers"][f] += w[:, None, None] * tg.fingers
    return acc


def _blend(base: ArmTargets, acc: dict[str, np.ndarray]) -> tuple[ArmTargets, np.ndarray]:
    """Blend the base arm targets towards the (weight-averaged) gesture targets by the gesture weight.

    Positions, swivel and finger angles are interpolated linearly; the hand orientation is slerped from the
    base orientation, so it turns at a rate proportional to the weight's rate of change.
    """
    total = acc["w"]
    w = np.clip(total, 0.0, 1.0)
    has = total > 1e-9
    safe = np.where(has, total, 1.0)

    def mean(b: np.ndarray, s: np.ndarray) -> np.ndarray:
        shape = (-1,) + (1,) * (s.ndim - 1)
        return np.where(has.reshape(shape), s / safe.reshape(shape), b)

    def mix(b: np.ndarray, s: np.ndarray) -> np.ndarray:
        ww = w.reshape((-1,) + (1,) * (b.ndim - 1))
        return (1.0 - ww) * b + ww * mean(b, s)

    gesture_hand = rot6d_to_matrix(torch.as_tensor(mean(np.zeros((len(w), 6)), acc["hand"]))).numpy()
    gesture_hand = np.where(has[:, None, None], gesture_hand, base.hand)
    relative = mat_to_aa(np.swapaxes(base.hand, -1, -2) @ gesture_hand)
    hand = base.hand @ aa_to_mat(w[:, None] * relative)
    blended = ArmTargets(
        pos=mix(base.pos, acc["pos"]),
        swivel=mix(base.swivel, acc["swivel"]),
        hand=hand,
        fingers=mix(base.fingers, acc["fingers"]),
    )
    return blended, w


def motion_from_speech(
    audio: np.ndarray,
    n_frames: int,
    events: list[GestureEvent],
    style: SpeakerStyle,
    rng: np.random.Generator,
) -> Motion:
    """Build a clip's motion from its 16 kHz speech and keyword events (rules in the module docstring)."""
    n = n_frames
    feats = audio_features(audio, n)
    rhy = rhythm(feats, n)
    loop = rhy.loop()  # (n, 2): along / across the stroke direction
    hit = rhy.hit
    across_dir = np.cross(style.beat_dir, np.array([1.0, 0.0, 0.0]))
    across_dir /= np.linalg.norm(across_dir)
    poses = np.zeros((n, NUM_JOINTS, 3))
    trans = _lower_body(style, rng, n, poses, loop)

    # ---- arms: beat-driven base pose, then semantic gestures on top
    layers = [render_gesture(e, FPS, n, style.dominant, style.tempo, style.size) for e in events]
    layers = [layer for layer in layers if layer is not None]
    acc = _accumulate(layers, n)
    semantic = np.zeros(n)
    arm_aa: dict[str, tuple[np.ndarray, ...]] = {}
    for s, side in enumerate(("left", "right")):
        gain = style.hand_gain[s]
        drift = smooth_noise(rng, n, 4, 1.2)
        pos = (
            style.rest_pos
            + feats.activity[:, None] * (style.ready_pos - style.rest_pos)
            + style.beat_amp * gain * (loop[:, :1] * style.beat_dir + loop[:, 1:] * across_dir)
            + 0.006 * style.drift * drift[:, :3]
        )
        swivel = style.swivel + 0.1 * feats.activity + 0.03 * drift[:, 3] + 0.25 * gain * loop[:, 0]
        wrist = np.tile(style.wrist_rest, (n, 1))
        wrist[:, 1] += style.flick * gain * loop[:, 0]
        fingers = finger_pose(np.clip(style.finger_curl[None, :] - 0.15 * gain * hit[:, None], -0.1, None), 0.05)
        sh, el, wr = left_arm_ik(pos, swivel, wrist=wrist)
        hand = aa_to_mat(sh) @ aa_to_mat(el) @ aa_to_mat(wr)
        base = ArmTargets(pos=pos, swivel=swivel, hand=hand, fingers=fingers)
        final, w = _blend(base, acc[side])
        semantic = np.maximum(semantic, w)
        sh, el, wr = left_arm_ik(final.pos, final.swivel, hand=final.hand)
        collar = np.zeros((n, 3))
        collar[:, 2] = 0.02 * gain * loop[:, 0] * (1.0 - w) + 0.01 * drift[:, 0]
        arm_aa[side] = (collar, sh, el, wr, final.fingers)
    for side, (collar_j, sh_j, el_j, wr_j, fing0) in (("left", (13, 16, 18, 20, 25)), ("right", (14, 17, 19, 21, 40))):
        collar, sh, el, wr, fingers = arm_aa[side]
        if side == "right":
            collar, sh, el, wr = (mirror_axis_angle(x) for x in (collar, sh, el, wr))
            fingers = mirror_axis_angle(fingers)
        poses[:, collar_j], poses[:, sh_j], poses[:, el_j], poses[:, wr_j] = collar, sh, el, wr
        poses[:, fing0 : fing0 + 15] = fingers

    # ---- spine, neck, head
    drift = smooth_noise(rng, n, 6, 1.5)
    t = np.arange(n) / FPS
    breath = 0.012 * np.sin(2 * np.pi * 0.22 * t + rng.uniform(0, 2 * np.pi))
    twist = 0.02 * (style.hand_gain[0] - style.hand_gain[1]) * loop[:, 1] + 0.02 * drift[:, 0]
    sway = 0.012 * loop  # the torso joins each beat a little
    poses[:, 6] = np.stack(
        (0.3 * style.lean + breath + 0.02 * feats.activity + sway[:, 0], 0.5 * twist, 0.01 * drift[:, 1] + sway[:, 1]),
        -1,
    )
    poses[:, 9] = np.stack((0.3 * style.lean + sway[:, 0], 0.5 * twist, sway[:, 1]), -1)
    head_gesture = np.zeros((n, 3))
    for layer in layers:
        head_gesture[layer.frames] += layer.weight[:, None] * layer.head
    nod = style.nod * (1.0 - semantic)[:, None] * loop  # head dips on the hits
    head = np.stack(
        (
            nod[:, 0] + 0.04 * style.drift * drift[:, 2] - 0.5 * style.lean,
            0.3 * nod[:, 1] + 0.06 * style.drift * drift[:, 3],
            0.025 * drift[:, 4],
        ),
        -1,
    )
    head += head_gesture
    poses[:, 12] = 0.35 * head
    poses[:, 15] = 0.65 * head

    # ---- face: jaw and expressions follow loudness at lag 0; eyes drift slowly
    face_drive = delayed(feats.loudness, FACE_LAG_FRAMES)
    jaw_open = style.jaw_rest + style.jaw_gain * face_drive
    poses[:, 22] = np.stack((jaw_open, 0.004 * drift[:, 5], np.zeros(n)), -1)
    gaze = smooth_noise(rng, n, 2, 0.7)
    eyes = np.stack((0.02 + 0.03 * gaze[:, 0], 0.04 * gaze[:, 1] - 0.3 * head[:, 1], np.zeros(n)), -1)
    poses[:, 23] = eyes
    poses[:, 24] = eyes
    expr_noise = smooth_noise(rng, n, EXPRESSION_DRIFT_RANK, 0.8) @ EXPRESSION_DRIFT_LOADING
    gain = style.jaw_gain / 0.21
    expressions = style.expr_bias + face_drive[:, None] * (gain * EXPRESSION_LOADING) + expr_noise
    return Motion(
        poses=poses.reshape(n, NUM_JOINTS * 3).astype(np.float32),
        trans=trans.astype(np.float64),
        expressions=expressions.astype(np.float64),
        semantic_weight=semantic,
        beat=hit,
    )
