"""DICOM header -> the normalised ``meta`` dict (no pixel decoding).

Shared by the pixel loader (:mod:`imaging_tl.io.dicom_pixels`) and the census, so a field
means the same thing wherever it appears. Patient names and birth dates are never copied.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.valuerep import VR

#: DICOM keywords copied into ``meta`` (missing -> None), in census column order.
HEADER_KEYWORDS: tuple[str, ...] = (
    "Modality",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PixelSpacing",
    "ViewPosition",
    "BodyPartExamined",
    "PresentationIntentType",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "TransferSyntaxUID",
)

#: The library's own fields (snake_case) that every reader sets.
LIBRARY_FIELDS: tuple[str, ...] = (
    "format",
    "invert",
    "windows",
    "voi_lut_function",
    "voi_luts",
    "value_range",
)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_INT_KEYWORDS = {
    "SamplesPerPixel",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
}


#: Larger magnitudes of a rescale or window value are refused as absurd (no detector
#: measures 10**12 of anything; float32 pixels would lose all precision).
ABSURD_VALUE = 1e12


class HeaderValueError(ValueError):
    """A header element's value no image can have; ``tag`` names the element.

    The loader turns it into :class:`imaging_tl.io.errors.InvalidHeaderValueError` naming
    the file.

    Examples
    --------
    >>> HeaderValueError("RescaleSlope", "RescaleSlope is nan").tag
    'RescaleSlope'
    """

    def __init__(self, tag: str, message: str) -> None:
        self.tag = tag
        super().__init__(message)


@cache
def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return tag


def _get(ds: Dataset, keyword: str) -> Any:
    """``ds.get(keyword)``, but cheap for absent elements (most of the ones we look for):
    pydicom's ``get`` raises and catches an AttributeError for each miss."""
    tag = _tag(keyword)
    return ds[tag].value if tag in ds else None


def header_int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    """An integer element: ``default`` when absent or empty, else its value (0 stays 0).

    Raises
    ------
    TypeError, ValueError
        A value that is not an integer.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset(); ds.NumberOfFrames = 0
    >>> header_int(ds, "NumberOfFrames", 1), header_int(ds, "SamplesPerPixel", 1)
    (0, 1)
    """
    value = _get(ds, keyword)
    if value is None or value == "":
        return default
    return int(value)


def empty_meta() -> dict[str, Any]:
    """Return a ``meta`` dict with every standard key present and set to None.

    Examples
    --------
    >>> m = empty_meta()
    >>> m["Modality"] is None and m["windows"] == []
    True
    """
    meta: dict[str, Any] = dict.fromkeys(HEADER_KEYWORDS)
    meta.update(
        format=None, invert=False, windows=[], voi_lut_function="LINEAR", voi_luts=[],
        value_range=None,
    )
    return meta


def has_pixel_data(ds: Dataset) -> bool:
    """True when the dataset carries (integer or float) pixel data.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> has_pixel_data(Dataset())
    False
    """
    return any(k in ds for k in _PIXEL_KEYWORDS)


def transfer_syntax(ds: Dataset) -> str | None:
    """The Transfer Syntax UID from the file meta, or None when absent.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> transfer_syntax(Dataset()) is None
    True
    """
    fm = getattr(ds, "file_meta", None)
    uid = fm.get("TransferSyntaxUID") if fm is not None else None
    return str(uid) if uid else None


def functional_group(ds: Dataset, sequence: str, frame: int = 0) -> Dataset | None:
    """The first item of ``sequence`` from the enhanced multi-frame functional groups.

    Per-frame groups win over shared ones (DICOM PS3.3 C.7.6.16).

    Parameters
    ----------
    ds : pydicom.Dataset
        An enhanced multi-frame dataset (or any dataset: returns None then).
    sequence : str
        Keyword of the functional group macro, e.g. ``"PixelValueTransformationSequence"``.
    frame : int
        0-based frame whose per-frame group to look in.

    Returns
    -------
    pydicom.Dataset or None

    Examples
    --------
    >>> from pydicom import Dataset
    >>> functional_group(Dataset(), "FrameVOILUTSequence") is None
    True
    """
    per_frame = _get(ds, "PerFrameFunctionalGroupsSequence")
    if per_frame and frame < len(per_frame):
        seq = _get(per_frame[frame], sequence)
        if seq:
            return seq[0]
    shared = _get(ds, "SharedFunctionalGroupsSequence")
    if shared:
        seq = _get(shared[0], sequence)
        if seq:
            return seq[0]
    return None


def _plain(value: Any) -> Any:
    """pydicom value -> plain Python (str, int, float, list)."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def _windows(source: Dataset) -> list[dict[str, Any]]:
    centers = _as_list(_get(source, "WindowCenter"))
    widths = _as_list(_get(source, "WindowWidth"))
    explanations = _as_list(_get(source, "WindowCenterWidthExplanation"))
    out = []
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        try:
            center, width = float(c), float(w)
        except (TypeError, ValueError):
            continue  # an empty or malformed pair is skipped rather than guessed
        if not (abs(center) <= ABSURD_VALUE and 0 < width <= ABSURD_VALUE):
            continue  # NaN, inf, absurd or width <= 0: no valid VOI window (PS3.3 C.11.2.1.2)
        expl = str(explanations[i]) if i < len(explanations) and explanations[i] else None
        out.append({"center": center, "width": width, "explanation": expl})
    return out


def lut_data(item: Dataset, ds: Dataset) -> np.ndarray:
    """The LUT Data of a Modality/VOI LUT item as a 1-D unsigned array.

    LUT Data may be stored as US (a list) or OW (raw bytes in the dataset's byte order).

    Examples
    --------
    >>> from pydicom import Dataset
    >>> it = Dataset(); it.LUTDescriptor = [3, 0, 8]; it.LUTData = [0, 128, 255]
    >>> lut_data(it, Dataset()).tolist()
    [0, 128, 255]
    """
    bits = int(item.LUTDescriptor[2])
    dtype = np.uint8 if bits <= 8 else np.uint16
    elem = item["LUTData"]
    if elem.VR == VR.OW or isinstance(elem.value, (bytes, bytearray)):
        little = True
        fm = getattr(ds, "file_meta", None)
        if fm is not None and "TransferSyntaxUID" in fm:
            little = fm.TransferSyntaxUID != "1.2.840.10008.1.2.2"
        elif getattr(ds, "original_encoding", (None, None))[1] is not None:
            little = bool(ds.original_encoding[1])
        data = np.frombuffer(elem.value, dtype="<u2" if little else ">u2")
        return data.astype(dtype, copy=False)
    return np.asarray(_as_list(elem.value), dtype=dtype)


def _voi_luts(source: Dataset, ds: Dataset) -> list[dict[str, Any]]:
    out = []
    for item in _get(source, "VOILUTSequence") or []:
        if "LUTDescriptor" not in item or "LUTData" not in item:
            continue
        n, first, bits = (int(v) for v in item.LUTDescriptor)
        out.append({
            "first_mapped": first,
            "bits": bits,
            "data": lut_data(item, ds),
            "explanation": str(_get(item, "LUTExplanation") or "") or None,
        })
    return out


def rescale(ds: Dataset, frame: int = 0) -> tuple[float, float] | None:
    """(slope, intercept) from the header or the enhanced functional groups, else None.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset(); ds.RescaleSlope = "1"; ds.RescaleIntercept = "-1024"
    >>> rescale(ds)
    (1.0, -1024.0)
    """
    source: Dataset | None = ds
    if "RescaleSlope" not in ds and "RescaleIntercept" not in ds:
        source = functional_group(ds, "PixelValueTransformationSequence", frame)
    if source is None or ("RescaleSlope" not in source and "RescaleIntercept" not in source):
        return None
    slope = _get(source, "RescaleSlope")
    intercept = _get(source, "RescaleIntercept")
    pair = (
        _rescale_value("RescaleSlope", slope, 1.0),
        _rescale_value("RescaleIntercept", intercept, 0.0),
    )
    if pair[0] == 0.0:
        raise HeaderValueError(
            "RescaleSlope", "RescaleSlope is 0: every pixel would have the intercept's value"
        )
    return pair


def _rescale_value(tag: str, value: Any, default: float) -> float:
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise HeaderValueError(tag, f"{tag} is not a number ({str(value)[:40]!r})") from None
    if not np.isfinite(number):
        raise HeaderValueError(tag, f"{tag} is {number}: pixels would not be finite")
    if abs(number) > ABSURD_VALUE:
        raise HeaderValueError(
            tag, f"{tag} is {number:g}, beyond +-{ABSURD_VALUE:g}: not a plausible rescale"
        )
    return number


def stored_range(ds: Dataset) -> tuple[int, int] | None:
    """The range the stored bits can represent (BitsStored, PixelRepresentation).

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset(); ds.BitsStored = 12; ds.PixelRepresentation = 1
    >>> stored_range(ds)
    (-2048, 2047)
    """
    bits = header_int(ds, "BitsStored")
    if bits is None:
        bits = header_int(ds, "BitsAllocated")
    if not bits or bits > 64:
        return None
    if _get(ds, "PixelRepresentation") == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _value_range(ds: Dataset, frame: int = 0) -> list[float] | None:
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        return None  # float data has no fixed range
    if _get(ds, "PhotometricInterpretation") == "PALETTE COLOR":
        desc = _get(ds, "RedPaletteColorLookupTableDescriptor")
        bits = int(desc[2]) if desc else 8
        return [0.0, float((1 << bits) - 1)]
    rng = stored_range(ds)
    if rng is None:
        return None
    if header_int(ds, "SamplesPerPixel", 1) == 1:
        mlut = _get(ds, "ModalityLUTSequence")
        if mlut and "LUTDescriptor" in mlut[0] and "LUTData" in mlut[0]:
            data = lut_data(mlut[0], ds)  # the LUT's outputs are all the values there can be
            return [float(data.min()), float(data.max())]
        rs = rescale(ds, frame)
        if rs is not None:
            a, b = rng[0] * rs[0] + rs[1], rng[1] * rs[0] + rs[1]
            if max(abs(a), abs(b)) > ABSURD_VALUE:
                raise HeaderValueError(
                    "RescaleSlope", f"RescaleSlope {rs[0]:g} and RescaleIntercept {rs[1]:g} "
                    f"map the stored values to [{min(a, b):g}, {max(a, b):g}]: not plausible"
                )
            return [float(min(a, b)), float(max(a, b))]
    return [float(rng[0]), float(rng[1])]


def header_meta(ds: Dataset, *, frame: int | None = None) -> dict[str, Any]:
    """Normalised ``meta`` fields of a DICOM dataset, without touching its pixels.

    Parameters
    ----------
    ds : pydicom.Dataset
        A dataset as read by ``dcmread`` (with or without pixel data).
    frame : int, optional
        For enhanced multi-frame files, whose per-frame functional groups to use for the
        window and rescale fields (default: the first frame).

    Returns
    -------
    dict
        Keys :data:`HEADER_KEYWORDS` plus ``format``, ``invert``, ``windows``,
        ``voi_lut_function``, ``voi_luts`` and ``value_range``. Never the patient's name or
        birth date. ``SamplesPerPixel`` describes the pixels :func:`imaging_tl.read_scan`
        returns: 3 for PALETTE COLOR (expanded to RGB).

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset(); ds.Modality = "CR"; ds.PhotometricInterpretation = "MONOCHROME1"
    >>> m = header_meta(ds)
    >>> m["Modality"], m["invert"], m["PatientID"]
    ('CR', True, None)
    """
    meta = empty_meta()
    meta["format"] = "dicom"
    for kw in HEADER_KEYWORDS:
        if kw == "TransferSyntaxUID":
            meta[kw] = transfer_syntax(ds)
            continue
        try:
            value = _plain(_get(ds, kw))
        except (ValueError, TypeError):
            value = None  # a malformed optional element must not stop the read
        if kw in _INT_KEYWORDS and value is not None:
            try:
                value = int(value)
            except (TypeError, ValueError):
                value = None
        meta[kw] = value
    fidx = frame or 0
    measures = functional_group(ds, "PixelMeasuresSequence", fidx)
    meta["PixelSpacing"] = None
    # "0\\0" is written by some CR software when unknown: treat as absent
    for spacing in (
        _get(ds, "PixelSpacing"),
        _get(ds, "ImagerPixelSpacing"),
        _get(measures, "PixelSpacing") if measures is not None else None,
    ):
        try:
            values = [float(v) for v in _as_list(spacing)]
        except (TypeError, ValueError):
            continue
        if len(values) == 2 and min(values) > 0:
            meta["PixelSpacing"] = values
            break
    if meta["NumberOfFrames"] is None and has_pixel_data(ds):
        meta["NumberOfFrames"] = 1
    if meta["SamplesPerPixel"] is None and has_pixel_data(ds):
        meta["SamplesPerPixel"] = 1
    if meta["PhotometricInterpretation"] == "PALETTE COLOR":
        meta["SamplesPerPixel"] = 3  # read_scan returns RGB through the palette

    # VOI information: top level first, else the enhanced Frame VOI LUT functional group.
    voi_source: Dataset = ds
    if "WindowCenter" not in ds and "VOILUTSequence" not in ds:
        voi_source = functional_group(ds, "FrameVOILUTSequence", fidx) or ds
    meta["windows"] = _windows(voi_source)
    function = str(_get(voi_source, "VOILUTFunction") or "LINEAR").upper()
    meta["voi_lut_function"] = function
    meta["voi_luts"] = _voi_luts(voi_source, ds)

    shape = str(_get(ds, "PresentationLUTShape") or "").upper()
    meta["invert"] = meta["PhotometricInterpretation"] == "MONOCHROME1" or shape == "INVERSE"
    meta["value_range"] = _value_range(ds, fidx)
    return meta

