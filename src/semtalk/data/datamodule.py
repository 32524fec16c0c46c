"""`Beat2DataModule`: BEAT2-format data (real BEAT2 or the embedded dataset) for every SemTalk stage.

`prepare_data` builds the feature cache (a no-op when it is up to date); `setup` only reads it and checks
that it matches the configuration. Training batches are windows of `window` frames every `stride` frames;
validation and test batches are whole sequences (batch size 1, lengths per `semtalk.data.windows`).

Batch keys (B windows of W = 64 frames, K = 16 tokens):

| key | shape | | key | shape |
|---|---|---|---|---|
| hubert | (B, W, D_hubert) float | | face / upper / hands / lower | (B, W, 106 / 78 / 180 / 61) |
| beat | (B, W, 3) | | latent_all | (B, W, 337) |
| words | (B, W) int64 | | poses, trans, expressions, contact | (B, W, 165 / 3 / 100 / 4) |
| sem | (B, W) | | betas | (B, 300) |
| sem_token | (B, K) | | speaker | (B,) int64, 0-24 |
| clip_text | (B, D_clip) | | emotion | (B, W, D_emotion) |
| clip_id, start | list[str], (B,) | | | |

Validation/test items have the sequence length n instead of W, `clip_text (1, G, D_clip)` (one per
generation window), `length` and `generated_length`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from semtalk.body.joints import FPS, NUM_BETAS, NUM_EXPRESSIONS
from semtalk.body.parts import LATENT_ALL_DIM, PART_DIMS
from semtalk.data.beat2 import NUM_SPEAKERS
from semtalk.data.cache import MANIFEST, build_cache, feature_fingerprint, read_manifest
from semtalk.data.errors import DataError
from semtalk.data.root import Beat2Root
from semtalk.data.windows import SequenceDataset, WindowDataset, generation_windows, sequence_length


class Beat2DataModule(LightningDataModule):
    """BEAT2 windows and sequences from the feature cache.

    Args:
        root: BEAT2-format dataset folder (`beat_english_v2.0.0/` or the embedded dataset).
        cache_dir: feature cache folder (built by `prepare_data` or `semtalk cache`).
        extractors: extractor configuration, a YAML path (`configs/data/tiny.yaml`, `real.yaml`) or a mapping.
        speakers: BEAT2 speaker ids to use (the paper: `[2]`); None: every speaker.
        window: frames per training window (64).
        stride: frames between training windows (20).
        seed_frames: unmasked seed frames at the start of a window (4, one token).
        token_frames: frames per RVQ token (4).
        batch_size: training windows per batch (validation/test use 1 sequence per batch).
        num_workers: DataLoader worker processes.
        pin_memory: pin batches in page-locked memory (faster host-to-GPU copies).
        train_splits: split types that train (`train`; BEAT2 also has `additional`).
        val_split, test_split: split types of the validation and test sequences.
        predict_split: split type whose whole sequences `predict` generates (`semtalk predict`).
        selection_split: where the validation loop (checkpoint selection) runs: `val` (the default) or `test`,
            which selects on the test split itself; `semtalk test` labels its metrics with this choice (the one
            recorded in the checkpoint), since test-selected numbers are not an unbiased estimate.
        device: where `prepare_data` runs the encoders (`auto`: the GPU when there is one).
        progress: show the cache progress bar.
    """

    def __init__(
        self,
        root: str,
        cache_dir: str,
        extractors: str | dict[str, Any] = "configs/data/tiny.yaml",
        speakers: list[int] | None = None,
        window: int = 64,
        stride: int = 20,
        seed_frames: int = 4,
        token_frames: int = 4,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        train_splits: tuple[str, ...] = ("train",),
        val_split: str = "val",
        test_split: str = "test",
        predict_split: str = "test",
        selection_split: str = "val",
        device: str = "auto",
        progress: bool = True,
    ) -> None:
        super().__init__()
        if window % token_frames or seed_frames % token_frames or seed_frames >= window:
            raise ValueError(f"window {window} and seed_frames {seed_frames} must be multiples of token_frames "
                             f"{token_frames}, with seed_frames < window")  # fmt: skip
        if stride <= 0:
            raise ValueError(f"stride must be positive, got {stride}")
        self.save_hyperparameters()
        self.root, self.cache_dir = Path(root), Path(cache_dir)
        self.speakers = list(speakers) if speakers is not None else None
        self.window, self.stride, self.seed_frames, self.token_frames = window, stride, seed_frames, token_frames
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.train_splits, self.val_split, self.test_split = tuple(train_splits), val_split, test_split
        self.predict_split = predict_split
        if selection_split not in ("val", "test"):
            raise ValueError(f"selection_split must be 'val' or 'test', got {selection_split!r}")
        self.selection_split = selection_split
        self.device, self.progress = device, progress
        self._spec: dict[str, Any] | None = None
        self.datasets: dict[str, Dataset] = {}
        self._extractors = extractors

    # ------------------------------------------------------------------------------------- configuration
    def _body_model_root(self) -> Path:
        """The SMPL-X folder the motion features use (and the stages' joint losses)."""
        from semtalk.data.weights import smplx_root_of

        motion = self.extractor_config.get("motion") or {}
        return Path(motion.get("body_model_root") or smplx_root_of(self.root))

    @property
    def extractor_config(self) -> dict[str, Any]:
        """The extractor configuration with this DataModule's window bookkeeping."""
        from semtalk.features.registry import load_extractor_config, with_windows

        return with_windows(load_extractor_config(self._extractors), self.window, self.stride, self.seed_frames)

    @property
    def splits(self) -> tuple[str, ...]:
        return (*self.train_splits, self.val_split, self.test_split)

    def _manifest_if_current(self) -> dict[str, Any] | None:
        manifest = read_manifest(self.cache_dir)
        return manifest if manifest is not None and manifest.get("config") == self.extractor_config else None

    @property
    def spec(self) -> dict[str, Any]:
        """Every size the stages need, as plain data (safe to store in checkpoints)."""
        if self._spec is None:
            manifest = self._manifest_if_current()
            if manifest is not None:
                dims: dict[str, int] = {}
                for rec in manifest["extractors"].values():
                    dims.update(rec["dims"])
                vocab = manifest.get("vocab") or {}
                emb_dim = int(vocab.get("embedding_dim", 0))
            else:
                dims, emb_dim = self._dims_without_cache()
            self._spec = {
                "fps": FPS,
                "window": self.window,
                "stride": self.stride,
                "seed_frames": self.seed_frames,
                "token_frames": self.token_frames,
                "tokens_per_window": self.window // self.token_frames,
                "generation_step": self.window - self.seed_frames,
                "part_dims": dict(PART_DIMS),
                "latent_all_dim": LATENT_ALL_DIM,
                "pose_dim": 165,
                "expression_dim": NUM_EXPRESSIONS,
                "betas_dim": NUM_BETAS,
                "contact_dim": 4,
                "hubert_dim": int(dims.get("hubert", 0)),
                "beat_dim": int(dims.get("beat", 0)),
                "vocab_size": int(dims.get("vocab_size", 0)),
                "word_embedding_dim": emb_dim,
                "word_embeddings": str(self.cache_dir / "word_embeddings.npy") if emb_dim else None,
                "clip_dim": int(dims.get("clip_text", 0)),
                "emotion_dim": int(dims.get("emotion", 0)),
                "num_speakers": NUM_SPEAKERS,
                "speakers": self.speakers,
                "smplx_root": str(self._body_model_root()),
            }
        return dict(self._spec)

    def _dims_without_cache(self) -> tuple[dict[str, int], int]:
        from semtalk.features.registry import feature_dims, plan_extractors, resolve_vocab

        config = self.extractor_config
        root = Beat2Root(self.root)
        vocab = resolve_vocab(root, str(config["words"].get("vocab", "auto"))) if "words" in config else None
        plans = plan_extractors(config, root, vocab=vocab, body_model_digest="-")
        emb = vocab.embeddings.shape[1] if vocab is not None and vocab.embeddings is not None else 0
        return feature_dims(plans), int(emb)

    # ------------------------------------------------------------------------------------- Lightning hooks
    def prepare_data(self) -> None:
        """Build (or bring up to date) the feature cache of every split used; a no-op when current."""
        build_cache(self.root, self.cache_dir, self.extractor_config, splits=self.splits, speakers=self.speakers,
                    device=self.device, progress=self.progress)  # fmt: skip
        self._spec = None

    def setup(self, stage: str | None = None) -> None:
        """Read the cache index (never writes) and make the datasets of `stage`."""
        manifest = read_manifest(self.cache_dir)
        if manifest is None:
            raise DataError(self.cache_dir / MANIFEST, "no feature cache here",
                            "call prepare_data() (Lightning does in fit/test) or run `semtalk cache`")  # fmt: skip
        wanted = self.extractor_config
        if manifest.get("config") != wanted:
            have = manifest.get("config", {})
            differ = sorted(k for k in set(have) | set(wanted) if have.get(k) != wanted.get(k))
            raise DataError(self.cache_dir / MANIFEST, f"the cache was built with other extractor settings ({differ})",
                            "rerun prepare_data() / `semtalk cache` with this configuration")  # fmt: skip
        groups = {"fit": [self.train_splits, (self.val_split,)], "validate": [(self.val_split,)],
                  "test": [(self.test_split,)], "predict": [(self.predict_split,)]}  # fmt: skip
        needed = groups.get(stage or "", [self.train_splits, (self.val_split,), (self.test_split,)])
        for splits in needed:
            entries = self._entries(manifest, splits)
            paths = [self.cache_dir / e["file"] for e in entries]
            frames = [int(e["frames"]) for e in entries]
            ids = [e["clip_id"] for e in entries]
            if splits == self.train_splits and stage != "predict":
                self.datasets["train"] = WindowDataset(paths, frames, self.window, self.stride, self.token_frames, ids)
            else:
                keep = [i for i, n in enumerate(frames)
                        if generation_windows(sequence_length(n), self.window, self.seed_frames) > 0]  # fmt: skip
                ds = SequenceDataset([paths[i] for i in keep], [frames[i] for i in keep], self.window,
                                     self.seed_frames, self.token_frames, [ids[i] for i in keep])  # fmt: skip
                if stage == "predict":
                    if not ds.lengths:
                        raise DataError(self.cache_dir / MANIFEST, f"no clips of split '{self.predict_split}' to "
                                        "predict (or all shorter than one generation window)",
                                        "choose another split with --data.init_args.predict_split")  # fmt: skip
                    self.datasets["predict"] = ds
                else:
                    self.datasets["val" if splits == (self.val_split,) else "test"] = ds
        if self.selection_split == "test" and stage in ("fit", "validate") and "test" not in self.datasets:
            self.setup("test")  # the validation loop runs on the test split

    def _entries(self, manifest: Mapping[str, Any], splits: Sequence[str]) -> list[dict[str, Any]]:
        """Manifest entries of the clips of `splits`/speakers, checked to be present and current."""
        from semtalk.features.registry import EXTRACTORS

        if self.root.is_dir():
            ids = Beat2Root(self.root).clip_ids(splits, self.speakers)
        else:  # a cache alone: its own index
            ids = sorted(
                cid for cid, e in manifest["clips"].items()
                if e.get("split") in splits and (self.speakers is None or e.get("speaker") in self.speakers)
            )  # fmt: skip
        extractors = manifest["extractors"]

        def current(e: Mapping[str, Any] | None) -> bool:
            if e is None or not (self.cache_dir / e["file"]).is_file() or set(e["features"]) != set(extractors):
                return False
            return all(
                e["features"][n]
                == feature_fingerprint(r["fingerprint"], EXTRACTORS[n].sources, e["source_sha256"], e["frames"])
                for n, r in extractors.items()
            )

        out, stale = [], []
        for cid in ids:
            e = manifest["clips"].get(cid)
            if current(e):
                out.append(e)
            else:
                stale.append(cid)
        if stale:
            shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
            raise DataError(self.cache_dir / MANIFEST, f"{len(stale)} clips of {list(splits)} are missing or stale "
                            f"in the cache: {shown}", "rerun prepare_data() / `semtalk cache`")  # fmt: skip
        return out

    def _loader(self, name: str, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        if name not in self.datasets:
            raise RuntimeError(f"call setup() before asking for the {name} DataLoader")
        return DataLoader(
            self.datasets[name],
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled windows; the last incomplete batch is dropped unless the data hold less than one batch."""
        full = len(self.datasets.get("train", [])) >= self.batch_size
        return self._loader("train", self.batch_size, shuffle=True, drop_last=full)

    def val_dataloader(self) -> DataLoader:
        """Whole sequences of the val split, or of the test split when `selection_split="test"`."""
        return self._loader("test" if self.selection_split == "test" else "val", 1, shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", 1, shuffle=False, drop_last=False)

    def predict_dataloader(self) -> DataLoader:
        """Whole sequences of `predict_split`, one clip per batch."""
        return self._loader("predict", 1, shuffle=False, drop_last=False)
