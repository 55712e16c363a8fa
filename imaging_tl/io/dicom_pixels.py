"""DICOM pixels: decode, Modality LUT, colour to RGB, frames -> float32.

Decoding goes through pydicom's pixel handlers (pylibjpeg plugins for the compressed
transfer syntaxes); every failure becomes a :class:`~imaging_tl.io.ScanReadError` subclass
whose message says what to do. VOI (windowing) and the presentation inversion are *not*
applied here: they are recorded in ``meta`` by :mod:`imaging_tl.io.dicom_header` for the
windowing stage.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, pixel_array
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from imaging_tl.io.decode_plan import DecodeTarget, reduced_dicom_pixels, scaled_meta
from imaging_tl.io.dicom_checks import check_codestream_size, check_header
from imaging_tl.io.dicom_header import (
    HeaderValueError,
    has_pixel_data,
    header_int,
    header_meta,
    rescale,
    transfer_syntax,
)
from imaging_tl.io.errors import (
    CorruptPixelDataError,
    FrameOutOfRangeError,
    InconsistentHeaderError,
    InvalidHeaderValueError,
    MissingDecoderError,
    NoPixelDataError,
    NotAnImageError,
    ScanReadError,
    UnsupportedImageError,
)
from imaging_tl.io.scan import Scan

# What to `pip install` for each family of compressed transfer syntaxes (by UID prefix).
_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.5": "pylibjpeg pylibjpeg-libjpeg",  # JPEG baseline/extended
    "1.2.840.10008.1.2.4.7": "pylibjpeg pylibjpeg-libjpeg",  # JPEG lossless
    "1.2.840.10008.1.2.4.8": "pylibjpeg pylibjpeg-libjpeg",  # JPEG-LS
    "1.2.840.10008.1.2.4.9": "pylibjpeg pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.20": "pylibjpeg pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE
}
_NATIVE_BY_ENCODING = {
    (True, True): ImplicitVRLittleEndian,
    (False, True): ExplicitVRLittleEndian,
    (False, False): ExplicitVRBigEndian,
}


def decoder_install_hint(ts: str) -> str:
    """What to install (or do) to decode pixel data of the transfer syntax ``ts``.

    Parameters
    ----------
    ts : str
        A transfer syntax UID.

    Returns
    -------
    str
        ``"pip install <packages>"``, or advice to convert the file when no package
        known to pydicom decodes it.

    Examples
    --------
    >>> decoder_install_hint("1.2.840.10008.1.2.4.90")
    'pip install pylibjpeg pylibjpeg-openjpeg'
    """
    for prefix, pkgs in _DECODER_PACKAGES.items():
        if ts.startswith(prefix):
            return f"pip install {pkgs}"
    return "no pip package known to pydicom decodes it; convert the file (e.g. dcmdjpeg, ffmpeg)"


def looks_like_dicom_without_meta(head: bytes) -> bool:
    """True when ``head`` starts like a DICOM data set written without preamble/file meta.

    Such files begin with a tag of group 0x0008 (or 0x0002) in little- or big-endian order.

    Examples
    --------
    >>> looks_like_dicom_without_meta(bytes.fromhex("08000500") + b"CS" + bytes(6))
    True
    >>> looks_like_dicom_without_meta(b"Test file")
    False
    """
    if len(head) < 8:
        return False
    group_le = int.from_bytes(head[0:2], "little")
    group_be = int.from_bytes(head[0:2], "big")
    return group_le in (0x0002, 0x0008) or group_be == 0x0008


def read_dataset(
    source: str | os.PathLike | BinaryIO,
    path: str,
    *,
    has_preamble: bool,
    stop_before_pixels: bool = False,
    defer_size: int | None = None,
) -> Dataset:
    """Parse a DICOM file and check that what came back really is a DICOM data set.

    Parameters
    ----------
    source : path or binary file
        What to parse (a decompressed buffer for gzipped files).
    path : str
        The file's name, for error messages.
    has_preamble : bool
        The file has the 128-byte preamble and ``DICM``; otherwise it is parsed with
        ``force=True`` and must contain a plausible data set.
    stop_before_pixels, defer_size
        Passed to :func:`pydicom.dcmread` (the census reads headers only).

    Returns
    -------
    pydicom.Dataset

    Raises
    ------
    NotAnImageError, InconsistentHeaderError, CorruptPixelDataError

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> p = get_testdata_file("CT_small.dcm", download=False)
    >>> read_dataset(p, p, has_preamble=True).Modality
    'CT'
    """
    try:
        ds = dcmread(
            source,
            force=not has_preamble,
            stop_before_pixels=stop_before_pixels,
            defer_size=defer_size,
        )
    except InvalidDicomError as exc:
        raise NotAnImageError(path, f"not a DICOM file ({exc})") from exc
    except (EOFError, OSError) as exc:
        raise CorruptPixelDataError(path, f"the file ends inside its DICOM header ({exc})") from exc
    except Exception as exc:  # pydicom raises many types for malformed headers
        raise InconsistentHeaderError(
            path, f"the DICOM header could not be parsed ({type(exc).__name__}: {exc})"
        ) from exc
    if not has_preamble:
        # force=True "reads" anything: accept only a data set with real DICOM content.
        known = ("SOPClassUID", "Modality", "StudyInstanceUID", "PixelData", "Rows")
        if len(ds) < 3 or not any(k in ds for k in known):
            raise NotAnImageError(
                path, "not a DICOM file (no 'DICM' marker and no readable DICOM data set), "
                "and not a PNG, JPEG or TIFF image"
            )
    elif len(ds) == 0:
        raise CorruptPixelDataError(
            path, "the DICOM data set could not be read: the file is truncated or an element "
            "or sequence runs past its end"
        )
    return ds


def ensure_transfer_syntax(ds: Dataset, path: str, provenance: list[str]) -> str:
    """Return the transfer syntax, inferring it for native files written without one.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The data set as read; a file without file meta gets one naming the inferred
        (native) transfer syntax.
    path : str
        The file, named in errors.
    provenance : list of str
        Appended to when the transfer syntax had to be inferred.

    Returns
    -------
    str
        The transfer syntax UID.

    Raises
    ------
    UnsupportedImageError
        When the file meta names an unknown transfer syntax.
    InconsistentHeaderError
        When there is none and the pixel data is compressed.

    Examples
    --------
    >>> from pydicom import dcmread
    >>> from pydicom.data import get_testdata_file
    >>> ds = dcmread(get_testdata_file("CT_small.dcm", download=False))
    >>> ensure_transfer_syntax(ds, "CT_small.dcm", [])
    '1.2.840.10008.1.2.1'
    """
    ts = transfer_syntax(ds)
    if ts:
        if not UID(ts).is_transfer_syntax:
            raise UnsupportedImageError(
                path, f"the file meta names an unknown transfer syntax ({ts}), so no decoder "
                "can be chosen"
            )
        return ts
    raw = ds.get_item("PixelData", keep_deferred=True)  # the length, not the bytes
    undefined = raw is not None and getattr(raw, "length", 0) == 0xFFFFFFFF
    encoding = tuple(getattr(ds, "original_encoding", (None, None)))
    native = _NATIVE_BY_ENCODING.get(encoding)
    if undefined or native is None:
        raise InconsistentHeaderError(
            path, "the file meta has no Transfer Syntax UID and the pixel data is compressed "
            "(encapsulated), so the decoder cannot be chosen"
        )
    # A data set without file meta (old ACR-NEMA style): its elements were parsed in a
    # definite encoding and the pixel data is not encapsulated, so it is native data.
    ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = native
    provenance.append(f"transfer_syntax: inferred {native.name} (no Transfer Syntax UID)")
    return str(native)


def check_decoder(ts: str, path: str) -> None:
    """Raise :class:`MissingDecoderError` when no installed decoder handles ``ts``.

    Native (uncompressed) transfer syntaxes need no decoder and always pass.

    Parameters
    ----------
    ts : str
        The transfer syntax UID.
    path : str
        The file, named in the error (which says what to install).

    Examples
    --------
    >>> check_decoder("1.2.840.10008.1.2.1", "scan.dcm")  # explicit VR little endian
    """
    uid = UID(ts)
    if not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError as exc:
        raise MissingDecoderError(
            path, f"no decoder exists for the transfer syntax {uid.name} ({uid}): "
            f"{decoder_install_hint(ts)}"
        ) from exc
    if not decoder.is_available:
        raise MissingDecoderError(
            path, f"the pixel data is compressed as {uid.name} and no installed decoder "
            f"handles it: {decoder_install_hint(ts)}"
        )


_LITTLE_NATIVE = {str(ImplicitVRLittleEndian), str(ExplicitVRLittleEndian)}


def _within_stored_bits(arr: np.ndarray, ds: Dataset) -> bool:
    """True when no value uses the bits above BitsStored (so masking would change nothing)."""
    stored = header_int(ds, "BitsStored", int(ds.BitsAllocated)) or 0
    if ds.get("PixelRepresentation") == 1:
        lo, hi = -(1 << (stored - 1)), (1 << (stored - 1)) - 1
        return bool(arr.min() >= lo and arr.max() <= hi)
    return bool(arr.max() <= (1 << stored) - 1)


def _pixel_array(ds: Dataset, frame: int | None, ts: str) -> np.ndarray:
    """pydicom's decode; for little-endian native data without copying the buffer.

    pydicom copies native pixel data and, when BitsStored < BitsAllocated, masks or
    sign-extends the unused high bits. The caller converts to float32 anyway, so a read-only
    view is enough, and the correction is only needed when some value actually uses the
    unused bits (then pydicom's own correction runs). Measured: saves one full copy of the
    image on large radiographs (benchmarks/loader.py).
    """
    if ts in _LITTLE_NATIVE and int(ds.BitsAllocated) >= 8:
        stored = header_int(ds, "BitsStored", int(ds.BitsAllocated))
        if stored == int(ds.BitsAllocated):
            return pixel_array(ds, index=frame, view_only=True)
        view = pixel_array(ds, index=frame, view_only=True, correct_unused_bits=False)
        if view.dtype.kind in "iu" and _within_stored_bits(view, ds):
            return view
    if frame is None:
        return ds.pixel_array
    return pixel_array(ds, index=frame)


def _decode(ds: Dataset, path: str, frame: int | None, ts: str) -> np.ndarray:
    try:
        return _pixel_array(ds, frame, ts)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except BaseException as exc:  # decoders raise anything; Rust ones a PanicException
        if isinstance(exc, GeneratorExit):
            raise
        msg = str(exc).strip().splitlines()
        first = msg[0] if msg else type(exc).__name__
        detail = " ".join(line.strip() for line in msg[1:3])
        if "Missing required element" in first or "VR" in first or "invalid literal" in first:
            raise InconsistentHeaderError(path, f"a header element is invalid: {first}") from exc
        if "less than expected" in first or "length" in first or "truncated" in first:
            raise CorruptPixelDataError(
                path, f"the pixel data is truncated or does not match the header: {first}"
            ) from exc
        name = UID(ts).name if ts else "unknown"
        raise CorruptPixelDataError(
            path, f"the {name} pixel data could not be decoded: {first} {detail}".strip()
        ) from exc


def _check_shape(arr: np.ndarray, ds: Dataset, path: str, n_frames: int) -> None:
    """The decoded array must have the shape the header declares (a decoder may infer
    frames from surplus data, or a codestream may differ from the header)."""
    samples = header_int(ds, "SamplesPerPixel", 1) or 1
    expected: tuple[int, ...] = (int(ds.Rows), int(ds.Columns))
    if samples > 1:
        expected += (samples,)
    if n_frames > 1:
        expected = (n_frames, *expected)
    if arr.shape != expected:
        raise CorruptPixelDataError(
            path, f"the pixel data decodes to shape {arr.shape} where the header declares "
            f"{expected}"
        )


def _modality_lut(
    arr: np.ndarray, ds: Dataset, frame: int | None, n_frames: int, path: str
) -> tuple[np.ndarray, str]:
    """Stored values -> modality units in float32 (rescale computed in float32: no float64
    copy of large images; identical to pydicom's within float32 rounding)."""
    if arr.dtype.kind == "f":
        out = arr.astype(np.float32)
        bad = int(out.size - np.count_nonzero(np.isfinite(out)))
        if bad:
            raise CorruptPixelDataError(
                path, f"the float pixel data holds {bad} NaN or infinite value(s) "
                "(or values beyond float32)"
            )
        return out, "modality_lut: none (float pixel data)"
    mlut = ds.get("ModalityLUTSequence")
    if mlut:
        desc = [int(v) for v in mlut[0].LUTDescriptor]
        out = apply_modality_lut(arr, ds).astype(np.float32)
        return out, f"modality_lut: LUT sequence entries={desc[0]} first={desc[1]} bits={desc[2]}"
    if frame is None and n_frames > 1 and "PerFrameFunctionalGroupsSequence" in ds:
        per = [rescale(ds, i) for i in range(n_frames)]
        if len(set(per)) > 1:  # per-frame rescale that differs between frames
            slopes = np.array([p[0] if p else 1.0 for p in per], np.float32)
            inters = np.array([p[1] if p else 0.0 for p in per], np.float32)
            out = arr.astype(np.float32)
            out *= slopes[:, None, None]
            out += inters[:, None, None]
            return out, "modality_lut: per-frame rescale (functional groups)"
    rs = rescale(ds, frame or 0)
    if rs is None:
        return arr.astype(np.float32), "modality_lut: none (no Rescale Slope/Intercept)"
    slope, intercept = rs
    # Measured on 3.6 Mpx uint16: np.add(arr, c, dtype=float32) converts and adds in one
    # pass (1.3 ms vs 1.45 ms for astype + add); np.multiply with dtype= is slower than
    # astype + in-place multiply (2.4 vs 2.0 ms), so a slope goes the two-step way.
    if slope != 1.0:
        out = arr.astype(np.float32)
        out *= np.float32(slope)
        if intercept != 0.0:
            out += np.float32(intercept)
    elif intercept != 0.0:
        out = np.add(arr, np.float32(intercept), dtype=np.float32)
    else:
        out = arr.astype(np.float32)
    return out, f"modality_lut: slope={slope:g} intercept={intercept:g}"


def read_dicom(
    source: str | os.PathLike | BinaryIO,
    path: str,
    *,
    frame: int | None = None,
    has_preamble: bool = True,
    provenance: list[str] | None = None,
    max_pixels: int | None = None,
    target: DecodeTarget | None = None,
) -> Scan:
    """Read a DICOM file into a :class:`Scan` (float32 pixels, meta, provenance).

    Use :func:`imaging_tl.read_scan`, which detects the format; this is the DICOM branch.

    Parameters
    ----------
    source : path or binary file
        The file (a decompressed buffer for gzipped files).
    path : str
        The file's name, for messages and ``Scan.path``.
    frame : int, optional
        0-based frame of a multi-frame file; None returns all frames (``F x H x W[ x 3]``).
    has_preamble : bool
        Whether the file has the ``DICM`` marker (else parsed as a bare data set).
    provenance : list of str, optional
        Steps already applied (e.g. ``"gunzip"``).
    max_pixels : int, optional
        The most values to decode (:func:`imaging_tl.io.limits.max_pixels` by default).
    target : imaging_tl.io.decode_plan.DecodeTarget, optional
        What the stages need: a compressed frame may be decoded at a reduced resolution
        (:mod:`imaging_tl.io.decode_plan`); None decodes in full.

    Returns
    -------
    Scan

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> p = get_testdata_file("CT_small.dcm", download=False)
    >>> scan = read_dicom(p, p)
    >>> scan.pixels.dtype, scan.provenance[-1]
    (dtype('float32'), 'modality_lut: slope=1 intercept=-1024')
    """
    prov = list(provenance or [])
    ds = read_dataset(source, path, has_preamble=has_preamble)
    with damaged_header_errors(path):
        return _read_pixels(ds, path, frame, prov, max_pixels, target)


@contextmanager
def damaged_header_errors(path: str) -> Iterator[None]:
    """Turn pydicom's errors on damaged elements into :class:`InconsistentHeaderError`.

    pydicom converts element values lazily, on first access, so a damaged value (an
    unknown VR, a bad UID, a length that is not a multiple of the value size) raises
    wherever it is first touched; every such error means the same thing to a user.

    Examples
    --------
    >>> try:
    ...     with damaged_header_errors("a.dcm"):
    ...         raise NotImplementedError("Unknown Value Representation 'Cy'")
    ... except InconsistentHeaderError as e:
    ...     print(e)
    a.dcm: the DICOM header is damaged (NotImplementedError: Unknown Value Representation 'Cy')
    """
    try:
        yield
    except ScanReadError:
        raise
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except HeaderValueError as exc:
        raise InvalidHeaderValueError(path, exc.tag, str(exc)) from exc
    except Exception as exc:
        raise InconsistentHeaderError(
            path, f"the DICOM header is damaged ({type(exc).__name__}: {exc})"
        ) from exc


def require_pixel_data(ds: Dataset, path: str) -> None:
    """Raise unless the data set holds pixel data; tell truncation from non-images.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset(); ds.Rows = 4; ds.Columns = 4
    >>> try:
    ...     require_pixel_data(ds, "a.dcm")
    ... except CorruptPixelDataError as e:
    ...     print(e.reason)
    the header describes a 4 x 4 image but the file ends before its pixel data (truncated?)
    """
    if has_pixel_data(ds):
        return
    if "Rows" in ds and "Columns" in ds:
        raise CorruptPixelDataError(
            path, f"the header describes a {ds.Rows} x {ds.Columns} image but the file ends "
            "before its pixel data (truncated?)"
        )
    kind = ds.get("SOPClassUID")
    kind_name = str(getattr(kind, "name", "") or "")
    if kind_name.endswith("Image Storage"):
        raise CorruptPixelDataError(
            path, f"the file is a {kind_name} but ends before its pixel data (truncated?)"
        )
    if not kind:
        known = sum(1 for elem in ds if elem.tag.group > 0x0002)
        if not known:
            raise CorruptPixelDataError(
                path, "the DICOM data set holds no recognisable element (zeros or garbage "
                "after the 'DICM' marker?): damaged, not an image"
            )
        raise NoPixelDataError(
            path, f"the DICOM file has no pixel data and no SOP class ({known} other "
            "element(s)): not an image"
        )
    raise NoPixelDataError(
        path, f"the DICOM file has no pixel data, so it is not an image (SOP class: "
        f"{kind_name or kind}, e.g. an RT plan or a structured report)"
    )


def _reduced(
    ds: Dataset, ts: str, frame: int | None, n_frames: int, target: DecodeTarget | None
) -> tuple[np.ndarray | None, str | None]:
    """The decode plan's reduced decode; any failure of it means a full decode (the full
    path then reports a damaged file with its own typed error)."""
    if target is None:
        return None, None
    try:
        return reduced_dicom_pixels(ds, ts, frame, n_frames, target)
    except (KeyboardInterrupt, SystemExit, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - the fallback is the full decode
        return None, f"decode: full (reduced decode failed: {type(exc).__name__})"


def _read_pixels(
    ds: Dataset, path: str, frame: int | None, prov: list[str], max_pixels: int | None,
    target: DecodeTarget | None = None,
) -> Scan:
    require_pixel_data(ds, path)
    ts = ensure_transfer_syntax(ds, path, prov)
    n_frames = check_header(ds, path, max_pixels=max_pixels,
                            frame=frame if isinstance(frame, (int, np.integer)) else None)
    check_decoder(ts, path)
    check_codestream_size(ds, path, ts)
    if frame is not None:
        if not isinstance(frame, (int, np.integer)) or not 0 <= frame < n_frames:
            raise FrameOutOfRangeError(
                path, f"frame={frame!r} is out of range: the file has {n_frames} frame(s)"
            )
        frame = int(frame)

    reduced, step = _reduced(ds, ts, frame, n_frames, target)
    if reduced is None:
        arr = _decode(ds, path, frame, ts)
        _check_shape(arr, ds, path, n_frames if frame is None else 1)
    else:
        arr = reduced
    try:
        meta: dict[str, Any] = header_meta(ds, frame=frame)
    except HeaderValueError:
        raise  # named by damaged_header_errors
    except (TypeError, ValueError, AttributeError) as exc:
        raise InconsistentHeaderError(path, f"a header element is malformed: {exc}") from exc
    prov.append(f"read: dicom {UID(ts).name}" + (f" frame={frame}" if frame is not None else ""))
    if step:
        prov.append(step)
    if reduced is not None:
        meta = scaled_meta(meta, arr.shape[0], arr.shape[1])

    photometric = str(ds.PhotometricInterpretation).upper()
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(arr, ds).astype(np.float32)
        prov.append("palette: expanded to RGB through the palette colour LUT")
    elif header_int(ds, "SamplesPerPixel", 1) == 3:
        pixels = arr.astype(np.float32)
        if photometric != "RGB":
            prov.append(f"colour: {photometric} -> RGB (pydicom)")
    else:
        pixels, step = _modality_lut(arr, ds, frame, n_frames, path)
        prov.append(step)
    return Scan(pixels=pixels, meta=meta, provenance=prov, path=path)



def checked_header_meta(
    source: str | BinaryIO, path: str, has_preamble: bool, max_pixels: int | None = None
) -> dict[str, Any]:
    """``meta`` of a DICOM file after every check that needs no decode (as ``read_header``).

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> p = get_testdata_file("CT_small.dcm", download=False)
    >>> checked_header_meta(p, p, True)["Rows"]
    128
    """
    defer = 4096 if isinstance(source, str) else None  # pixel data stays on disk
    ds = read_dataset(source, path, has_preamble=has_preamble, defer_size=defer)
    with damaged_header_errors(path):
        require_pixel_data(ds, path)
        ensure_transfer_syntax(ds, path, [])
        check_header(ds, path, max_pixels=max_pixels)
        return header_meta(ds)
