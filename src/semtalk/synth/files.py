"""Atomic, byte-reproducible file writers for the dataset (temporary file in the same folder + os.replace,
so an interrupted run never leaves a half-written file)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from semtalk.atomic import atomic_path, write_bytes_atomic

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_bytes(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data, fsync=False)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed `.npz` (as `np.savez` writes) with fixed zip timestamps, so equal arrays give equal
    bytes. `np.load` reads it like any npz."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
    return buf.getvalue()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    write_bytes(path, npz_bytes(arrays))


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """32-bit float mono WAV (IEEE float, like BEAT2's `wave16k` files)."""
    buf = io.BytesIO()
    wavfile.write(buf, sample_rate, np.asarray(audio, dtype=np.float32))
    write_bytes(path, buf.getvalue())


def write_with(path: Path, writer: Callable[[Path], None]) -> None:
    """Run `writer(tmp_path)` (a library that only writes to a file name) and move the result into place."""
    with atomic_path(path) as tmp:
        writer(tmp)
