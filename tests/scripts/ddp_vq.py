"""Two gloo ranks on CPU fit a tiny VQStage on different data; each rank saves its codebooks."""

import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from motion_fixtures import PartWindows  # noqa: E402
from stages.vq import VQStage  # noqa: E402


class Books(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out = out

    def on_train_start(self, trainer, pl_module):
        if trainer.global_rank == 0:
            torch.save(pl_module.model.quantizer.codebooks.detach().clone(), self.out / "codebooks_start.pt")

    def on_train_end(self, trainer, pl_module):
        torch.save(
            pl_module.model.quantizer.codebooks.detach().clone(), self.out / f"codebooks_rank{trainer.global_rank}.pt"
        )


def main(out: str) -> None:
    out_dir = Path(out)
    L.seed_everything(0)
    stage = VQStage("upper", width=32, code_dim=16, depth=1, num_quantizers=3, codebook_size=16, dropout=0.0)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=6, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[Books(out_dir)],
    )  # fmt: skip
    # each rank sees different windows: the sampler splits the dataset, and the seed differs by rank below
    data = PartWindows(n=32, frames=32, seed=1)
    trainer.fit(stage, DataLoader(data, batch_size=4, shuffle=True))


if __name__ == "__main__":
    main(sys.argv[1])
