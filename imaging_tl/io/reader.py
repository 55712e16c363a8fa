"""read_scan(): dispatch on file content (not the extension) to the DICOM or raster loader."""

from __future__ import annotations

import gzip
import io
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from imaging_tl.io.errors import (
    CorruptPixelDataError,
    DecompressionBombError,
    FileUnreadableError,
    ImageTooLargeError,
    NotAnImageError,
    NotARegularFileError,
    ScanReadError,
)
from imaging_tl.io.limits import (
    RATIO_CHECK_FROM,
    check_pixel_count,
    max_gzip_ratio,
    max_inflated_bytes,
    pixel_count,
)
from imaging_tl.io.limits import max_pixels as default_max_pixels
from imaging_tl.io.scan import Scan

if TYPE_CHECKING:
    from imaging_tl.io.decode_plan import DecodeTarget

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


def _open_regular(path: str) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as exc:
        raise FileUnreadableError(path, "no such file") from exc
    except IsADirectoryError as exc:
        raise FileUnreadableError(path, "is a folder, not a file") from exc
    except OSError as exc:
        raise FileUnreadableError(path, f"cannot be opened ({exc.strerror})") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise FileUnreadableError(path, "is a folder, not a file")
        raise NotARegularFileError(
            path, f"is a {file_type_name(mode)}, not a regular file: it is never read"
        )
    return os.fdopen(fd, "rb")


def is_regular_file(path: str | os.PathLike) -> bool:
    """True for a regular file (after symbolic links): the only kind the loaders open.

    A FIFO, socket or device found while walking a folder is skipped with this test,
    never opened (opening a FIFO for reading blocks until a writer comes).

    Examples
    --------
    >>> is_regular_file("README.md"), is_regular_file("imaging_tl")
    (True, False)
    """
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def file_type_name(mode: int) -> str:
    """A word for the kind of file ``mode`` (``os.stat().st_mode``) describes.

    Examples
    --------
    >>> import stat
    >>> file_type_name(stat.S_IFIFO), file_type_name(stat.S_IFREG)
    ('FIFO (named pipe)', 'regular file')
    """
    for test, name in (
        (stat.S_ISREG, "regular file"), (stat.S_ISDIR, "folder"),
        (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
        (stat.S_ISLNK, "symbolic link"),
    ):
        if test(mode):
            return name
    return "special file"


def _inflate(f: BinaryIO, path: str) -> bytes:
    """Inflate a gzip stream, refusing more than the limits allow (a gzip bomb)."""
    limit, ratio = max_inflated_bytes(), max_gzip_ratio()
    compressed = max(os.fstat(f.fileno()).st_size, 1)
    chunks: list[bytes] = []
    total = 0
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as gz:
            while True:
                chunk = gz.read(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise DecompressionBombError(
                        path, f"the gzip data inflates past {limit:,} bytes "
                        "(IMAGING_TL_MAX_INFLATED_BYTES); not read"
                    )
                if total > RATIO_CHECK_FROM and total > ratio * compressed:
                    raise DecompressionBombError(
                        path, f"the gzip data inflates more than {ratio} times its size of "
                        f"{compressed:,} bytes (a gzip bomb? IMAGING_TL_MAX_GZIP_RATIO); "
                        "not read"
                    )
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptPixelDataError(path, f"the gzip data is truncated or corrupt ({exc})") from exc
    return b"".join(chunks)


def open_scan_source(path: str) -> tuple[str | BinaryIO, str | None, list[str]]:
    """Open ``path``, un-gzip it if needed and name its format.

    Only regular files are opened: a FIFO, socket or device raises
    :class:`NotARegularFileError` at once (reading one could block forever). Gzip data is
    inflated within :func:`imaging_tl.io.limits.max_inflated_bytes` and
    :func:`~imaging_tl.io.limits.max_gzip_ratio` (else :class:`DecompressionBombError`).

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
    with _open_regular(path) as f:
        try:
            head = f.read(HEAD_SIZE)
        except OSError as exc:
            raise FileUnreadableError(path, f"cannot be read ({exc.strerror})") from exc
        kind = sniff(head)
        if kind != "gzip":
            return path, kind, []
        f.seek(0)
        data = _inflate(f, path)
    kind = sniff(data[:HEAD_SIZE])
    if kind == "gzip":
        raise NotAnImageError(path, "a gzip file inside a gzip file is not read")
    return io.BytesIO(data), kind, ["gunzip"]


@contextmanager
def typed_errors(path: str) -> Iterator[None]:
    """Let only :class:`ScanReadError` out: running out of memory and any decoder failure
    the specific handlers missed become typed errors naming the file.

    Examples
    --------
    >>> try:
    ...     with typed_errors("a.dcm"):
    ...         raise MemoryError()
    ... except ImageTooLargeError as e:
    ...     print(e.reason[:30])
    ran out of memory while readin
    """
    try:
        yield
    except ScanReadError:
        raise
    except MemoryError as exc:
        raise ImageTooLargeError(
            path, "ran out of memory while reading the image (its header declares more "
            "data than this machine can hold); lower IMAGING_TL_MAX_PIXELS to refuse such "
            "files before decoding"
        ) from exc
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except Exception as exc:  # noqa: BLE001 - a decoder's own error type, made typed
        if type(exc).__name__ == "DecompressionBombError":  # Pillow's
            raise DecompressionBombError(path, f"the image decoder refused it: {exc}") from exc
        raise CorruptPixelDataError(
            path, f"could not be read ({type(exc).__name__}: {exc})"
        ) from exc


def read_scan(
    path: str | os.PathLike, *, frame: int | None = None, max_pixels: int | None = None,
    target: DecodeTarget | None = None,
) -> Scan:
    """Read one scan: DICOM (detected by content), PNG, JPEG or TIFF; gzipped DICOM too.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    frame : int, optional
        0-based frame of a multi-frame DICOM (or TIFF page). None reads every frame of a
        multi-frame DICOM (``F x H x W`` or ``F x H x W x 3``).
    max_pixels : int, optional
        The most values (frames x rows x columns x samples) the read may decode, checked
        from the header before decoding; default :func:`imaging_tl.io.limits.max_pixels`
        (``IMAGING_TL_MAX_PIXELS``, else 2**29).
    target : imaging_tl.io.decode_plan.DecodeTarget, optional
        The size the stages after reading need (the decode plan, built from a pipeline
        by :func:`imaging_tl.stages.decode_target`). A JPEG 2000 or baseline JPEG image
        (DICOM frame or JPEG file) that is at least twice as large is decoded at the
        coarsest resolution still at least that size; ``meta`` Rows, Columns and
        PixelSpacing follow, and ``provenance`` records the scale. None (default)
        decodes in full.

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
        :class:`FileUnreadableError` (:class:`NotARegularFileError` for a FIFO, socket
        or device), :class:`ImageTooLargeError` (:class:`DecompressionBombError`),
        :class:`InvalidHeaderValueError`. Nothing else escapes: out of memory and any
        decoder's own error become one of these.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> scan = read_scan(get_testdata_file("CT_small.dcm", download=False))
    >>> scan.pixels.shape, scan.meta["Modality"], scan.provenance[-1]
    ((128, 128), 'CT', 'modality_lut: slope=1 intercept=-1024')
    """
    path = os.fspath(path)
    limit = default_max_pixels() if max_pixels is None else int(max_pixels)
    with typed_errors(path):
        source, kind, provenance = open_scan_source(path)
        if kind in ("dicom", "dicom-nometa"):
            from imaging_tl.io.dicom_pixels import read_dicom

            return read_dicom(
                source, path, frame=frame, has_preamble=kind == "dicom",
                provenance=provenance, max_pixels=limit, target=target,
            )
        if kind in ("png", "jpeg", "tiff"):
            from imaging_tl.io.raster import read_raster

            return read_raster(
                source, path, kind, frame=frame, provenance=provenance, max_pixels=limit,
                target=target,
            )
    raise NotAnImageError(
        path, "not a DICOM, PNG, JPEG or TIFF file (the content matches none of them)"
    )


def read_header(path: str | os.PathLike, *, max_pixels: int | None = None) -> dict[str, Any]:
    """The ``meta`` that :func:`read_scan` would return, without decoding the pixels.

    For building manifests and patient-level splits over many files: a header read costs
    about a millisecond where a decode can cost a hundred. Checks that need the pixels
    (corrupt compressed data) are not made.

    Parameters
    ----------
    path : str or os.PathLike
        The file (DICOM by content, also gzipped; PNG, JPEG, TIFF).
    max_pixels : int, optional
        As in :func:`read_scan`: a header declaring more values is refused the same way.

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
    limit = default_max_pixels() if max_pixels is None else int(max_pixels)
    with typed_errors(path):
        source, kind, _ = open_scan_source(path)
        if kind in ("dicom", "dicom-nometa"):
            from imaging_tl.io.dicom_pixels import checked_header_meta

            return checked_header_meta(source, path, kind == "dicom", limit)
        if kind in ("png", "jpeg", "tiff"):
            from imaging_tl.io.raster import read_raster_header

            meta = read_raster_header(source, path, kind)
            check_pixel_count(path, raster_values(meta), limit)
            return meta
    raise NotAnImageError(
        path, "not a DICOM, PNG, JPEG or TIFF file (the content matches none of them)"
    )


def raster_values(meta: dict[str, Any]) -> int:
    """Values a raster image of this ``meta`` holds once decoded.

    Examples
    --------
    >>> raster_values({"Rows": 2, "Columns": 3, "SamplesPerPixel": 3})
    18
    """
    return pixel_count(
        rows=meta["Rows"], columns=meta["Columns"], samples=meta["SamplesPerPixel"]
    )
