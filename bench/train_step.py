"""Training-step throughput of every stage: Lightning `Trainer.fit` steps (`training_step`, backward, gradient
clipping as configured, optimizer step, logging) on a fixed random batch shaped like the datamodule's, at demo or
paper size, `32-true` and/or `bf16-mixed` precision.

    python bench/train_step.py --size demo --device cpu
    python bench/train_step.py --size paper --device cuda --precision 32 bf16 --stages base sparse

Reports step time, samples/s, peak memory and the FLOPs of one step (counted with
`torch.utils.flop_counter.FlopCounterMode`: matrix products, convolutions and attention, forward and backward).
On CUDA also the model FLOP utilisation: achieved FLOP/s over `--peak-tflops` (H200 dense bf16: 989).
Upstream checkpoints (tokenizers, global-motion net, base) are written with random weights to a temporary folder;
the stage-1 joint losses run on the synthetic SMPL-X stand-in.
"""

from __future__ import annotations

import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from semtalk.nn.compiled import compile_blocks

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PeakMemory, Timing, base_parser, machine, quiet_logs, report, setup, synchronize  # noqa: E402
from stage_models import STAGES, build_stage, parameter_count, stage_config, synthetic_batch, to_device  # noqa: E402

COLUMNS = ("stage", "size", "precision", "passes", "batch", "params_M", "step_ms", "samples_per_s", "peak_mem_MiB",
           "gflop_per_step", "kops_per_step", "achieved_tflops", "mfu_pct")  # fmt: skip
TRAINER_PRECISION = {"32": "32-true", "bf16": "bf16-mixed"}


class FixedBatches(Dataset):
    """The same collated batch `n` times (a DataLoader with `batch_size=None` hands it over as it is)."""

    def __init__(self, batch: dict[str, torch.Tensor], n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.batch


class StepTimer(L.Callback):
    """Wall time of every training batch (transfer, `training_step`, backward, clipping, optimizer step, logging),
    device synchronised; peak memory from the first timed step on."""

    def __init__(self, device: torch.device, warmup: int) -> None:
        self.device, self.warmup = device, warmup
        self.seconds: list[float] = []
        self.memory = PeakMemory(device)
        self._t0 = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        synchronize(self.device)
        if batch_idx == self.warmup:
            self.memory.__enter__()
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        synchronize(self.device)
        if batch_idx >= self.warmup:
            self.seconds.append(time.perf_counter() - self._t0)


def compile_stage(stage) -> None:
    """`torch.compile` the trained network of a stage in place, block by block (`semtalk.nn.compiled`)."""
    for name in ("generator", "model", "net"):
        module = getattr(stage, name, None)
        if isinstance(module, torch.nn.Module):
            compile_blocks(module)
            return


def count_flops(stage, batch: dict[str, torch.Tensor]) -> float:
    """FLOPs of one `training_step` and its backward (matrix products, convolutions, attention), counted by
    `torch.utils.flop_counter.FlopCounterMode` outside the Trainer."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        stage.training_step(batch, 0).backward()
    stage.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def count_ops(stage, batch: dict[str, torch.Tensor]) -> int:
    """ATen operator calls of one `training_step` and its backward (nested calls included), counted by the
    profiler outside the Trainer: on a GPU each costs host time, so a step of many small operations is bound by
    the host, not by the device."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        stage.training_step(batch, 0).backward()
    stage.zero_grad(set_to_none=True)
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))


def fit_steps(stage, batch, args, device: torch.device, precision: str, clip: float | None) -> StepTimer:
    """`warmup + repeats` steps of `Trainer.fit` on the fixed batch; the timer holds the timed ones."""
    timer = StepTimer(device, args.warmup)
    steps = args.warmup + max(1, args.repeats)
    trainer = L.Trainer(
        accelerator=device.type, devices=1, precision=TRAINER_PRECISION[precision], max_steps=steps, max_epochs=1,
        gradient_clip_val=clip, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[timer],
    )  # fmt: skip
    trainer.fit(stage, DataLoader(FixedBatches(batch, steps), batch_size=None))
    return timer


def bench_stage(name: str, args, device: torch.device, folder: Path, smplx_root: str | None) -> list[dict[str, Any]]:
    cfg = stage_config(name, args.size)
    batch_size = args.batch_size or cfg["batch_size"]
    stage = build_stage(name, args.size, folder, smplx_root)
    if args.masked_passes != "config" and "masked_passes" in stage.hparams:
        stage.hparams.masked_passes = args.masked_passes == "on"
    if args.compile:
        compile_stage(stage)
    batch = synthetic_batch(args.size, batch_size, seed=args.seed)
    rows = []
    has_passes = "batched_passes" in stage.hparams
    variants = [(pr, pa) for pa in (args.passes if has_passes else ["-"]) for pr in args.precision]
    counted: dict[str, float] = {}
    ops: dict[str, int] = {}
    if args.flops or args.ops or device.type == "cuda":  # before any fit: training_step logs outside a Trainer
        stage.to(device).train()
        for passes in dict.fromkeys(pa for _, pa in variants):
            if has_passes:
                stage.hparams.batched_passes = passes == "batched"
            if args.flops or device.type == "cuda":
                counted[passes] = count_flops(stage, to_device(batch, device))
            if args.ops:
                ops[passes] = count_ops(stage, to_device(batch, device))
    for precision, passes in variants:
        if has_passes:
            stage.hparams.batched_passes = passes == "batched"
        flops = counted.get(passes)
        timer = fit_steps(stage, batch, args, device, precision, cfg["trainer"].get("gradient_clip_val"))
        timing = Timing(timer.seconds)
        achieved = flops / timing.median / 1e12 if flops is not None else None
        row = {
            "stage": name,
            "size": args.size,
            "precision": precision,
            "passes": passes,
            "batch": batch_size,
            "params_M": parameter_count(stage) / 1e6,
            "step_ms": timing.median * 1e3,
            "step_ms_mean": timing.mean * 1e3,
            "samples_per_s": batch_size / timing.median,
            "peak_mem_MiB": timer.memory.mib,
            "memory_kind": timer.memory.kind,
            "gflop_per_step": flops / 1e9 if flops is not None else None,
            "kops_per_step": ops[passes] / 1e3 if passes in ops else None,
            "achieved_tflops": achieved,
            "mfu_pct": 100 * achieved / args.peak_tflops if device.type == "cuda" and achieved is not None else None,
            "compiled": bool(args.compile),
            "repeats": len(timer.seconds),
        }
        rows.append(row)
        print(f"  {name} {precision} {passes}: {row['step_ms']:.1f} ms/step, {row['samples_per_s']:.1f} samples/s",
              file=sys.stderr, flush=True)  # fmt: skip
    del stage, batch
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = base_parser(__doc__, precisions=("32", "bf16"))
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="stages to time")
    p.add_argument("--batch-size", type=int, default=None, help="default: the size's configured batch size")
    p.add_argument("--peak-tflops", type=float, default=989.0, help="device peak for the MFU (H200 dense bf16)")
    p.add_argument("--flops", action="store_true", help="count FLOPs on the CPU too (always on CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile the trained network")
    p.add_argument("--ops", action="store_true", help="count the ATen operator calls of a step (kops_per_step)")
    p.add_argument("--no-body-model", action="store_true", help="stage 1 without the joint-position losses")
    p.add_argument(
        "--passes",
        nargs="+",
        choices=("batched", "sequential"),
        default=["batched"],
        help="base/sparse: the three training passes as one batched call or one after another",
    )
    p.add_argument(
        "--masked-passes",
        choices=("config", "on", "off"),
        default="config",
        help="base/sparse: train the masked passes as the size's config says, or force them on (three passes: the "
        "calibration step of `make demo`, the same work whatever the demo config trains) or off",
    )
    args = p.parse_args(argv)
    device = setup(args)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="semtalk-bench-") as tmp, quiet_logs():
        smplx_root = None
        if not args.no_body_model and any(s.startswith("vq_") for s in args.stages):
            from semtalk.body.synthetic_model import write_synthetic_smplx

            smplx_root = str(Path(tmp) / "smplx_models")
            write_synthetic_smplx(Path(smplx_root) / "smplx" / "SMPLX_NEUTRAL_2020.npz", seed=0)
        for name in args.stages:
            rows += bench_stage(name, args, device, Path(tmp) / "upstream", smplx_root)
    notes = [
        "step = one Trainer.fit batch (transfer, training_step, backward, gradient clipping where configured, "
        f"optimizer step, logging); median of {args.repeats} after {args.warmup} warm-up; batches of 64-frame "
        "windows; bf16 = bf16-mixed.",
    ]
    if device.type == "cuda":
        notes.append(f"MFU against {args.peak_tflops:g} TFLOP/s (counted FLOPs of one step / median step time).")
    report("train_step", rows, COLUMNS, machine(device), args.out, notes)
    return rows


if __name__ == "__main__":
    main()
