"""Generation from any speech: exports, word timings, emphasis, the streaming engine and `semtalk generate`.

One module fixture lays out a tiny project like `make demo` does (relative checkpoint paths): a 1-speaker
embedded dataset, a feature cache of its training clip with the tiny extractors, stage 1 trained for one step,
and base and sparse stages trained for one step on the cached windows.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from semtalk.body.joints import JOINT_NAMES
from semtalk.data.beat2 import WordInterval, load_audio, load_textgrid
from semtalk.export import (
    euler_to_matrix,
    matrix_to_euler,
    read_bvh,
    save_smplx_npz,
    write_bvh,
)
from semtalk.inference import (
    Emphasis,
    Frontend,
    FrontendSpec,
    VoicedLevels,
    WordTrack,
    generate_audio,
    spread_transcript,
    voiced_regions,
)
from semtalk.streaming import (
    LOW_LATENCY_PLAN,
    OFFLINE_PLAN,
    BlockPlan,
    StreamingGenerator,
    decoder_radius_tokens,
    offline_plan,
)

GEN = dict(hidden=32, motion_f=16, heads=2, residual_layers=1, residual_heads=2, motion_encoder_layers=1)
#: small feature blocks, so windows run and decode while audio is still arriving
SMALL_PLAN = BlockPlan(90, 30, 6)


@contextlib.contextmanager
def _cwd(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def project(tmp_path_factory, smplx_root):
    """A project folder with `data/embedded`, `data/cache/embedded` and `checkpoints/` (paths inside relative)."""
    import lightning as L
    from torch.utils.data import DataLoader

    from motion_fixtures import train_tiny_stage1
    from semtalk.data.cache import build_cache, read_manifest
    from semtalk.data.datamodule import Beat2DataModule
    from semtalk.data.windows import WindowDataset
    from semtalk.features.registry import load_extractor_config, with_windows
    from semtalk.synth.dataset import make_dataset
    from stages.base import BaseStage
    from stages.sparse import SparseStage

    root = tmp_path_factory.mktemp("project")
    tiny = Path(__file__).resolve().parents[1] / "configs" / "data" / "tiny.yaml"
    config = with_windows(load_extractor_config(tiny), 64, 20, 4)
    config["motion"]["body_model_root"] = str(smplx_root)
    with _cwd(root):
        make_dataset("data/embedded", num_speakers=1, clips_per_speaker=3, clip_seconds=5, progress=False)
        train_id = next(cid for cid, split in _split("data/embedded").items() if split == "train")
        build_cache("data/embedded", "data/cache/embedded", config, clip_ids=[train_id], device="cpu", progress=False)
        manifest = read_manifest("data/cache/embedded")
        entry = manifest["clips"][train_id]
        windows = WindowDataset([Path("data/cache/embedded") / entry["file"]], [entry["frames"]], 64, 20)
        spec = Beat2DataModule("data/embedded", "data/cache/embedded", config).spec
        s1 = train_tiny_stage1(Path("checkpoints"), steps=1)

        def fit(stage, name):
            trainer = L.Trainer(default_root_dir="runs", accelerator="cpu", max_steps=1, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                num_sanity_val_steps=0, limit_val_batches=0)  # fmt: skip
            trainer.fit(stage, DataLoader(windows, batch_size=4, shuffle=False))
            trainer.save_checkpoint(f"checkpoints/{name}.ckpt")

        vq = {p: s1[p] for p in ("face", "upper", "hands", "lower")}
        torch.manual_seed(0)
        fit(BaseStage(vq, s1["global_motion"], spec=spec, generator=dict(GEN, audio_layers=1, face_layers=1)), "base")
        fit(
            SparseStage("checkpoints/base.ckpt", spec=spec, generator=dict(GEN, semantic_layers=1, word_dim=8)),
            "sparse",
        )
    assert not Path(s1["face"]).is_absolute()  # the checkpoints name their upstream files relative to the project
    return root


def _split(root: str) -> dict[str, str]:
    from semtalk.data.beat2 import load_split

    return load_split(Path(root) / "train_test_split.csv")


@pytest.fixture(scope="module")
def pipeline(project):
    from stages.inference import load_pipeline

    return load_pipeline(project / "checkpoints", device="cpu")  # finds data/cache/embedded next to checkpoints/


@pytest.fixture(scope="module")
def frontend(pipeline):
    fe = Frontend(pipeline.frontend, pipeline.needs("full"), "cpu")
    fe.build()
    return fe


@pytest.fixture(scope="module")
def long_speech(project):
    """The three dataset clips back to back (about 15 s, 8 windows) with their words shifted in time."""
    audios, words, offset = [], [], 0.0
    for cid in sorted(_split(project / "data" / "embedded")):
        a = load_audio(project / "data" / "embedded" / "wave16k" / f"{cid}.wav")
        a = a[: len(a) // 1600 * 1600]
        for w in load_textgrid(project / "data" / "embedded" / "textgrid" / f"{cid}.TextGrid"):
            if w.start < len(a) / 16000:
                words.append(WordInterval(w.start + offset, min(w.end, len(a) / 16000) + offset, w.word))
        audios.append(a)
        offset += len(a) / 16000
    return np.concatenate(audios), words


# --------------------------------------------------------------------------------------------- exports
def test_euler_round_trip_and_gimbal_lock():
    rng = np.random.default_rng(0)
    angles = rng.uniform(-1.4, 1.4, (200, 3))
    for order in ("ZXY", "XYZ", "YZX", "ZYX", "XZY", "YXZ"):
        m = euler_to_matrix(angles, order)
        assert np.allclose(euler_to_matrix(matrix_to_euler(m, order), order), m, atol=1e-10)
        assert np.allclose(matrix_to_euler(m, order), angles, atol=1e-9)  # middle angle within +-pi/2: unique
        locked = euler_to_matrix(np.array([[0.4, np.pi / 2, -0.3], [0.2, -np.pi / 2, 0.7]]), order)
        assert np.allclose(euler_to_matrix(matrix_to_euler(locked, order), order), locked, atol=1e-9)
    with pytest.raises(ValueError, match="permutation of XYZ"):
        euler_to_matrix(angles, "XXY")


@pytest.mark.parametrize("order", ["ZXY", "XYZ"])
def test_bvh_round_trip_reproduces_smplx_joints(tmp_path, body_model, order):
    rng = np.random.default_rng(1)
    n = 40
    poses = rng.normal(0, 0.5, (n, 165)).astype(np.float32)
    trans = rng.normal(0, 0.3, (n, 3)).astype(np.float32)
    betas = rng.normal(0, 1, 300).astype(np.float32)
    rest = body_model.shaped_rest_joints(torch.from_numpy(betas)).numpy()
    mean = body_model.pose_mean.numpy().reshape(55, 3)
    path = write_bvh(tmp_path / "m.bvh", poses, trans, rest, mean, order=order, chunk=16)
    bvh = read_bvh(path)
    assert sorted(bvh.names) == sorted(JOINT_NAMES) and bvh.motion.shape == (n, 6 + 54 * 3)
    assert bvh.channels[0][3:] == [f"{c}rotation" for c in order] and bvh.frame_time == pytest.approx(1 / 30)
    joints = bvh.joint_positions()[:, [bvh.names.index(j) for j in JOINT_NAMES]] / 100.0  # centimetres
    ref = body_model.joints(torch.from_numpy(poses), torch.from_numpy(betas), torch.from_numpy(trans)).numpy()
    assert np.abs(joints - ref).max() < 1e-5  # metres, over 55 joints and 40 frames


def test_npz_has_beat2_keys(tmp_path):
    n = 12
    path = save_smplx_npz(tmp_path / "a.npz", np.zeros((n, 165)), np.ones((n, 3)), np.zeros((n, 100)), np.ones(10))
    with np.load(path, allow_pickle=False) as d:
        assert set(d.files) == {"poses", "trans", "betas", "expressions", "model", "gender", "mocap_frame_rate"}
        assert d["poses"].dtype == np.float32 and d["poses"].shape == (n, 165) and d["betas"].shape == (300,)
        assert d["betas"][:10].sum() == 10 and d["betas"][10:].sum() == 0
        assert str(d["model"]) == "smplx2020" and str(d["gender"]) == "neutral" and int(d["mocap_frame_rate"]) == 30
    with pytest.raises(ValueError, match="expressions"):
        save_smplx_npz(tmp_path / "b.npz", np.zeros((n, 165)), np.ones((n, 3)), np.zeros((n, 50)))


# --------------------------------------------------------------------------------------------- words, emphasis
def test_word_track_follows_the_cache_rules(project):
    from semtalk.features.clip_text import window_sentences
    from semtalk.features.vocab import Vocab
    from semtalk.features.words import frame_word_indices

    vocab = Vocab.load_json(project / "data" / "cache" / "embedded" / "vocab.json")
    cid = sorted(_split(project / "data" / "embedded"))[0]
    words = load_textgrid(project / "data" / "embedded" / "textgrid" / f"{cid}.TextGrid")
    n = 140
    track = WordTrack(words, vocab)
    assert np.array_equal(track.ids(0, n), frame_word_indices(words, n, vocab))
    assert np.array_equal(np.concatenate([track.ids(0, 50), track.ids(50, n)]), track.ids(0, n))
    assert [track.sentence(s, min(s + 64, n)) for s in (0, 60)] == window_sentences(words, n, [0, 60], 64)
    assert track.lookup("Hello,") == track.lookup("hello")


def test_transcript_spreads_over_voiced_regions():
    regions = [(0.5, 1.5), (2.0, 3.0)]
    words = spread_transcript("One, two three FOUR!", regions, 3.5)
    spoken = [w for w in words if w.word]
    assert [w.word for w in spoken] == ["one", "two", "three", "four"]
    assert all(a.end <= b.start + 1e-6 for a, b in zip(words, words[1:]))
    assert words[0].start == 0 and words[-1].end == pytest.approx(3.5)
    for w in spoken:  # every word inside one voiced region
        assert any(lo - 1e-6 <= w.start and w.end <= hi + 1e-6 for lo, hi in regions)
    with pytest.raises(ValueError, match="no words"):
        spread_transcript(" ,, ", regions, 3.5)


def test_voiced_regions_leave_out_silence():
    rate, t = 16000, np.arange(16000) / 16000
    tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)  # 1 s at -23 dBFS RMS
    silence = np.zeros(5 * rate, np.float32)
    assert voiced_regions([silence]) == ([], 5.0)  # digital silence: nothing voiced (it was one 5 s stretch)
    hiss = np.random.default_rng(0).normal(0, 1e-4, 2 * rate).astype(np.float32)  # -80 dBFS, below any speech
    assert voiced_regions([hiss])[0] == []
    speech_then_silence = np.concatenate([tone, silence[: 2 * rate]])
    regions, duration = voiced_regions([speech_then_silence])
    assert duration == 3.0 and len(regions) == 1 and regions[0][0] == 0 and regions[0][1] == pytest.approx(1.0)
    levels = VoicedLevels()  # block by block, blocks not a multiple of the 20 ms frame
    for i in range(0, len(speech_then_silence), 7001):
        levels.push(speech_then_silence[i : i + 7001])
    assert levels.regions() == regions and levels.duration == duration
    with pytest.raises(RuntimeError, match="push after"):
        levels.push(tone)


def test_transcript_refuses_audio_without_voice():
    with pytest.raises(ValueError, match="no voiced part"):
        spread_transcript("hello there", [], 5.0)


def test_asr_words_from_a_local_ctc_model(tmp_path, project):
    """`--asr`: transformers' ASR pipeline with word timestamps on a local (tiny, random) wav2vec 2.0 CTC model."""
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    from semtalk.inference import asr_words

    letters = {"<pad>": 0, "|": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz'")}}
    (tmp_path / "vocab.json").write_text(json.dumps(letters))
    tok = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), word_delimiter_token="|")
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, return_attention_mask=False)
    Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(tmp_path)
    torch.manual_seed(0)
    cfg = Wav2Vec2Config(vocab_size=len(letters), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                         num_conv_pos_embedding_groups=4, pad_token_id=0)  # fmt: skip
    model = Wav2Vec2ForCTC(cfg)
    with torch.no_grad():  # a sharper random head, so that letters and word breaks come out
        model.lm_head.weight.mul_(20)
    model.save_pretrained(tmp_path)
    audio = load_audio(next((project / "data" / "embedded" / "wave16k").glob("*.wav")))
    words = asr_words(audio, str(tmp_path))
    spoken = [w for w in words if w.word]
    assert spoken and all(w.word == w.word.lower() for w in spoken)
    # times are rounded to 0.1 ms (asr_words)
    assert words[0].start == 0 and words[-1].end == pytest.approx(len(audio) / 16000, abs=5e-5)
    assert all(a.end <= b.start + 1e-6 and a.start <= a.end for a, b in zip(words, words[1:]))
    WordTrack(words)  # ordered and non-overlapping, as the track requires


def test_emphasis_parsing_and_frame_gains():
    e = Emphasis.parse(["Big=2", "small=0"], ["1.0-2.0=3"])
    assert e.words == {"big": 2.0, "small": 0.0} and e.ranges == [(1.0, 2.0, 3.0)]
    track = WordTrack([WordInterval(0.0, 0.5, "big"), WordInterval(0.5, 1.5, "small")])
    g = e.frame_gains(track, 0, 75)
    assert np.all(g[:15] == 2) and g[16] == 0 and g[45] == 0  # frame 15 (0.5 s) belongs to "big", the first match
    assert np.all(g[46:60] == 3) and np.all(g[60:] == 1)
    assert np.allclose(e.token_gains(track, 44, 2), [g[44:48].mean(), g[48:52].mean()])
    assert e.unmatched(track) == []
    for bad in (["big"], ["big=x"], ["=2"], ["big=-1"]):
        with pytest.raises(ValueError):
            Emphasis.parse(bad)
    with pytest.raises(ValueError, match="end must come after"):
        Emphasis.parse([], ["3-1=2"])


# --------------------------------------------------------------------------------------------- engine
def _reference(pipeline, frontend, audio, words, plan, emphasis=None):
    """`SparseStage.generate` (whole-sequence, offline) on the features of the same block plan."""
    from semtalk.generation import num_windows
    from semtalk.streaming import AudioFeatureStream

    fs = AudioFeatureStream(frontend, plan)
    parts = [fs.push(audio), fs.finish()]
    feats = {k: np.concatenate([p[k] for p in parts if p]) for k in parts[-1]}
    n = fs.total_frames
    track = WordTrack(words, frontend.vocab)
    x = {k: torch.from_numpy(v)[None] for k, v in feats.items()}
    x["words"] = torch.from_numpy(track.ids(0, n))[None]
    sentences = [track.sentence(60 * k, min(60 * k + 64, n)) for k in range(num_windows(n))]
    clip = torch.from_numpy(frontend.sentence_features(sentences))[None]
    scale = None
    if emphasis:

        def scale(k, tokens):
            return torch.from_numpy(emphasis.token_gains(track, 60 * k, tokens))[None]

    _, index = pipeline.speaker(None)
    return pipeline.sparse.generate(x, clip, torch.tensor([index]), n, psi_scale=scale), n


def test_engine_equals_whole_sequence_generation(pipeline, frontend, long_speech):
    audio, words = long_speech
    emphasis = Emphasis(ranges=[(5.0, 9.0, 4.0)])
    ref, n = _reference(pipeline, frontend, audio, words, SMALL_PLAN, emphasis)
    out = generate_audio(pipeline, [audio], WordTrack(words, frontend.vocab), emphasis=emphasis, plan=SMALL_PLAN,
                         frontend=frontend)  # fmt: skip
    assert out.frames == n == len(audio) * 30 // 16000 and n > 4 * 64
    assert np.array_equal(out.psi, ref.psi[0].numpy())
    assert np.abs(out.poses - ref.params.poses[0].numpy()).max() < 1e-5
    assert np.abs(out.expressions - ref.params.expressions[0].numpy()).max() < 1e-5
    assert np.abs(out.trans - ref.params.trans[0].numpy()).max() < 1e-4  # integrated block by block
    assert np.array_equal(out.gate, out.psi > pipeline.beta) and out.gate.mean() > 0


def test_streaming_equals_offline_and_stays_bounded(pipeline, frontend, long_speech):
    audio, words = long_speech
    offline = generate_audio(pipeline, [audio], WordTrack(words, frontend.vocab), plan=SMALL_PLAN, frontend=frontend)
    rng = np.random.default_rng(3)
    gen = StreamingGenerator(pipeline, words=words, plan=SMALL_PLAN, frontend=frontend)
    chunks, i, sizes = [], 0, []
    while i < len(audio):
        step = int(rng.integers(50, 9000))
        chunks.append(gen.push(audio[i : i + step]))
        i += step
        engine = gen.engine
        sizes.append((len(gen.features.buffer), len(next(iter(engine.feats.values()), [])),
                      next(iter(engine.codes.values())).shape[1] if engine.codes else 0))  # fmt: skip
    chunks.append(gen.finish())
    assert [c.start for c in chunks if c.frames] == list(np.cumsum([0] + [c.frames for c in chunks if c.frames])[:-1])
    assert sum(c.frames > 0 for c in chunks) >= 4  # motion came out while audio was still arriving
    poses = np.concatenate([c.poses for c in chunks])
    assert poses.shape == offline.poses.shape
    assert np.abs(poses - offline.poses).max() < 1e-5  # same block plan: the offline result, whatever the pushes
    assert np.array_equal(np.concatenate([c.psi for c in chunks]), offline.psi)
    assert np.abs(np.concatenate([c.trans for c in chunks]) - offline.trans).max() < 1e-4
    # nothing grows with the input: audio, feature and code buffers stay within the plan's and decoder's reach
    radius = decoder_radius_tokens(pipeline.codec)
    audio_max, feat_max, code_max = (max(s[j] for s in sizes) for j in range(3))
    assert audio_max <= (SMALL_PLAN.block_frames + SMALL_PLAN.left_frames + SMALL_PLAN.right_frames) * 1600 // 3 + 9000
    assert feat_max <= SMALL_PLAN.block_frames + 2 * 64 and code_max <= 2 * radius + 2 * 16
    # the low-latency plan sees less audio context per feature block: different features, measured difference
    low = StreamingGenerator(pipeline, words=words, plan=LOW_LATENCY_PLAN, frontend=frontend)
    out = [low.push(audio[j : j + 1600]) for j in range(0, len(audio), 1600)] + [low.finish()]
    low_poses = np.concatenate([c.poses for c in out])
    assert low_poses.shape == offline.poses.shape and np.isfinite(low_poses).all()
    stats = low.stats.summary()
    assert stats["pushes"] == len(out) - 1 and stats["max_delay_seconds"] < 8.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_windows_equal_eager_windows(project, long_speech):
    from stages.inference import load_pipeline

    audio, words = long_speech
    gpu = load_pipeline(project / "checkpoints", device="cuda")
    fe = Frontend(gpu.frontend, gpu.needs("full"), "cuda")
    fe.build()
    runs = {}
    for graphs in (True, False):
        gen = StreamingGenerator(gpu, words=words, plan=SMALL_PLAN, frontend=fe, cuda_graphs=graphs)
        chunks = [gen.push(audio), gen.finish()]
        runs[graphs] = (np.concatenate([c.poses for c in chunks]), np.concatenate([c.psi for c in chunks]))
        if graphs:
            assert gen.engine.graphed.replays == gen.engine.k > 4 and not gen.engine.graphed.failed
    assert np.abs(runs[True][0] - runs[False][0]).max() < 1e-4
    assert np.abs(runs[True][1] - runs[False][1]).max() < 1e-5


def test_emphasis_changes_psi_and_motion_on_its_frames_only(pipeline, frontend, long_speech):
    audio, words = long_speech
    track = WordTrack(words, frontend.vocab)
    plain = generate_audio(pipeline, [audio], track, plan=SMALL_PLAN, frontend=frontend)
    # tokens 3-6 of window 1 (frames 72-100): the window's last tokens, the next window's seed, stay untouched.
    # A gain flips the gate there: 50 opens a mostly closed range, 0 closes a mostly open one.
    inside = np.zeros(plain.frames, bool)
    inside[72:100] = True
    gain = 0.0 if plain.gate[inside].mean() > 0.5 else 50.0
    emphasis = Emphasis(ranges=[(72 / 30, 100 / 30, gain)])
    loud = generate_audio(pipeline, [audio], track, emphasis=emphasis, plan=SMALL_PLAN, frontend=frontend)
    assert np.array_equal(loud.gain != 1, inside)
    assert np.array_equal(plain.psi[~inside], loud.psi[~inside])
    raised, lowered = loud.psi[inside] > plain.psi[inside], loud.psi[inside] < plain.psi[inside]
    assert (raised.any() and not lowered.any()) if gain > 1 else (lowered.any() and not raised.any())
    assert np.array_equal(loud.gate, loud.psi > pipeline.beta)
    flipped = loud.gate != plain.gate
    assert flipped[inside].any() and not flipped[~inside].any()  # the range's tokens switch codes, no others
    radius = 4 * decoder_radius_tokens(pipeline.codec)
    changed = np.abs(loud.poses - plain.poses).max(axis=1) > 1e-6
    assert changed[inside].any()
    assert not changed[: 72 - radius].any() and not changed[100 + radius :].any()
    # a gain of 0 on a word switches the semantic codes off on its frames
    word = next(w.word for w in words if w.word.strip() and w.start > 1.0)
    quiet = generate_audio(pipeline, [audio], track, emphasis=Emphasis.parse([f"{word}=0"]), plan=SMALL_PLAN,
                           frontend=frontend)  # fmt: skip
    on_word = quiet.gain == 0  # tokens whose 4 frames all lie on the word (partly covered tokens get a mean gain)
    assert on_word.any() and np.all(quiet.psi[on_word] == 0) and not quiet.gate[on_word].any()
    assert np.array_equal(quiet.psi[quiet.gain == 1], plain.psi[quiet.gain == 1])


# --------------------------------------------------------------------------------------------- the command
def test_generate_command_end_to_end(project, pipeline, body_model, tmp_path):
    import soundfile as sf
    import soxr

    from semtalk.generate_cli import main
    from semtalk.metrics.evaluate import evaluate_folder
    from semtalk.synth.speech import Voice, synthesize

    # speech the project has never seen, at 44.1 kHz stereo
    speech = synthesize("honestly the big red balloon floated over the river", Voice("en-gb+f2"))
    mono = soxr.resample(speech.audio.astype(np.float32), speech.sample_rate, 44100)
    wav = tmp_path / "unseen.wav"
    sf.write(wav, np.stack([mono, 0.5 * mono], axis=1), 44100)
    out = tmp_path / "out"
    records = main([str(wav), "--checkpoints", str(project / "checkpoints"), "--out", str(out), "--transcript",
                    "Honestly, the big red balloon floated over the river.", "--emphasis", "balloon=3",
                    "--lock-root", "--smplx", str(body_model.model_path.parents[1])])  # fmt: skip
    n = int(sf.info(wav).duration * 30)
    assert records[0]["frames"] == n
    with np.load(out / "unseen.npz", allow_pickle=False) as d:
        assert d["poses"].shape == (n, 165) and d["expressions"].shape == (n, 100) and d["trans"].shape == (n, 3)
        assert np.all(d["trans"][:, [0, 2]] == 0) and np.isfinite(d["poses"]).all()  # --lock-root
    psi = json.loads((out / "unseen_psi.json").read_text())
    assert psi["frames"] == n and psi["mode"] == "full" and set(psi["gate"]) <= {0, 1}
    assert any("approximate" in m for m in psi["notices"]) and any(w["word"] == "balloon" for w in psi["words"])
    balloon = next(w for w in psi["words"] if w["word"] == "balloon")
    frames = range(int(np.ceil(balloon["start"] * 30)), int(balloon["end"] * 30))
    assert balloon["gain"] == 3 and max(psi["gain"][f] for f in frames) > 1
    bvh = read_bvh(out / "unseen.bvh")
    assert bvh.motion.shape[0] == n and np.ptp(bvh.motion[:, 0]) == 0 and np.ptp(bvh.motion[:, 2]) == 0
    video = records[0]["files"].get("mp4") or records[0]["files"]["gif"]
    assert Path(video).stat().st_size > 0
    if "gif" in records[0]["files"]:  # no ffmpeg: the speech goes next to the GIF
        assert sf.info(out / "unseen.wav").samplerate == 16000
    # the evaluator reads the file (scored against itself as ground truth)
    gt = tmp_path / "gt"
    gt.mkdir()
    shutil.copy(out / "unseen.npz", gt / "unseen.npz")
    scores = evaluate_folder(out, gt, profile="corrected", body_model=body_model)
    assert scores["num_files"] == 1 and scores["frames"] > 0 and scores["face_mse"] == pytest.approx(0.0, abs=1e-9)


def test_generate_rhythm_mode_with_shipped_frontend(project, tmp_path):
    from semtalk.generate_cli import main

    ck = tmp_path / "checkpoints"
    shutil.copytree(project / "checkpoints", ck)
    spec = FrontendSpec.from_cache(project / "data" / "cache" / "embedded")
    assert spec.default_speaker == 2 and spec.betas[2] and spec.dims["hubert"] == 64
    plan = offline_plan(spec)  # one segment = one 20 s encoder chunk, as the cache ran the encoders
    assert plan == OFFLINE_PLAN and plan.block_frames + plan.left_frames + plan.right_frames == 20 * 30
    shipped = FrontendSpec.load(spec.save(ck / "frontend.json"))
    assert shipped.source == str(ck / "frontend.json")
    shipped.source = spec.source
    assert shipped == spec
    wav = next((project / "data" / "embedded" / "wave16k").glob("*.wav"))
    threads = torch.get_num_threads()
    try:
        with _cwd(project):  # the stage-2 checkpoint names its tokenizers relative to the project folder
            records = main([str(wav), "--checkpoints", str(ck), "--out", str(tmp_path / "out"), "--no-semantic",
                            "--video", "none", "--no-bvh", "--quiet", "--threads", "1"])  # fmt: skip
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(SystemExit, match="--threads must be at least 1"):
        main([str(wav), "--checkpoints", str(ck), "--threads", "0"])
    psi = json.loads((tmp_path / "out" / f"{wav.stem}_psi.json").read_text())
    assert psi["mode"] == "rhythm" and psi["psi"] is None and psi["gate"] is None
    assert set(records[0]["files"]) == {"npz", "psi"}
    with pytest.raises(SystemExit, match="manifest.json.*--cache"):
        main([str(wav), "--checkpoints", str(project / "checkpoints"), "--cache", str(tmp_path / "nowhere"),
              "--out", str(tmp_path / "o2")])  # fmt: skip
    with pytest.raises(SystemExit, match="WORD=GAIN"):
        main([str(wav), "--checkpoints", str(ck), "--emphasis", "big"])


def test_generate_under_bf16_autocast(project, tmp_path):
    """`--precision bf16` runs the encoders and generators under bfloat16 autocast and still writes float32 files."""
    from semtalk.generate_cli import main

    wav = next((project / "data" / "embedded" / "wave16k").glob("*.wav"))
    loaded = {}
    for precision in ("32", "bf16"):
        out = tmp_path / precision
        main([str(wav), "--checkpoints", str(project / "checkpoints"), "--out", str(out), "--transcript",
              "the big red balloon", "--video", "none", "--no-bvh", "--quiet", "--precision", precision])  # fmt: skip
        with np.load(out / f"{wav.stem}.npz", allow_pickle=False) as d:
            loaded[precision] = {k: d[k] for k in ("poses", "trans", "expressions")}
        assert json.loads((out / f"{wav.stem}_psi.json").read_text())["precision"] == precision
    for k, full in loaded["32"].items():
        half = loaded["bf16"][k]
        assert half.dtype == np.float32 and half.shape == full.shape and np.isfinite(half).all()
    assert not np.array_equal(loaded["32"]["trans"], loaded["bf16"]["trans"])  # autocast did apply


def test_generate_silence_with_a_transcript_is_refused_and_words_stay_on_speech(project, tmp_path):
    """5 s of digital silence: a transcript is refused (there is nowhere to put its words), without words the
    motion is generated with a notice; speech followed by silence: the transcript's words stay on the speech."""
    import soundfile as sf

    from semtalk.generate_cli import main

    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(5 * 16000, np.float32), 16000, subtype="PCM_16")
    common = ["--checkpoints", str(project / "checkpoints"), "--video", "none", "--no-bvh", "--quiet"]
    with pytest.raises(SystemExit, match="silence.wav: .*no voiced part"):
        main([str(silent), *common, "--out", str(tmp_path / "o1"), "--transcript", "hello there"])
    assert not (tmp_path / "o1" / "silence.npz").exists()
    main([str(silent), *common, "--out", str(tmp_path / "o2")])
    psi = json.loads((tmp_path / "o2" / "silence_psi.json").read_text())
    assert psi["frames"] == 150 and psi["seconds_voiced"] == 0
    assert any("no voiced part" in n for n in psi["notices"])

    wav = next((project / "data" / "embedded" / "wave16k").glob("*.wav"))
    speech = load_audio(wav)
    spoken = len(speech) / 16000
    padded = tmp_path / "padded.wav"
    sf.write(padded, np.concatenate([speech, np.zeros(3 * 16000, np.float32)]), 16000, subtype="PCM_16")
    main([str(padded), *common, "--out", str(tmp_path / "o3"), "--transcript", "the big red balloon floated away"])
    psi = json.loads((tmp_path / "o3" / "padded_psi.json").read_text())
    words = [w for w in psi["words"] if w["word"]]
    assert [w["word"] for w in words] == ["the", "big", "red", "balloon", "floated", "away"]
    assert max(w["end"] for w in words) <= spoken + 0.02  # nothing laid over the 3 s of silence
    assert 0 < psi["seconds_voiced"] <= spoken + 0.02
    assert not any("no voiced part" in n for n in psi["notices"])
