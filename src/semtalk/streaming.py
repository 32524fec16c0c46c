"""Streaming generation: audio in chunks -> motion in chunks, with the 4-frame seed carried across windows.

Three stages, each keeping only what it still needs (memory is bounded by the settings, not the input length):

1. `AudioFeatureStream` cuts the audio into feature blocks of `BlockPlan.block_frames` frames and runs the
   front end on each block with `left_frames` of past audio and `right_frames` of look-ahead, keeping the frames
   of the block itself. The result depends only on the block grid, never on how the audio was pushed.
2. `MotionEngine` runs generation window k (frames `[60 k, 60 k + 64)`) as soon as its features are there,
   seeded with the last 4 decoded frames of window k - 1, exactly as `semtalk.generation` does offline.
3. It then decodes the codes to SMPL-X block by block with enough context on both sides of the emitted frames for
   the tokenizer decoders and the global-motion net to give the values a whole-sequence decode gives (the context
   is the decoders' receptive field; `decode_context` smaller trades exactness for latency). Translation is
   integrated across blocks from the carried last position.

So for a given `BlockPlan` the output is the offline output (`semtalk.inference.generate_audio` runs this engine
over the file's blocks), whatever the push sizes. Plans differ in their features: short blocks (low latency) see
less audio context than the offline plan's 18 s blocks, and the generated motion differs accordingly.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from semtalk.body.joints import FPS, SAMPLE_RATE
from semtalk.body.parts import merge_parts, parts_to_latent_all
from semtalk.cuda_graphs import GraphedFunction
from semtalk.data.beat2 import WordInterval
from semtalk.features.vocab import UNK
from semtalk.generation import num_windows
from semtalk.inference import Emphasis, Frontend, Pipeline, WordTrack

SAMPLES_PER_3_FRAMES = SAMPLE_RATE // 10  # 3 frames at 30 fps = 1600 samples at 16 kHz


def frame_sample(frame: int) -> int:
    """First sample of frame `frame` (exact for multiples of 3 frames)."""
    return frame * SAMPLE_RATE // FPS


def frames_in(samples: int) -> int:
    """Whole 30 fps frames in `samples` samples at 16 kHz."""
    return samples * FPS // SAMPLE_RATE


@dataclass(frozen=True)
class BlockPlan:
    """The feature block grid: blocks of `block_frames`, each extracted with `left_frames` of past audio and
    `right_frames` of look-ahead (all multiples of 3 frames, i.e. whole 0.1 s)."""

    block_frames: int = 600
    left_frames: int = 60
    right_frames: int = 15

    def __post_init__(self) -> None:
        for name in ("block_frames", "left_frames", "right_frames"):
            v = getattr(self, name)
            if v < 0 or v % 3 or (name == "block_frames" and v == 0):
                raise ValueError(f"BlockPlan.{name}={v}: use a positive multiple of 3 frames (0.1 s)")


#: `semtalk generate`: 18 s blocks with 1.5 s of left and 0.5 s of right context, so that each segment is exactly
#: one 20 s encoder chunk (the extractors' `chunk_seconds`, as the training cache ran them)
OFFLINE_PLAN = BlockPlan(540, 45, 15)
#: streaming default: 1 s blocks, 3 s of left and 0.2 s of right context
LOW_LATENCY_PLAN = BlockPlan(30, 90, 6)


def offline_plan(spec) -> BlockPlan:
    """The offline block plan for a front end: segments (block + context) as long as the shortest encoder chunk
    (`chunk_seconds` of HuBERT and emotion2vec, 20 s by default), so no encoder splits a segment again."""
    chunk = min(float((spec.config.get(n) or {}).get("chunk_seconds", 20.0)) for n in ("hubert", "emotion"))
    total = int(chunk * 10) * 3  # whole 0.1 s steps, in frames
    left, right = min(45, total // 6 // 3 * 3), min(15, total // 12 // 3 * 3)
    block = max(3, total - left - right)
    return BlockPlan(block, left, right)


class AudioFeatureStream:
    """Per-frame audio features of a growing 16 kHz signal, one block at a time (see `BlockPlan`)."""

    def __init__(self, frontend: Frontend, plan: BlockPlan) -> None:
        self.frontend, self.plan = frontend, plan
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0  # absolute sample index of buffer[0]
        self.samples = 0
        self.next_frame = 0
        self.finished = False

    def push(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """Add samples; return the features of the blocks completed by them (possibly zero frames)."""
        if self.finished:
            raise RuntimeError("push after finish()")
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        self.buffer = np.concatenate((self.buffer, audio))
        self.samples += len(audio)
        out: list[dict[str, np.ndarray]] = []
        p = self.plan
        while frame_sample(self.next_frame + p.block_frames + p.right_frames) <= self.samples:
            out.append(self._extract(self.next_frame, self.next_frame + p.block_frames))
        return _concat(out)

    def finish(self) -> dict[str, np.ndarray]:
        """Features of the frames left after the last whole block; the stream then knows its length."""
        self.finished = True
        total = frames_in(self.samples)
        out = []
        while self.next_frame < total:
            out.append(self._extract(self.next_frame, min(self.next_frame + self.plan.block_frames, total)))
        return _concat(out)

    @property
    def total_frames(self) -> int | None:
        return frames_in(self.samples) if self.finished else None

    def _extract(self, f0: int, f1: int) -> dict[str, np.ndarray]:
        seg_f0 = max(0, f0 - self.plan.left_frames)
        s0 = frame_sample(seg_f0)
        s1 = min(self.samples, frame_sample(f1 + self.plan.right_frames))
        seg = self.buffer[s0 - self.buffer_start : s1 - self.buffer_start]
        feats = self.frontend.audio_features(seg, frames_in(len(seg)))
        out = {k: v[f0 - seg_f0 : f1 - seg_f0] for k, v in feats.items()}
        self.next_frame = f1
        keep_from = frame_sample(max(0, f1 - self.plan.left_frames))
        if keep_from > self.buffer_start:
            self.buffer = self.buffer[keep_from - self.buffer_start :].copy()
            self.buffer_start = keep_from
        return out


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def decoder_radius_tokens(codec) -> int:
    """Tokens of context on each side that make a block decode (tokenizer decoders, then the global-motion net)
    equal to a whole-sequence decode: the receptive radius of the convolution stacks, rounded up, plus one."""

    def radius(module: nn.Module, rate: float) -> tuple[float, float]:
        r = 0.0
        for m in module.modules():
            if isinstance(m, nn.Conv1d):
                r += (m.kernel_size[0] - 1) / 2 * m.dilation[0] / rate
            elif isinstance(m, nn.Upsample):
                rate *= float(m.scale_factor)
        return r, rate

    dec = max(radius(tok.decoder, 1.0)[0] for tok in codec.tokenizers.values())
    gm = 0.0
    if codec.global_motion is not None:
        gm = radius(codec.global_motion, float(codec.downsample))[0]
    return int(math.ceil(dec) + math.ceil(gm)) + 1


@dataclass
class MotionChunk:
    """Motion frames `[start, start + frames)` (numpy): poses `(m, 165)`, trans `(m, 3)`, expressions `(m, 100)`,
    contact `(m, 4)`, psi and gate `(m,)` (None in rhythm mode), gain `(m,)` the emphasis gain applied to ψ."""

    start: int
    poses: np.ndarray
    trans: np.ndarray
    expressions: np.ndarray
    contact: np.ndarray
    psi: np.ndarray | None
    gate: np.ndarray | None
    gain: np.ndarray

    @property
    def frames(self) -> int:
        return int(self.poses.shape[0])


class MotionEngine:
    """Incremental autoregressive generation and block decoding (see the module docstring).

    Args:
        pipeline: the loaded stages.
        speaker_index: embedding index of the speaker.
        mode: `full` (fused) or `rhythm` (base only).
        beta: ψ threshold of the fusion.
        words: word timings (frame words and window sentences); None: every frame UNK, empty sentences.
        emphasis: gains on ψ.
        frontend: for the CLIP sentence features (full mode).
        seed_latent: `(1, 4, 337)` seed motion (default: the base checkpoint's mean training seed).
        start_trans: `(1, 3)` first root position (default: the seed's).
        decode_context: tokens of decoder context (default: `decoder_radius_tokens`, exact).
        cuda_graphs: on a CUDA device, replay each generation window as a CUDA graph (`semtalk.cuda_graphs`;
            the same result without the per-operation launch cost); windows with emphasis gains run eagerly.
            Opt-in: its GPU tests (tests/test_cuda_graphs.py, test_generate.py) have not yet run on a GPU.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        speaker_index: int,
        mode: str = "full",
        beta: float = 0.5,
        words: WordTrack | None = None,
        emphasis: Emphasis | None = None,
        frontend: Frontend | None = None,
        seed_latent: torch.Tensor | None = None,
        start_trans: torch.Tensor | None = None,
        decode_context: int | None = None,
        cuda_graphs: bool = False,
    ) -> None:
        self.pipeline, self.mode, self.beta = pipeline, pipeline.resolve_mode(mode), float(beta)
        self.base, self.sparse = pipeline.base, pipeline.sparse
        self.codec = pipeline.codec
        self.device = torch.device(pipeline.device)
        self.window, self.seed_frames = int(self.base.window), int(self.base.seed_frames)
        self.step = self.window - self.seed_frames
        self.ds = int(self.codec.downsample)
        self.words, self.emphasis, self.frontend = words, emphasis, frontend
        if self.mode == "full" and frontend is None:
            raise ValueError("full mode needs the front end (CLIP sentence features)")
        self.speaker = torch.tensor([speaker_index], dtype=torch.long, device=self.device)
        seed = seed_latent if seed_latent is not None else self.base.default_seed(1)
        self.seed = seed.to(self.device).float()
        self.trans_last = (start_trans if start_trans is not None else self.seed[:, 0, 330:333]).to(self.device)
        self.context = decoder_radius_tokens(self.codec) if decode_context is None else int(decode_context)
        # per-frame features of frames [feat_start, feat_start + len)
        self.feats: dict[str, np.ndarray] = {}
        self.feat_start = 0
        self.available = 0
        self.total: int | None = None
        self.k = 0
        # codes, psi and gains of tokens [code_start, tokens)
        self.codes: dict[str, torch.Tensor] = {}
        self.psi: torch.Tensor | None = None
        self.gain = np.zeros(0, dtype=np.float32)
        self.code_start = 0
        self.tokens = 0
        self.emitted = 0  # tokens already decoded and returned
        self.timings: dict[str, float] = {"windows": 0.0, "decode": 0.0}
        self._feature_keys: tuple[str, ...] = ()
        use_graphs = cuda_graphs and self.device.type == "cuda"
        self.graphed = (
            GraphedFunction(lambda *t: self._window(0, t[0], *self._split_clip(t[1:]))) if use_graphs else None
        )

    def _split_clip(self, rest: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor | None, ...]:
        return (None, *rest) if self.mode == "rhythm" else rest

    # ------------------------------------------------------------------------------------------ input
    def add_features(self, feats: dict[str, np.ndarray]) -> None:
        """Append the next frames' audio features (`hubert`, `beat`, `emotion`)."""
        if not feats:
            return
        n = len(next(iter(feats.values())))
        if not self.feats:
            self.feats = {k: np.asarray(v) for k, v in feats.items()}
        else:
            self.feats = {k: np.concatenate((self.feats[k], feats[k])) for k in self.feats}
        self.available += n

    def set_total(self, frames: int) -> None:
        """The input has ended after `frames` frames (all their features added)."""
        if frames < 1:
            raise ValueError("the speech is shorter than one frame (1/30 s)")
        self.total = frames

    # ------------------------------------------------------------------------------------------ windows
    def _window_inputs(self, s: int) -> dict[str, torch.Tensor]:
        end = s + self.window
        real_end = min(end, self.available)
        lo, hi = s - self.feat_start, real_end - self.feat_start
        out = {}
        for k, v in self.feats.items():
            x = v[lo:hi]
            if len(x) < self.window:  # the last window: edge padding, as offline generation pads
                x = np.concatenate((x, np.repeat(x[-1:], self.window - len(x), axis=0)))
            out[k] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None].to(self.device)
        if self.mode == "full":
            ids = self.words.ids(s, real_end) if self.words is not None else np.full(real_end - s, UNK, np.int64)
            if len(ids) < self.window:
                ids = np.concatenate((ids, np.repeat(ids[-1:], self.window - len(ids))))
            out["words"] = torch.from_numpy(ids)[None].to(self.device)
        return out

    def _psi_scale(self):
        if not self.emphasis:
            return None

        def scale(k: int, tokens: int) -> torch.Tensor:
            g = self.emphasis.token_gains(self.words, k * self.step, tokens, self.ds)
            return torch.from_numpy(g.astype(np.float32))[None].to(self.device)

        return scale

    def _window(self, k: int, seed: torch.Tensor, clip: torch.Tensor | None, *feats: torch.Tensor):
        """Window `k` from its seed `(1, 4, 337)`, the sentence feature `(1, 1, Dc)` (full mode) and the window's
        features (in `self._feature_keys` order) -> codes part -> `(1, T', Q)`, psi `(1, T')` or None, and the
        next window's seed `(1, 4, 337)`."""
        latent = seed.new_zeros(1, self.window, seed.shape[-1])
        latent[:, : self.seed_frames] = seed
        mask = torch.ones_like(latent)
        mask[:, : self.seed_frames] = 0
        if self.mode == "rhythm":
            fn = self.base.window_fn(self.speaker)
        else:
            fn = self.sparse.window_fn(self.speaker, clip, self.beta, self._psi_scale(), "full")
        codes, psi = fn(dict(zip(self._feature_keys, feats)), latent, mask, k)
        seed = parts_to_latent_all(self.codec.decode(codes))[:, -self.seed_frames :]
        return codes, psi, seed

    def _run_window(self) -> None:
        k, s = self.k, self.k * self.step
        feats = self._window_inputs(s)
        self._feature_keys = tuple(feats)
        clip = None
        if self.mode != "rhythm":
            sentence = self.words.sentence(s, min(s + self.window, self.available)) if self.words is not None else ""
            clip = torch.from_numpy(self.frontend.sentence_features([sentence]))[:, None].to(self.device)
        with torch.no_grad():
            if self.graphed is not None and not self.emphasis:  # k only matters to the emphasis gains
                codes, psi, seed = self.graphed(self.seed, *(() if clip is None else (clip,)), *feats.values())
            else:
                codes, psi, seed = self._window(k, self.seed, clip, *feats.values())
            first = 0 if k == 0 else self.seed_frames // self.ds
            for p, c in codes.items():
                c = c[:, first:]
                self.codes[p] = c if p not in self.codes else torch.cat((self.codes[p], c), dim=1)
            new_tokens = next(iter(codes.values())).shape[1] - first
            if psi is not None:
                psi = psi[:, first:].float()
                self.psi = psi if self.psi is None else torch.cat((self.psi, psi), dim=1)
            gain = np.ones(new_tokens, dtype=np.float32)
            if self.emphasis and self.mode == "full":
                gain = self.emphasis.token_gains(self.words, s, first + new_tokens, self.ds)[first:].astype(np.float32)
            self.gain = np.concatenate((self.gain, gain))
            self.tokens += new_tokens
            self.seed = seed
        self.k += 1
        drop = self.k * self.step - self.feat_start  # frames no later window reads
        if drop > 0:
            self.feats = {n: v[drop:] for n, v in self.feats.items()}
            self.feat_start += drop

    def _ready_windows(self) -> int:
        if self.total is not None:
            return num_windows(self.total, self.window, self.seed_frames)
        return max(0, (self.available - self.window) // self.step + 1) if self.available >= self.window else 0

    # ------------------------------------------------------------------------------------------ output
    def run(self) -> MotionChunk | None:
        """Generate every window whose features are complete and return the motion frames that are final now
        (all the remaining ones once `set_total` was called); None when there are none yet."""
        t0 = time.perf_counter()
        while self.k < self._ready_windows():
            self._run_window()
        t1 = time.perf_counter()
        self.timings["windows"] += t1 - t0
        final = self.total is not None and self.k >= self._ready_windows()
        end = self.tokens if final else self.tokens - self.context
        if end <= self.emitted:
            return None
        chunk = self._decode(self.emitted, end, final)
        self.timings["decode"] += time.perf_counter() - t1
        return chunk

    @torch.no_grad()
    def _decode(self, e0: int, e1: int, final: bool) -> MotionChunk | None:
        c = self.context
        a, b = max(0, e0 - c), (self.tokens if final else min(self.tokens, e1 + c))
        sub = {p: v[:, a - self.code_start : b - self.code_start] for p, v in self.codes.items()}
        parts = self.codec.decode(sub)
        lo, hi = (e0 - a) * self.ds, (e1 - a) * self.ds
        if self.codec.global_motion is not None:
            vel = self.codec.global_motion(parts["lower"])[:, lo:hi]
            step = vel[..., [0, 2]] / self.codec.fps
            if e0 == 0:
                step[:, 0] = 0  # the first frame sits at the start position
            xz = self.trans_last[:, None, [0, 2]] + torch.cumsum(step, dim=1)
            trans = torch.stack((xz[..., 0], vel[..., 1], xz[..., 1]), dim=-1)
        else:
            trans = parts["lower"][:, lo:hi, 54:57]
        self.trans_last = trans[:, -1].clone()
        params = merge_parts({p: x[:, lo:hi] for p, x in parts.items()})
        start, stop = e0 * self.ds, e1 * self.ds
        if self.total is not None:
            stop = min(stop, self.total)
        m = max(stop - start, 0)
        psi = gate = None
        if self.psi is not None:
            psi_t = self.psi[0, e0 - self.code_start : e1 - self.code_start].repeat_interleave(self.ds)[:m]
            psi = psi_t.cpu().numpy().astype(np.float32)
            gate = psi > self.beta
        gain = np.repeat(self.gain[e0 - self.code_start : e1 - self.code_start], self.ds)[:m]
        chunk = MotionChunk(
            start=start,
            poses=params.poses[0, :m].cpu().numpy().astype(np.float32),
            trans=trans[0, :m].cpu().numpy().astype(np.float32),
            expressions=params.expressions[0, :m].cpu().numpy().astype(np.float32),
            contact=params.contact[0, :m].clamp(0, 1).cpu().numpy().astype(np.float32),
            psi=psi,
            gate=gate,
            gain=gain.astype(np.float32),
        )
        self.emitted = e1
        keep = max(self.code_start, e1 - c)  # tokens later decodes still read as left context
        if keep > self.code_start:
            cut = keep - self.code_start
            self.codes = {p: v[:, cut:] for p, v in self.codes.items()}
            self.psi = None if self.psi is None else self.psi[:, cut:]
            self.gain = self.gain[cut:]
            self.code_start = keep
        return chunk


class StreamStats:
    """Measurements of a streaming run, in bounded memory: wall seconds of each `push` (totals, maximum and the
    last `keep` pushes for percentiles), and for every emitted frame how many frames of audio had arrived beyond it
    when it was returned (the algorithmic delay: mean and maximum)."""

    def __init__(self, keep: int = 10000) -> None:
        self.recent: deque[float] = deque(maxlen=keep)
        self.pushes = 0
        self.seconds = 0.0
        self.max_seconds = 0.0
        self.audio_samples = 0
        self.delay_sum = 0.0
        self.delay_count = 0
        self.delay_max = 0

    def add_push(self, seconds: float, samples: int) -> None:
        self.recent.append(seconds)
        self.pushes += 1
        self.seconds += seconds
        self.max_seconds = max(self.max_seconds, seconds)
        self.audio_samples += samples

    def add_delays(self, delays: np.ndarray) -> None:
        if len(delays):
            self.delay_sum += float(delays.sum())
            self.delay_count += len(delays)
            self.delay_max = max(self.delay_max, int(delays.max()))

    def summary(self) -> dict[str, float]:
        if not self.pushes:
            return {}
        return {
            "pushes": self.pushes,
            "mean_push_seconds": self.seconds / self.pushes,
            "max_push_seconds": self.max_seconds,
            "p99_push_seconds": float(np.quantile(np.asarray(self.recent), 0.99)),
            "real_time_factor": self.seconds / max(self.audio_samples / SAMPLE_RATE, 1e-9),
            "mean_delay_seconds": self.delay_sum / max(self.delay_count, 1) / FPS,
            "max_delay_seconds": self.delay_max / FPS,
        }


class StreamingGenerator:
    """Speech in, motion out, chunk by chunk.

    >>> gen = StreamingGenerator(pipeline)                     # doctest: +SKIP
    >>> for chunk in microphone_chunks:                         # doctest: +SKIP
    ...     motion = gen.push(chunk)        # MotionChunk, possibly with 0 frames
    >>> last = gen.finish()                                     # doctest: +SKIP

    Args:
        pipeline: the loaded stages and front end.
        words: word timings known in advance (more can come with `push(..., words=...)`); None: audio only.
        speaker: BEAT2 speaker id (default: the training data's main speaker).
        mode: `full` or `rhythm`; beta: ψ threshold (default: the sparse checkpoint's).
        emphasis: gains on ψ by word or time range.
        plan: the feature block grid (`LOW_LATENCY_PLAN` by default; `offline_plan(pipeline.frontend)`, which is
            `OFFLINE_PLAN` for 20 s encoder chunks, reproduces `semtalk generate`).
        decode_context: see `MotionEngine`.
        frontend: a built `Frontend` to share between runs (made from the pipeline otherwise).
        seed_latent, start_trans, cuda_graphs: see `MotionEngine`.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        words: WordTrack | Sequence[WordInterval] | None = None,
        speaker: int | None = None,
        mode: str = "full",
        beta: float | None = None,
        emphasis: Emphasis | None = None,
        plan: BlockPlan = LOW_LATENCY_PLAN,
        decode_context: int | None = None,
        frontend: Frontend | None = None,
        seed_latent: torch.Tensor | None = None,
        start_trans: torch.Tensor | None = None,
        cuda_graphs: bool = False,
    ) -> None:
        self.mode = pipeline.resolve_mode(mode)
        self.notices: list[str] = []
        if mode == "full" and self.mode == "rhythm" and not pipeline.notices:
            self.notices.append("no sparse checkpoint: rhythm mode (base generator only)")
        self.beta = float(pipeline.beta if beta is None else beta)
        self.speaker_id, index = pipeline.speaker(speaker)
        vocab = frontend.vocab if frontend is not None else None
        if frontend is None:
            frontend = Frontend(pipeline.frontend, pipeline.needs(self.mode), pipeline.device)
            vocab = frontend.vocab
        self.frontend = frontend
        if isinstance(words, WordTrack):
            self.words = words
        else:
            self.words = WordTrack(words or (), vocab)
        self.features = AudioFeatureStream(frontend, plan)
        self.engine = MotionEngine(pipeline, index, self.mode, self.beta, self.words, emphasis, frontend,
                                   seed_latent, start_trans, decode_context, cuda_graphs)  # fmt: skip
        self.stats = StreamStats()

    def _emit(self, chunk: MotionChunk | None, received_frames: int) -> MotionChunk:
        if chunk is None:
            return self._empty()
        self.stats.add_delays(received_frames - (chunk.start + np.arange(chunk.frames)))
        return chunk

    def _empty(self) -> MotionChunk:
        z = np.zeros
        full = self.mode == "full"
        return MotionChunk(self.engine.emitted * self.engine.ds, z((0, 165), np.float32), z((0, 3), np.float32),
                           z((0, 100), np.float32), z((0, 4), np.float32), z(0, np.float32) if full else None,
                           z(0, bool) if full else None, z(0, np.float32))  # fmt: skip

    def push(self, audio: np.ndarray, words: Sequence[WordInterval] = ()) -> MotionChunk:
        """Add 16 kHz mono samples (and the intervals of words spoken in them); return the new motion frames."""
        t0 = time.perf_counter()
        if words:
            self.words.add(words)
        self.engine.add_features(self.features.push(audio))
        chunk = self._emit(self.engine.run(), frames_in(self.features.samples))
        self.stats.add_push(time.perf_counter() - t0, len(audio))
        return chunk

    def finish(self) -> MotionChunk:
        """End of speech: the remaining motion frames (the sequence then has `floor(seconds * 30)` frames)."""
        self.engine.add_features(self.features.finish())
        self.engine.set_total(self.features.total_frames or 0)
        return self._emit(self.engine.run(), frames_in(self.features.samples))


def benchmark(
    pipeline: Pipeline,
    audio: np.ndarray,
    words: Sequence[WordInterval] | None = None,
    *,
    plan: BlockPlan = LOW_LATENCY_PLAN,
    push_seconds: float = 0.1,
    reference_plan: BlockPlan | None = OFFLINE_PLAN,
    frontend: Frontend | None = None,
    mode: str = "full",
    decode_context: int | None = None,
) -> dict[str, float]:
    """Stream `audio` (16 kHz mono) in pushes of `push_seconds` and measure it: wall seconds per push (mean, max,
    99th percentile), real-time factor, delay of each frame behind the audio (mean, max), and, against a run with
    `reference_plan` (the offline `semtalk generate` by default), the largest pose difference (radians), the mean
    joint-angle difference and the share of frames whose gate decision agrees. `decode_context`: see
    `MotionEngine` (fewer tokens: less delay, approximate decoding at block edges)."""
    gen = StreamingGenerator(pipeline, words=words, plan=plan, frontend=frontend, mode=mode,
                             decode_context=decode_context)  # fmt: skip
    step = max(1, int(push_seconds * SAMPLE_RATE))
    chunks = [gen.push(audio[i : i + step]) for i in range(0, len(audio), step)]
    chunks.append(gen.finish())
    out: dict[str, float] = dict(gen.stats.summary())
    out["decode_context_tokens"] = gen.engine.context
    out["push_audio_seconds"] = push_seconds
    out["frames"] = float(sum(c.frames for c in chunks))
    if reference_plan is not None:
        from semtalk.inference import generate_audio

        ref = generate_audio(pipeline, [audio], WordTrack(words or (), gen.frontend.vocab), mode=mode,
                             plan=reference_plan, frontend=gen.frontend)  # fmt: skip
        poses = np.concatenate([c.poses for c in chunks])
        diff = np.abs(poses - ref.poses)
        out["max_pose_difference"] = float(diff.max())
        out["mean_pose_difference"] = float(diff.mean())
        if ref.gate is not None:
            out["gate_agreement"] = float(np.mean(np.concatenate([c.gate for c in chunks]) == ref.gate))
    return out
