"""Reading scans: DICOM (by content) and raster images, with correct pixels.

- :func:`read_scan` -> :class:`Scan` (float32 pixels, normalised ``meta``, provenance);
- :func:`read_header` -> the same ``meta`` without decoding the pixels;
- :mod:`imaging_tl.io.census` -> one row per file of a folder and a lint summary.

Every failure is a :class:`ScanReadError` subclass naming the file and the reason; the
limits that keep hostile files from exhausting memory are in :mod:`imaging_tl.io.limits`.
Importing this package imports neither TensorFlow nor pydicom (loaded on first read).

Examples
--------
>>> from imaging_tl.io import read_scan
>>> scan = read_scan("sample_dicoms/SYN0001/st1_im01.png")
>>> scan.pixels.dtype, scan.pixels.ndim
(dtype('float32'), 2)
"""

from imaging_tl.io.errors import (
    CorruptPixelDataError,
    DecompressionBombError,
    FileUnreadableError,
    FrameOutOfRangeError,
    ImageTooLargeError,
    InconsistentHeaderError,
    InvalidHeaderValueError,
    MissingDecoderError,
    NoPixelDataError,
    NotAnImageError,
    NotARegularFileError,
    ScanReadError,
    UnsupportedImageError,
)
from imaging_tl.io.pseudonyms import pseudonym
from imaging_tl.io.reader import read_header, read_scan
from imaging_tl.io.scan import Scan

__all__ = [
    "CorruptPixelDataError",
    "DecompressionBombError",
    "FileUnreadableError",
    "FrameOutOfRangeError",
    "ImageTooLargeError",
    "InconsistentHeaderError",
    "InvalidHeaderValueError",
    "MissingDecoderError",
    "NoPixelDataError",
    "NotARegularFileError",
    "NotAnImageError",
    "Scan",
    "ScanReadError",
    "UnsupportedImageError",
    "pseudonym",
    "read_header",
    "read_scan",
]
