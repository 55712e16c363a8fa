"""read_scan(): dispatch on file content (not the extension) to the DICOM or raster loader."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from typing import Any, BinaryIO

from imaging_tl.io.errors import CorruptPixelDataError, FileUnreadableError, NotAnImageError
from imaging_tl.io.scan import Scan

#: bytes read to tell formats apart (DICOM's ``DICM`` marker sits at 128..131).
HEAD_SIZE = 132


def sniff(head: bytes) -> str | None:
    """Name the format of a file from its first :data:`HEAD_SIZE` bytes.

    Returns
    -------
    str or None
        ``"dicom"`` (preamble + ``DICM``), ``"dicom-nometa"`` (a bare data set, to be
        confirmed by parsing), ``"gzip"``, ``"png"``, ``"jpeg"``, ``"tiff"``, or None.

    Examples
    --------
    >>> sniff(bytes(128) + b"DICM")
    'dicom'
    >>> sniff(b"\\x1f\\x8b\\x08\\x00") , sniff(b"hello world") is None
    ('gzip', True)
    """
    from imaging_tl.io.dicom_pixels import looks_like_dicom_without_meta
    from imaging_tl.io.raster import sniff_raster

    if head[128:132] == b"DICM":
        return "dicom"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    raster = sniff_raster(head)
    if raster:
        return raster
    if looks_like_dicom_without_meta(head):
        return "dicom-nometa"
    return None


def open_scan_source(path: str) -> tuple[str | BinaryIO, str | None, list[str]]:
    """Open ``path``, un-gzip it if needed and name its format.

    Returns
    -------
    (source, kind, provenance)
        ``source`` is the path itself or an in-memory buffer (gzip), ``kind`` as in
        :func:`sniff`, ``provenance`` holds ``"gunzip"`` for gzipped files.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> open_scan_source(get_testdata_file("CT_small.dcm", download=False))[1]
    'dicom'
    """
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_SIZE)
    except FileNotFoundError as exc:
        raise FileUnreadableError(path, "no such file") from exc
    except IsADirectoryError as exc:
        raise FileUnreadableError(path, "is a folder, not a file") from exc
    except OSError as exc:
        raise FileUnreadableError(path, f"cannot be opened ({exc.strerror})") from exc
    kind = sniff(head)
    if kind != "gzip":
        return path, kind, []
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptPixelDataError(path, f"the gzip data is truncated or corrupt ({exc})") from exc
    kind = sniff(data[:HEAD_SIZE])
    if kind == "gzip":
        raise NotAnImageError(path, "a gzip file inside a gzip file is not read")
    return io.BytesIO(data), kind, ["gunzip"]


def read_scan(path: str | os.PathLike, *, frame: int | None = None) -> Scan:
    """Read one scan: DICOM (detected by content), PNG, JPEG or TIFF; gzipped DICOM too.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    frame : int, optional
        0-based frame of a multi-frame DICOM (or TIFF page). None reads every frame of a
        multi-frame DICOM (``F x H x W`` or ``F x H x W x 3``).

    Returns
    -------
    Scan
        ``pixels`` float32; DICOM grey values in modality units (after the Modality LUT,
        e.g. Hounsfield units for CT), colour as RGB. ``meta`` holds the normalised header
        fields (never the patient's name or birth date): the windows, VOI LUTs and
        inversion are recorded there for the windowing stage, not applied. ``provenance``
        lists what was applied.

    Raises
    ------
    ScanReadError
        A subclass naming the file and the reason: :class:`NotAnImageError`,
        :class:`NoPixelDataError`, :class:`MissingDecoderError`,
        :class:`CorruptPixelDataError`, :class:`InconsistentHeaderError`,
        :class:`UnsupportedImageError`, :class:`FrameOutOfRangeError`,
        :class:`FileUnreadableError`.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> scan = read_scan(get_testdata_file("CT_small.dcm", download=False))
    >>> scan.pixels.shape, scan.meta["Modality"], scan.provenance[-1]
    ((128, 128), 'CT', 'modality_lut: slope=1 intercept=-1024')
    """
    path = os.fspath(path)
    source, kind, provenance = open_scan_source(path)
    if kind in ("dicom", "dicom-nometa"):
        from imaging_tl.io.dicom_pixels import read_dicom

        return read_dicom(
            source, path, frame=frame, has_preamble=kind == "dicom", provenance=provenance
        )
    if kind in ("png", "jpeg", "tiff"):
        from imaging_tl.io.raster import read_raster

        return read_raster(source, path, kind, frame=frame, provenance=provenance)
    raise NotAnImageError(
        path, "not a DICOM, PNG, JPEG or TIFF file (the content matches none of them)"
    )


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """The ``meta`` that :func:`read_scan` would return, without decoding the pixels.

    For building manifests and patient-level splits over many files: a header read costs
    about a millisecond where a decode can cost a hundred. Checks that need the pixels
    (corrupt compressed data) are not made.

    Parameters
    ----------
    path : str or os.PathLike
        The file (DICOM by content, also gzipped; PNG, JPEG, TIFF).

    Returns
    -------
    dict
        The same keys as ``Scan.meta`` (never the patient's name or birth date).

    Raises
    ------
    ScanReadError
        As :func:`read_scan` for files that are not images, have no pixel data or whose
        header is broken.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> meta = read_header(get_testdata_file("CT_small.dcm", download=False))
    >>> meta["Modality"], meta["Rows"], meta["PatientID"]
    ('CT', 128, '1CT1')
    """
    path = os.fspath(path)
    source, kind, _ = open_scan_source(path)
    if kind in ("dicom", "dicom-nometa"):
        from imaging_tl.io.dicom_header import header_meta
        from imaging_tl.io.dicom_pixels import (
            damaged_header_errors,
            ensure_transfer_syntax,
            read_dataset,
            require_pixel_data,
        )

        defer = 4096 if isinstance(source, str) else None  # pixel data stays on disk
        ds = read_dataset(source, path, has_preamble=kind == "dicom", defer_size=defer)
        with damaged_header_errors(path):
            require_pixel_data(ds, path)
            ensure_transfer_syntax(ds, path, [])
            return header_meta(ds)
    if kind in ("png", "jpeg", "tiff"):
        from imaging_tl.io.raster import read_raster_header

        return read_raster_header(source, path, kind)
    raise NotAnImageError(
        path, "not a DICOM, PNG, JPEG or TIFF file (the content matches none of them)"
    )
