"""Train the FGD feature extractor on a dataset of one's own (BEAT2's weights only fit BEAT2's motion).

`train_fgd_encoder` fits `FGDAutoencoder` as an autoencoder, as BEAT2's `AESKConv_240_100.bin` was: the rot6d
of all 55 joints `(B, T, 330)` in (the exact input FGD encodes, `fgd_rot6d`), its reconstruction out, on windows
of the **train** split of a BEAT2-format root. The decoder (unused by FGD) reconstructs the rot6d standardised per
channel with the training data's statistics, so joints that move little count as much as those that move a lot;
the first layer's shortcut starts out standardising its input (`standardise_first_shortcut`); the loss adds the
frame-to-frame differences; gradients are clipped; the learning rate warms up, then decays.

The file it writes is `{"model_state": state dict, "identity": "trained:<root name>:<data digest>", "training":
{...}}`; `load_fgd_encoder` reads it with `weights_only=True` like BEAT2's file, and `load_fgd_encoder_file` also
restores the identity, so FGD results name the data the encoder was trained on. Numbers from such an encoder
compare only with numbers from the same file.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from semtalk.atomic import atomic_path
from semtalk.data.beat2 import load_motion
from semtalk.data.root import Beat2Root
from semtalk.metrics.fgd_encoder import (
    TEMPORAL_DOWNSAMPLE,
    FGDAutoencoder,
    file_digest,
    load_fgd_encoder,
    state_digest,
)
from semtalk.metrics.motion_inputs import fgd_rot6d
from semtalk.schedules import warmup_cosine_factor

#: prefix of the identity of encoders trained here
TRAINED_PREFIX = "trained"
#: floor of the per-channel standard deviation the reconstruction target is divided by
MIN_STD = 1e-2
#: share of the steps spent warming the learning rate up, and the gradient-norm clip
WARMUP = 0.1
GRAD_CLIP = 1.0


def training_data_digest(root: Beat2Root, clip_ids: Sequence[str], length: int = 12) -> str:
    """First `length` hex digits of a SHA-256 over the clip ids and the bytes of their motion files."""
    h = hashlib.sha256()
    for cid in sorted(clip_ids):
        h.update(cid.encode())
        h.update(bytes.fromhex(file_digest(root.motion_path(cid), 64)))
    return h.hexdigest()[:length]


def epoch_windows(lengths: Sequence[int], window: int, gen: torch.Generator) -> list[tuple[int, int]]:
    """(clip index, start frame) of the non-overlapping full windows of each clip, from a random phase in
    `[0, window)` per clip (a new tiling every epoch)."""
    out = []
    for c, n in enumerate(lengths):
        phase = int(torch.randint(0, min(window, n - window + 1), (1,), generator=gen)) if n >= window else 0
        out += [(c, s) for s in range(phase, n - window + 1, window)]
    return out


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def rot6d_statistics(poses: Sequence[torch.Tensor], min_std: float = MIN_STD) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (at least `min_std`) of the rot6d of `(T, 165)` clips -> `(330,)`
    each. The decoder learns to reconstruct the standardised rot6d, so that every channel counts, however
    little it moves."""
    total, sq, n = torch.zeros(330, dtype=torch.float64), torch.zeros(330, dtype=torch.float64), 0
    for p in poses:
        x = fgd_rot6d(p).double()
        total += x.sum(0)
        sq += x.pow(2).sum(0)
        n += x.shape[0]
    mean = total / n
    std = (sq / n - mean.pow(2)).clamp(min=0).sqrt().clamp(min=min_std)
    return mean.float(), std.float()


@torch.no_grad()
def standardise_first_shortcut(model: FGDAutoencoder, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Data-dependent initialisation: make the first layer's 1x1 shortcut act on the standardised rot6d.

    Its weight columns are divided by the channel's standard deviation and its bias takes away the mean, so
    `shortcut(x) = V (x - mean) / std + c` exactly (a 1x1 convolution has no padding) for the initial `V`, `c`.
    Without it the encoder starts almost blind to motion: the rot6d moves by a few hundredths around large
    constant values, and the autoencoder tends to collapse to the mean pose.
    """
    conv = model.encoder.layers[0][0].shortcut
    weight = conv.weight / std.to(conv.weight)[None, :, None]
    conv.weight.copy_(weight)
    conv.bias.sub_(torch.einsum("oik,i->o", weight * conv.mask, mean.to(weight)))


def reconstruction_loss(rec: torch.Tensor, target: torch.Tensor, velocity_weight: float = 1.0) -> torch.Tensor:
    """MSE of `(B, T, 330)` plus `velocity_weight` x MSE of the frame-to-frame differences."""
    loss = F.mse_loss(rec, target)
    if velocity_weight:
        loss = loss + velocity_weight * F.mse_loss(rec[:, 1:] - rec[:, :-1], target[:, 1:] - target[:, :-1])
    return loss


def _save_atomic(blob: Mapping[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(dict(blob), tmp)


def train_fgd_encoder(
    root: str | Path,
    out: str | Path,
    epochs: int = 8,
    window: int = 64,
    batch_size: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    speakers: Sequence[int] | None = None,
    velocity_weight: float = 1.0,
    device: str = "cpu",
) -> Path:
    """Train the FGD autoencoder on the train split of a BEAT2-format root and save it to `out`.

    Args:
        root: BEAT2-format folder (`smplxflame_30/`, `train_test_split.csv`); only its `train` clips are read.
        out: the weights file to write (atomically), e.g. `checkpoints/fgd.pt`.
        epochs: passes over the training clips, each cut into non-overlapping windows from a new random
            phase (Adam, cosine learning-rate decay to 0).
        window: frames per training window, a multiple of 16 (the encoder's temporal downsampling).
        batch_size, lr, seed: optimiser batch, peak learning rate, seed of initialisation and shuffling.
        speakers: BEAT2 speaker ids to train on (default: all).
        velocity_weight: weight of the frame-difference term of the reconstruction loss.
        device: `cpu`, `cuda` or `auto`.

    Returns:
        `out`. The file holds `model_state` (the 56 tensors of `FGDAutoencoder`), `identity`
        (`trained:<root name>:<digest of the training clips>`) and `training` (settings, clip count, frames,
        the mean loss of each epoch, seconds taken).
    """
    if window <= 0 or window % TEMPORAL_DOWNSAMPLE:
        raise ValueError(f"window must be a positive multiple of {TEMPORAL_DOWNSAMPLE} frames, got {window}")
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"epochs ({epochs}) and batch_size ({batch_size}) must be >= 1 and lr ({lr}) > 0")
    t0 = time.perf_counter()
    data_root = Beat2Root(root)
    ids = data_root.clip_ids(("train",), speakers)
    if not ids:
        raise ValueError(
            f"{data_root.split_path} lists no train clips{f' of speakers {list(speakers)}' if speakers else ''}"
        )
    poses = [
        torch.from_numpy(np.ascontiguousarray(load_motion(data_root.motion_path(c)).poses, np.float32)) for c in ids
    ]
    lengths = [p.shape[0] for p in poses]
    if max(lengths) < window:
        raise ValueError(
            f"the train clips of {data_root.root} are all shorter than the {window}-frame window; pass a smaller window"
        )
    dev = _resolve_device(device)
    mean, std = (t.to(dev) for t in rot6d_statistics(poses))
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(sum(n // window for n in lengths) / batch_size)
    total_steps = epochs * steps_per_epoch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FGDAutoencoder().to(dev).train()
    standardise_first_shortcut(model, mean, std)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: warmup_cosine_factor(step, total_steps, WARMUP))
    losses: list[float] = []
    windows = 0
    bar = tqdm(range(epochs), desc="FGD autoencoder", unit="epoch", disable=not progress)
    for _ in bar:
        index = epoch_windows(lengths, window, gen)
        windows += len(index)
        order = torch.randperm(len(index), generator=gen).tolist()
        total = 0.0
        for b in range(0, len(order), batch_size):
            batch = torch.stack([poses[c][s : s + window] for c, s in (index[i] for i in order[b : b + batch_size])])
            x = fgd_rot6d(batch).to(dev)
            loss = reconstruction_loss(model.decode(model(x)), (x - mean) / std, velocity_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            opt.step()
            sched.step()
            total += float(loss.detach()) * batch.shape[0]
        losses.append(total / len(index))
        bar.set_postfix(loss=f"{losses[-1]:.5f}")
    name = data_root.root.resolve().name
    training = {
        "root": str(data_root.root),
        "split": "train",
        "speakers": list(speakers) if speakers is not None else None,
        "clips": len(ids),
        "frames": int(sum(p.shape[0] for p in poses)),
        "windows": windows,
        "epochs": epochs,
        "window": window,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "velocity_weight": velocity_weight,
        "min_std": MIN_STD,
        "losses": losses,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    blob = {
        "model_state": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "identity": f"{TRAINED_PREFIX}:{name}:{training_data_digest(data_root, ids)}",
        "training": training,
    }
    out = Path(out)
    _save_atomic(blob, out)
    return out


def read_fgd_metadata(path: str | Path) -> dict[str, Any]:
    """The `identity` and `training` entries of a weights file written by `train_fgd_encoder` (empty for
    other files, e.g. BEAT2's)."""
    blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(blob, Mapping):
        return {}
    return {k: blob[k] for k in ("identity", "training") if k in blob}


def load_fgd_encoder_file(path: str | Path) -> FGDAutoencoder:
    """`load_fgd_encoder`, with the identity of an encoder trained here: `"trained:<root>:<data digest>
    (<file> weights sha256:<prefix>)"`, the digest of the weights alone (`state_digest`), so a re-run that trains
    the same weights names the same encoder although its file records another training time. Any other file
    (BEAT2's `AESKConv_240_100.bin`) keeps its file identity."""
    path = Path(path)
    model = load_fgd_encoder(path)
    identity = read_fgd_metadata(path).get("identity")
    if isinstance(identity, str) and identity:
        model.identity = f"{identity} ({path.name} weights sha256:{state_digest(model.state_dict())})"
    return model
