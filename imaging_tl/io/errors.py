"""Errors raised when a scan cannot be read.

Every error names the file and says why in words a researcher understands. Catch
:class:`ScanReadError` to handle all of them; the subclasses tell the reasons apart.

Examples
--------
>>> from imaging_tl.io import read_scan
>>> try:
...     read_scan("sample_dicoms/README.md")
... except ScanReadError as exc:
...     print(type(exc).__name__, "names the file:", "README.md" in str(exc))
NotAnImageError names the file: True
"""

from __future__ import annotations

import os


class ScanReadError(Exception):
    """A file could not be read as an image.

    Parameters
    ----------
    path : str or os.PathLike
        The file that failed.
    reason : str
        What went wrong, in plain words.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotAnImageError(ScanReadError):
    """The file is neither DICOM nor a raster image format we read."""


class NoPixelDataError(ScanReadError):
    """A valid DICOM file without pixel data (RT plan, structured report, ...)."""


class MissingDecoderError(ScanReadError):
    """The pixel data is compressed with a transfer syntax no installed decoder handles."""


class CorruptPixelDataError(ScanReadError):
    """The pixel data is truncated or cannot be decoded."""


class InconsistentHeaderError(ScanReadError):
    """The header contradicts itself or the pixel data (e.g. BitsStored > BitsAllocated)."""


class InvalidHeaderValueError(InconsistentHeaderError):
    """A header element holds a value no image can have (NaN/inf RescaleSlope, BitsStored 0).

    Parameters
    ----------
    path : str or os.PathLike
        The file that failed.
    tag : str
        The DICOM keyword of the element, e.g. ``"RescaleSlope"``.
    reason : str
        What is wrong with its value.

    Examples
    --------
    >>> e = InvalidHeaderValueError("a.dcm", "RescaleSlope", "RescaleSlope is nan")
    >>> e.tag, isinstance(e, InconsistentHeaderError)
    ('RescaleSlope', True)
    """

    def __init__(self, path: str | os.PathLike, tag: str, reason: str) -> None:
        self.tag = tag
        super().__init__(path, reason)


class ImageTooLargeError(ScanReadError):
    """The image would need more memory than allowed: its header declares more values than
    ``max_pixels`` (see :mod:`imaging_tl.io.limits`), or decoding it ran out of memory."""


class DecompressionBombError(ImageTooLargeError):
    """Compressed data that inflates far beyond its size (a gzip or image "bomb")."""


class UnsupportedImageError(ScanReadError):
    """A readable image of a kind we deliberately do not handle (named in the message)."""


class FrameOutOfRangeError(ScanReadError, IndexError):
    """``frame=`` asks for a frame the file does not have (also an :class:`IndexError`)."""


class FileUnreadableError(ScanReadError, OSError):
    """The file does not exist or cannot be opened (also an :class:`OSError`)."""


class NotARegularFileError(FileUnreadableError):
    """A FIFO, socket or device: never opened for reading (reading one can block forever)."""
