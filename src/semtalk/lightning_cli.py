"""LightningCLI entry of the stages: `semtalk fit|validate|test|predict -c CONFIG.yaml [-c MORE.yaml] [--key value]`.

Models and datamodules are named by import path in the YAML (`model: {class_path: stages.VQStage, ...}`), so the
library never imports the stages. `--export PATH` copies the best checkpoint of a `fit` to a stable path.
`--ckpt_path` is read with `weights_only=True` (no pickled code runs) and must be a checkpoint of the configured stage.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from semtalk.callbacks import export_checkpoint
from semtalk.tokenizer import TOKENIZER_KEY, load_checkpoint


def check_ckpt_path(config: Any) -> None:
    """Refuse a `--ckpt_path` that is not a plain-data checkpoint of the configured model, naming the file and the
    mismatch. LightningCLI reads the checkpoint's hyperparameters over the configuration before anything runs, so a
    checkpoint of another stage (or another part) would otherwise fail obscurely or silently train the wrong thing.
    `config` is the subcommand's configuration (`ckpt_path`, `model.class_path`, `model.init_args`)."""
    path = config.get("ckpt_path")
    if not path or not Path(path).is_file():
        return  # Lightning's keywords ("last", "hpc") or a missing file, which Lightning reports
    ckpt = load_checkpoint(path)  # weights_only: a file with pickled code is refused here, by name
    model = config.get("model") or {}
    hparams = ckpt.get("hyper_parameters") or {}
    want, have = model.get("class_path"), hparams.get("_class_path")
    fix = "Fix: resume from this stage's own runs/<name>/checkpoints/last.ckpt, or drop --ckpt_path"
    if want and have and want != have:
        raise ValueError(f"{path}: a checkpoint of {have}, but this run trains {want}. {fix}")
    init_args = model.get("init_args") or {}
    foreign = sorted(k for k in hparams if not k.startswith("_") and k not in init_args) if init_args else []
    if want and foreign:  # written outside the command line: no class path, but arguments of another class
        raise ValueError(f"{path}: its hyperparameters {foreign} are not arguments of {want}: a checkpoint of "
                         f"another stage. {fix}")  # fmt: skip
    card = ckpt.get(TOKENIZER_KEY) or {}
    part = (model.get("init_args") or {}).get("part")
    if card.get("part") and part and card["part"] != part:
        raise ValueError(
            f"{path}: a tokenizer checkpoint of part '{card['part']}', but this run trains part '{part}'. Fix: "
            f"resume from runs/vq_{part}/checkpoints/last.ckpt, or drop --ckpt_path"
        )


class SemTalkCLI(LightningCLI):
    """LightningCLI in subclass mode for both the model and the datamodule, plus `--export`."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.spec", "model.init_args.spec", apply_on="instantiate")
        parser.add_argument(
            "--export",
            type=str | None,
            default=None,
            help="after fit: copy the best checkpoint (or the last) to this path, atomically",
        )

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            check_ckpt_path(self.config[subcommand])

    def before_instantiate_classes(self) -> None:
        # the trainer restores `--ckpt_path` with weights_only=True whatever torch's default or environment says
        cfg = self.config.get(self.config.get("subcommand") or "")
        if cfg is not None and "weights_only" in cfg and cfg.get("weights_only") is None:
            cfg["weights_only"] = True

    def after_fit(self) -> None:
        export = self.config[self.subcommand].get("export")
        if export:
            export_checkpoint(self.trainer, export)


def run_cli(argv: list[str]) -> SemTalkCLI:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    return SemTalkCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=argv,
        save_config_kwargs={"overwrite": True},
    )
