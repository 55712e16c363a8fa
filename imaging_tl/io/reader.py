"""read_scan(): dispatch on file content to the DICOM or raster loader."""

from __future__ import annotations

import os

from imaging_tl.io.scan import Scan


def read_scan(path: str | os.PathLike, *, frame: int | None = None) -> Scan:
    """Read one scan. (Being written in the foundation issue.)"""
    raise NotImplementedError("read_scan is being written")
