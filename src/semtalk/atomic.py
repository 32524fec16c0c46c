"""Atomic file writes: a temporary file in the target's folder, renamed over the target only once complete, so a
crash never leaves half a file (readers see the old file or the new one). The files get the mode a plain
`open(path, "w")` would give (temporary files from `tempfile.mkstemp` are owner-only)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_UMASK = os.umask(0)  # read once at import: os.umask can only be read by setting it, which races with threads
os.umask(_UMASK)


def file_mode() -> int:
    """0o666 less the process umask (as read at import)."""
    return 0o666 & ~_UMASK


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to `path` (ending in `suffix`, for writers that go by the extension); when the
    block completes it replaces `path`, when it raises the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | Path, data: bytes, fsync: bool = True) -> None:
    """Write `data` to `path` atomically; `fsync`: flush it to the disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))
