"""Reading scans: DICOM (by content) and raster images, with correct pixels.

Importing this package does not import TensorFlow.
"""

from imaging_tl.io.errors import (
    CorruptPixelDataError,
    FileUnreadableError,
    FrameOutOfRangeError,
    InconsistentHeaderError,
    MissingDecoderError,
    NoPixelDataError,
    NotAnImageError,
    ScanReadError,
    UnsupportedImageError,
)
from imaging_tl.io.reader import read_header, read_scan
from imaging_tl.io.scan import Scan

__all__ = [
    "CorruptPixelDataError",
    "FileUnreadableError",
    "FrameOutOfRangeError",
    "InconsistentHeaderError",
    "MissingDecoderError",
    "NoPixelDataError",
    "NotAnImageError",
    "Scan",
    "ScanReadError",
    "UnsupportedImageError",
    "read_header",
    "read_scan",
]
