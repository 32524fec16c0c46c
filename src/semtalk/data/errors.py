"""The error every reader raises on bad input: it names the file, the problem and what to do."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad or inconsistent input data.

    Args:
        path: the offending file (or folder).
        problem: what is wrong, with the numbers that show it.
        fix: what the user can do about it.
    """

    def __init__(self, path: str | Path, problem: str, fix: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)
