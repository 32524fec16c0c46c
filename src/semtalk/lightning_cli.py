"""LightningCLI entry of the stages: `semtalk fit|validate|test|predict -c CONFIG.yaml [-c MORE.yaml] [--key value]`.

Models and datamodules are named by import path in the YAML (`model: {class_path: stages.VQStage, ...}`), so the
library never imports the stages.
"""

from __future__ import annotations

import os
import warnings

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI


class SemTalkCLI(LightningCLI):
    """LightningCLI in subclass mode for both the model and the datamodule."""


def run_cli(argv: list[str]) -> SemTalkCLI:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Attribute .* is an instance of `nn.Module`.*")
    return SemTalkCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=argv,
        save_config_kwargs={"overwrite": True},
    )
