"""Map time intervals (TextGrid words, semantic rows) onto 30 fps frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semtalk.body.joints import FPS


def first_match(starts: Sequence[float], ends: Sequence[float], num_frames: int, fps: float = FPS) -> np.ndarray:
    """For each frame i at `t = i / fps`, the index of the first interval (in the given order) with
    `start <= t <= end` (both inclusive, so a shared boundary goes to the earlier interval), or -1.

    Returns `(num_frames,)` int64.
    """
    t = np.arange(num_frames, dtype=np.float64) / fps
    out = np.full(num_frames, -1, dtype=np.int64)
    for k in range(len(starts) - 1, -1, -1):  # earlier intervals overwrite later ones
        lo = int(np.searchsorted(t, starts[k], side="left"))
        hi = int(np.searchsorted(t, ends[k], side="right"))
        if hi > lo:
            out[lo:hi] = k
    return out
