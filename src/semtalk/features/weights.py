"""Find pretrained encoder weights on this machine only (never download) and say where to put them if absent."""

from __future__ import annotations

import os
from pathlib import Path


class MissingWeightsError(FileNotFoundError):
    """Pretrained weights the configuration names are not on disk; the message says where to put them."""


def hf_local_dir(model: str, *, what: str, config_key: str) -> Path:
    """A local folder, or the snapshot of hub repo `model` in the local Hugging Face cache."""
    if Path(model).expanduser().is_dir():
        return Path(model).expanduser()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=model, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, HFValidationError, ...
        home = os.environ.get("HF_HOME", "~/.cache/huggingface")
        raise MissingWeightsError(
            f"{what} weights '{model}' are neither a local folder nor in the Hugging Face cache ({home}). "
            f"Fix: on a machine with network run `huggingface-cli download {model}` (same HF_HOME), or set "
            f"`{config_key}` to a folder holding config.json and the weights ({exc.__class__.__name__})"
        ) from exc


def modelscope_candidates(model_id: str) -> list[Path]:
    """Folders where ModelScope keeps a downloaded model `org/name`."""
    roots = []
    if os.environ.get("MODELSCOPE_CACHE"):
        roots.append(Path(os.environ["MODELSCOPE_CACHE"]))
    roots.append(Path("~/.cache/modelscope/hub").expanduser())
    out = []
    for r in roots:
        out += [r / "models" / model_id, r / model_id]
    return out
