"""Files of a dataset: what kind each is, and the header fields a table needs from it.

DICOM is recognised by content for extension-less files (and names such as
``1.2.840.113619``), rasters by extension. Group keys read from headers are pseudonyms
(:func:`imaging_tl.io.pseudonyms.pseudonym`), never the identifiers themselves.
Only the header is read here, never the pixel data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from imaging_tl._atomic import readable_text
from imaging_tl.io.pseudonyms import pseudonym
from imaging_tl.io.reader import is_regular_file

__all__ = [
    "DICOM_EXTENSIONS",
    "HEADER_TAGS",
    "RASTER_EXTENSIONS",
    "Frames",
    "check_frames",
    "file_kind",
    "header_rows",
    "read_header",
]

RASTER_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff"})
DICOM_EXTENSIONS = frozenset({".dcm", ".dicom", ".dic", ".ima"})
_GZ = ".gz"

Frames = Literal["all", "middle", "first"]

# Header fields read for grouping, frame expansion and the audit; PixelData is never read.
HEADER_TAGS = [
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "NumberOfFrames",
    "Rows",
    "SOPClassUID",
]


def check_frames(frames: str) -> None:
    """Raise ``ValueError`` unless ``frames`` is ``"all"``, ``"middle"`` or ``"first"``.

    Examples
    --------
    >>> check_frames("middle")
    """
    if frames not in ("all", "middle", "first"):
        raise ValueError(f"frames={frames!r}: expected 'all', 'middle' or 'first'")


def _is_dicom_file(path: Path) -> bool:
    """True when the file is DICOM by content (preamble, or a header pydicom can parse)."""
    if not is_regular_file(path):
        return False  # a FIFO or device would block or never end
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    import pydicom

    try:
        # Files without the 128-byte preamble: force-read, then check something real came back
        # (dcmread(force=True) "reads" any file without complaining).
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True, specific_tags=HEADER_TAGS)
    except Exception:  # noqa: BLE001 - any parse failure means "not DICOM"
        return False
    return any(k in ds for k in ("SOPClassUID", "Rows", "StudyInstanceUID", "SOPInstanceUID"))


def file_kind(path: Path) -> str | None:
    """``"dicom"``, ``"raster"`` or None (skip) for a file found while walking a folder.

    Parameters
    ----------
    path : pathlib.Path
        The file; ``.gz`` counts by the extension before it. Files without a real
        extension are DICOM when their content is.

    Examples
    --------
    >>> from pathlib import Path
    >>> file_kind(Path("a.PNG")), file_kind(Path("b.dcm.gz")), file_kind(Path("notes.txt"))
    ('raster', 'dicom', None)
    """
    suffixes = [s.lower() for s in path.suffixes]
    suffix = suffixes[-1] if suffixes else ""
    if suffix == _GZ and len(suffixes) >= 2:
        suffix = suffixes[-2]
    if suffix in RASTER_EXTENSIONS:
        return "raster"
    if suffix in DICOM_EXTENSIONS:
        return "dicom"
    if suffix == "" or not suffix[1:].isalpha():  # extension-less, or e.g. "1.2.840.1"
        return "dicom" if _is_dicom_file(path) else None
    return None


def read_header(path: str) -> dict[str, Any]:
    """The non-empty :data:`HEADER_TAGS` of a DICOM file as stripped text.

    An unreadable header gives ``{}``: such files group by file, and
    :func:`imaging_tl.data.prepare.prepare` reports them.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> read_header(get_testdata_file("CT_small.dcm", download=False))["PatientID"]
    '1CT1'
    """
    import pydicom

    if not is_regular_file(path):
        return {}  # never opened: prepare() reports it through read_scan
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True, specific_tags=HEADER_TAGS)
    except Exception:  # noqa: BLE001 - unreadable headers group by file; prepare() reports them
        return {}
    out: dict[str, Any] = {}
    for tag in HEADER_TAGS:
        value = ds.get(tag)
        if value is not None and str(value).strip() != "":
            out[tag] = str(value).strip()
    return out


def header_rows(paths: Sequence[str], frames: Frames) -> list[dict[str, Any]]:
    """One dict per sample with path, frame, group, group_key and SOPInstanceUID.

    The group is the pseudonym of the PatientID, else of the StudyInstanceUID, else of
    the path; multi-frame files give one row per frame (``"all"``) or one row.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> row = header_rows([get_testdata_file("CT_small.dcm", download=False)], "all")[0]
    >>> row["group"][:4], len(row["group"]), row["group_key"]
    ('pid:', 20, 'PatientID')
    """
    rows: list[dict[str, Any]] = []
    for p in paths:
        hdr = read_header(p) if file_kind(Path(p)) == "dicom" else {}
        if "PatientID" in hdr:
            group, key = pseudonym(hdr["PatientID"], "pid"), "PatientID"
        elif "StudyInstanceUID" in hdr:
            group, key = pseudonym(hdr["StudyInstanceUID"], "study"), "StudyInstanceUID"
        else:
            group, key = pseudonym(readable_text(p), "file"), "file"  # any file name
        try:
            n_frames = int(hdr.get("NumberOfFrames", 1))  # "0" is 0 (one row, refused later)
        except ValueError:
            n_frames = 1
        base = {"group": group, "group_key": key, "SOPInstanceUID": hdr.get("SOPInstanceUID")}
        if n_frames > 1:
            chosen = {"all": range(n_frames), "middle": [n_frames // 2], "first": [0]}[frames]
            rows.extend({"path": p, "frame": i, **base} for i in chosen)
        else:
            rows.append({"path": p, "frame": pd.NA, **base})
    return rows
