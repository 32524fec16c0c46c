"""Stick-figure rendering of SMPL-X joints (matplotlib, no display needed) for previews and videos."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semtalk.body.joints import PARENTS


def skeleton_panel(
    rows: Sequence[tuple[str, np.ndarray]],
    frames: Sequence[int],
    size: float = 1.6,
    dpi: int = 60,
) -> np.ndarray:
    """Render a grid of stick figures, front view (x right, y up): one row per motion, one column per frame.

    Args:
        rows: (label, joints `(T, 55, 3)` in metres) per row, e.g. generated and ground truth.
        frames: frame indices to draw (clipped to each motion's length).
        size: inches per cell; dpi: resolution.

    Returns:
        `(H, W, 3)` uint8 RGB image.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(rows), len(frames), figsize=(size * len(frames), size * 1.4 * len(rows)), dpi=dpi, squeeze=False
    )
    for r, (label, joints) in enumerate(rows):
        centre = joints[:, 0:1, :].mean(axis=0)
        for c, f in enumerate(frames):
            ax = axes[r][c]
            j = joints[min(f, len(joints) - 1)] - centre[0]
            for child, parent in enumerate(PARENTS):
                if parent >= 0:
                    ax.plot(
                        [j[parent, 0], j[child, 0]],
                        [j[parent, 1], j[child, 1]],
                        "-",
                        lw=1.2,
                        color="tab:blue" if child < 22 else "tab:orange",
                    )
            ax.set_xlim(-0.9, 0.9)
            ax.set_ylim(-1.3, 0.8)
            ax.set_aspect("equal")
            ax.axis("off")
            if c == 0:
                ax.set_title(label, fontsize=8, loc="left")
            elif r == 0:
                ax.set_title(f"frame {f}", fontsize=7)
    fig.tight_layout(pad=0.2)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def psi_plot(psi: np.ndarray, sem: np.ndarray | None = None, beta: float = 0.5, fps: int = 30, dpi: int = 70):
    """ψ over time against the semantic annotation: `psi (n,)`, `sem (n,)` -> `(H, W, 3)` uint8 RGB image."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    t = np.arange(len(psi)) / fps
    fig, ax = plt.subplots(figsize=(8, 2.2), dpi=dpi)
    if sem is not None:
        ax.fill_between(
            t,
            0,
            (np.asarray(sem[: len(psi)]) > 0).astype(float),
            step="mid",
            color="tab:orange",
            alpha=0.3,
            label="annotated semantic",
        )
    ax.plot(t, psi, color="tab:blue", lw=1.2, label="ψ (Sem-gate)")
    ax.axhline(beta, color="k", ls="--", lw=0.8, label=f"β = {beta}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("seconds")
    ax.legend(loc="upper right", fontsize=7, ncol=3)
    fig.tight_layout(pad=0.3)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image
