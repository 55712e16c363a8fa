"""``WeightsFileError``: the one error for weights files that are missing, damaged or wrong."""

from __future__ import annotations

from pathlib import Path

__all__ = ["WeightsFileError"]


class WeightsFileError(ValueError):
    """A weights file is missing, damaged or not what its name says.

    Attributes
    ----------
    path : str
        The file (or the backbone / layer name when no file is involved).
    reason : str
        What is wrong with it.

    Examples
    --------
    >>> str(WeightsFileError("w.pth", "truncated"))
    'w.pth: truncated'
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")
