"""Checks of a DICOM header before any pixel is decoded (shared by read_scan and census).

Every check is made from the header alone, so the header-only census flags the same files
:func:`imaging_tl.read_scan` refuses, and a hostile header (NumberOfFrames 999999999, a
JPEG 2000 codestream declaring 20000 x 20000) is refused before memory is allocated.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from imaging_tl.io.dicom_header import HeaderValueError, header_int, rescale
from imaging_tl.io.errors import (
    CorruptPixelDataError,
    InconsistentHeaderError,
    InvalidHeaderValueError,
    UnsupportedImageError,
)
from imaging_tl.io.limits import check_pixel_count, pixel_count

_REQUIRED = ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation")

#: Photometric interpretations of the standard (PS3.3 C.7.6.3.1.2); the retired ones are
#: refused as unsupported, anything else as a broken header.
PHOTOMETRIC_VALUES = frozenset({
    "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422",
    "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT",
})
_RETIRED_PHOTOMETRIC = frozenset({"HSV", "ARGB", "CMYK"})
_PALETTE_ELEMENTS = tuple(
    f"{c}PaletteColorLookupTable{part}" for c in ("Red", "Green", "Blue")
    for part in ("Descriptor", "Data")
)


def _pixel_description(ds: Dataset, path: str) -> dict[str, int]:
    """The integer pixel description elements; absent ones get their defaults, 0 stays 0."""
    try:
        allocated = header_int(ds, "BitsAllocated")
        assert allocated is not None  # required, checked by the caller
        return {
            "BitsAllocated": allocated,
            "BitsStored": header_int(ds, "BitsStored", allocated) or 0,
            "SamplesPerPixel": header_int(ds, "SamplesPerPixel", 1) or 0,
            "Rows": header_int(ds, "Rows") or 0,
            "Columns": header_int(ds, "Columns") or 0,
            "NumberOfFrames": header_int(ds, "NumberOfFrames", 1) or 0,
            "PixelRepresentation": header_int(ds, "PixelRepresentation", 0) or 0,
        }
    except (TypeError, ValueError) as exc:
        raise InconsistentHeaderError(
            path, f"a pixel description element (Rows, Columns, Bits, NumberOfFrames) is "
            f"malformed: {exc}"
        ) from exc


def _check_values(d: dict[str, int], path: str) -> None:
    """Values no image can have, each refused naming its element."""
    allocated, stored = d["BitsAllocated"], d["BitsStored"]
    if allocated not in (1, 8, 16, 32, 64):
        raise InvalidHeaderValueError(
            path, "BitsAllocated", f"BitsAllocated is {allocated}; it must be 1, 8, 16, 32 or 64"
        )
    if stored < 1:
        raise InvalidHeaderValueError(path, "BitsStored", f"BitsStored is {stored}")
    if stored > allocated:
        raise InconsistentHeaderError(
            path, f"BitsStored ({stored}) is larger than BitsAllocated ({allocated})"
        )
    if d["PixelRepresentation"] not in (0, 1):
        raise InvalidHeaderValueError(
            path, "PixelRepresentation",
            f"PixelRepresentation is {d['PixelRepresentation']}; it must be 0 or 1",
        )
    if d["Rows"] <= 0 or d["Columns"] <= 0:
        raise InconsistentHeaderError(path, f"the image size is {d['Rows']} x {d['Columns']}")
    if d["SamplesPerPixel"] < 1:
        raise InvalidHeaderValueError(
            path, "SamplesPerPixel", f"SamplesPerPixel is {d['SamplesPerPixel']}"
        )
    if d["SamplesPerPixel"] not in (1, 3):
        raise UnsupportedImageError(
            path, f"SamplesPerPixel is {d['SamplesPerPixel']}; only 1 or 3 are read"
        )
    if d["NumberOfFrames"] < 1:
        raise InvalidHeaderValueError(
            path, "NumberOfFrames", f"NumberOfFrames is {d['NumberOfFrames']}"
        )


def _check_photometric(ds: Dataset, path: str, samples: int) -> None:
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    if photometric in _RETIRED_PHOTOMETRIC:
        raise UnsupportedImageError(
            path, f"PhotometricInterpretation {photometric} is retired from the standard and "
            "not read"
        )
    if photometric not in PHOTOMETRIC_VALUES:
        raise InvalidHeaderValueError(
            path, "PhotometricInterpretation",
            f"PhotometricInterpretation {photometric[:32]!r} is not a value of the standard",
        )
    if photometric == "PALETTE COLOR":
        missing = [k for k in _PALETTE_ELEMENTS if k not in ds]
        segmented = all(
            f"Segmented{c}PaletteColorLookupTableData" in ds for c in ("Red", "Green", "Blue")
        )
        if missing and not (segmented and not any(k.endswith("Descriptor") for k in missing)):
            raise InconsistentHeaderError(
                path, f"PALETTE COLOR without its palette: the header lacks {', '.join(missing)}"
            )
    want = 1 if photometric.startswith("MONO") or photometric == "PALETTE COLOR" else 3
    if samples != want:
        raise InconsistentHeaderError(
            path, f"PhotometricInterpretation {photometric} needs SamplesPerPixel {want}, "
            f"the header says {samples}"
        )


def check_header(
    ds: Dataset, path: str, *, max_pixels: int | None = None, frame: int | None = None
) -> int:
    """Check the pixel description before decoding; return the number of frames.

    Every check is made from the header alone, so the census (which decodes nothing)
    flags the same files :func:`imaging_tl.read_scan` refuses. A value of 0 is a value
    (``NumberOfFrames 0`` is refused), not an absent element.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The data set.
    path : str
        The file, named in errors.
    max_pixels : int, optional
        The most values the read may decode (default
        :func:`imaging_tl.io.limits.max_pixels`).
    frame : int, optional
        The one frame to be read (the limit then counts one frame).

    Returns
    -------
    int
        NumberOfFrames (1 when absent).

    Raises
    ------
    InconsistentHeaderError, InvalidHeaderValueError, UnsupportedImageError
        When an element needed to decode is missing, malformed or out of range.
    ImageTooLargeError
        When the image holds more than ``max_pixels`` values.

    Examples
    --------
    >>> from pydicom import dcmread
    >>> from pydicom.data import get_testdata_file
    >>> check_header(dcmread(get_testdata_file("CT_small.dcm", download=False)), "CT_small")
    1
    """
    missing = [k for k in _REQUIRED if ds.get(k) in (None, "")]
    if missing:
        raise InconsistentHeaderError(
            path, f"the header lacks {', '.join(missing)}, which are needed to decode the "
            "pixel data"
        )
    d = _pixel_description(ds, path)
    _check_values(d, path)
    _check_photometric(ds, path, d["SamplesPerPixel"])
    n_frames = d["NumberOfFrames"]
    samples = 3 if str(ds.PhotometricInterpretation).strip().upper() == "PALETTE COLOR" \
        else d["SamplesPerPixel"]
    count = pixel_count(rows=d["Rows"], columns=d["Columns"],
                        frames=1 if frame is not None else n_frames, samples=samples)
    check_pixel_count(path, count, max_pixels,
                      f"{n_frames} frame(s) of {d['Rows']} x {d['Columns']} x {samples}")
    if "PixelData" in ds and header_int(ds, "SamplesPerPixel", 1) == 1:
        try:
            rescale(ds, frame or 0)
        except HeaderValueError as exc:
            raise InvalidHeaderValueError(path, exc.tag, str(exc)) from exc
    return n_frames


_J2K_SYNTAXES = ("1.2.840.10008.1.2.4.9", "1.2.840.10008.1.2.4.20")  # JPEG 2000, HTJ2K
_SOC_SIZ = b"\xff\x4f\xff\x51"


def codestream_size(data: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) a JPEG 2000 codestream's SIZ marker declares, or None.

    The decoder allocates what SIZ declares, whatever the DICOM header says, so this is
    checked before decoding.

    Examples
    --------
    >>> siz = bytes.fromhex("ff4fff51") + bytes(4) + (300).to_bytes(4, "big")
    >>> siz += (200).to_bytes(4, "big") + bytes(24) + (1).to_bytes(2, "big")
    >>> codestream_size(siz)
    (200, 300, 1)
    """
    at = data.find(_SOC_SIZ, 0, 1 << 16)
    if at < 0 or len(data) < at + 42:
        return None
    f = at + 4 + 4  # after SOC, SIZ marker, Lsiz and Rsiz
    x, y, x0, y0 = (int.from_bytes(data[f + 4 * i: f + 4 * i + 4], "big") for i in range(4))
    comps = int.from_bytes(data[at + 40: at + 42], "big")
    return max(y - y0, 0), max(x - x0, 0), comps


_JPEG_SYNTAXES = ("1.2.840.10008.1.2.4.5", "1.2.840.10008.1.2.4.70",  # JPEG, lossless
                  "1.2.840.10008.1.2.4.8")  # JPEG-LS
# start-of-frame markers (baseline, extended, progressive, lossless, arithmetic; JPEG-LS)
_JPEG_SOF = {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0),
             0xF7}


def jpeg_frame_size(data: bytes) -> tuple[int, int, int] | None:
    """(rows, columns, components) a JPEG or JPEG-LS frame header declares, or None.

    Walks the marker segments from the start of the image to the first start-of-frame
    (within ``data``), as a decoder would before allocating the image.

    Examples
    --------
    >>> sof = bytes.fromhex("ffd8ffc0000b08") + (300).to_bytes(2, "big")
    >>> jpeg_frame_size(sof + (200).to_bytes(2, "big") + bytes([1]))
    (300, 200, 1)
    """
    at = data.find(b"\xff\xd8\xff", 0, 1 << 16)  # SOI, after the encapsulation's items
    if at < 0:
        return None
    at += 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # segments without a length
            at += 2
            continue
        length = int.from_bytes(data[at + 2: at + 4], "big")
        if marker in _JPEG_SOF:
            if len(data) < at + 10:
                return None
            rows = int.from_bytes(data[at + 5: at + 7], "big")
            cols = int.from_bytes(data[at + 7: at + 9], "big")
            return rows, cols, data[at + 9]
        if length < 2:
            return None
        at += 2 + length
    return None


def check_codestream_size(ds: Dataset, path: str, ts: str, head: bytes | None = None) -> None:
    """Refuse JPEG 2000, JPEG or JPEG-LS pixel data whose codestream declares more than the
    header (the decoder allocates what the codestream says).

    ``head``: the first bytes of the pixel data when they are not loaded (the census).

    Examples
    --------
    >>> from pydicom import dcmread
    >>> from pydicom.data import get_testdata_file
    >>> p = get_testdata_file("MR_small_jp2klossless.dcm", download=False)
    >>> check_codestream_size(dcmread(p), p, "1.2.840.10008.1.2.4.90")
    """
    if not ts.startswith((*_J2K_SYNTAXES, *_JPEG_SYNTAXES)) or "PixelData" not in ds:
        return
    if head is None:
        head = bytes(ds.PixelData[: 1 << 16])
    j2k = ts.startswith(_J2K_SYNTAXES)
    declared = codestream_size(head) if j2k else jpeg_frame_size(head)
    if declared is None:
        return
    rows, cols, comps = declared
    h_rows, h_cols = int(ds.Rows), int(ds.Columns)
    h_samples = header_int(ds, "SamplesPerPixel", 1) or 1
    if rows * cols * max(comps, 1) > h_rows * h_cols * h_samples:
        raise CorruptPixelDataError(
            path, f"the {'JPEG 2000 codestream' if j2k else 'JPEG frame header'} declares "
            f"{rows} x {cols} x {comps}, more than "
            f"the header's {h_rows} x {h_cols} x {h_samples}: not decoded (a decompression "
            "bomb or a damaged file)"
        )
