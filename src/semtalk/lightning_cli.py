"""LightningCLI entry of the stages: `semtalk fit|validate|test|predict -c CONFIG.yaml [-c MORE.yaml] [--key value]`.

Models and datamodules are named by import path in the YAML (`model: {class_path: stages.VQStage, ...}`), so the
library never imports the stages. `--export PATH` copies the best checkpoint of a `fit` to a stable path.
"""

from __future__ import annotations

import os
import warnings

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from semtalk.callbacks import export_checkpoint


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
