"""Census of a folder of scans: one CSV row per file and a lint summary.

Headers are read without decoding pixels (``dcmread(defer_size=...)`` for DICOM, Pillow's
lazy open for PNG/JPEG, the first IFD for TIFF), so a folder of 10,000 files costs 10,000
header reads, not 10,000 decodes. The checks that can be made from the header are made:
pixel data present, transfer syntax known and its decoder installed, pixel description
consistent, native pixel data not shorter than the header says. ``decode=True`` decodes
every file with :func:`imaging_tl.read_scan` instead. A file that fails is a row with its
reason, never a crash. Patient names and birth dates are never written (the age only as a
band, the institution only as a pseudonymous site code); the summary
prints counts and file names, never patient IDs or UIDs.
"""

from __future__ import annotations

import io
import json
import os
import sys
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imaging_tl._atomic import csv_text, readable_text, write_csv
from imaging_tl.io.content_flags import burned_in_flag, colour_of
from imaging_tl.io.dicom_header import HEADER_KEYWORDS, header_meta
from imaging_tl.io.errors import (
    CorruptPixelDataError,
    NoPixelDataError,
    NotAnImageError,
    ScanReadError,
)
from imaging_tl.io.pseudonyms import pseudonym
from imaging_tl.io.series import (
    SERIES_COLUMNS,
    Series,
    add_series_columns,
    series_findings,
    slice_headers_of,
)
from imaging_tl.io.subgroup_tags import SUBGROUP_TAG_COLUMNS, subgroup_tags

#: CSV columns, in order.
COLUMNS: tuple[str, ...] = (
    "path",
    "status",
    "error",
    "reason",
    "format",
    "gzipped",
    "decoded",
    "transfer_syntax",
    "decoder",
    *HEADER_KEYWORDS,
    *SUBGROUP_TAG_COLUMNS,
    "invert",
    "windows",
    "voi_lut_function",
    "voi_lut_count",
    "value_range",
    "colour",
    "burned_in",
    *SERIES_COLUMNS,
)

_EXAMPLES = 3  # file names shown per finding in the summary


@dataclass
class CensusResult:
    """What a census found: the rows written to the CSV, and the lint findings.

    Attributes
    ----------
    directory : pathlib.Path
        The folder walked.
    out : pathlib.Path or None
        The CSV written (None when not written).
    rows : list of dict
        One row per file, keys :data:`COLUMNS`.
    series : list of Series
        The DICOM files grouped into ordered, checked series
        (:func:`imaging_tl.io.series.add_series_columns`).

    Examples
    --------
    >>> r = CensusResult(Path("scans"), None, [])
    >>> r.format().splitlines()[0]
    'Census of scans: 0 files'
    """

    directory: Path
    out: Path | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)

    @property
    def ok_rows(self) -> list[dict[str, Any]]:
        """Rows of files that read (header checks passed, or decoded)."""
        return [r for r in self.rows if r["status"] == "ok"]

    @property
    def failed_rows(self) -> list[dict[str, Any]]:
        """Rows of image files that could not be read (status ``"error"``)."""
        return [r for r in self.rows if r["status"] == "error"]

    @property
    def other_rows(self) -> list[dict[str, Any]]:
        """Rows of files that are not images (status ``"not_image"``): text files, RT plans,
        structured reports and the like, which a folder of scans often also holds."""
        return [r for r in self.rows if r["status"] == "not_image"]

    def lint(self) -> list[str]:
        """Findings a researcher should look at before training, one line each.

        Examples
        --------
        >>> ok = dict(status="ok", format="png", PhotometricInterpretation="RGB")
        >>> CensusResult(Path("d"), None, [ok, {**ok, "PhotometricInterpretation": "MONOCHROME2"}]
        ...              ).lint()[0]
        'mixed photometric interpretations: MONOCHROME2 (1), RGB (1)'
        """
        ok = self.ok_rows
        dicom = [r for r in ok if r.get("format") == "dicom"]
        return (_mixed_findings(ok, dicom) + _decoder_findings(self.rows)
                + _identity_findings(dicom) + _multi_frame_findings(ok)
                + _failure_findings(self.failed_rows) + _other_file_findings(self.other_rows)
                + series_findings(self.series))

    def format(self) -> str:
        """The summary printed by ``imaging-tl census``.

        Examples
        --------
        >>> print(CensusResult(Path("scans"), Path("c.csv"), []).format())
        Census of scans: 0 files -> c.csv
          readable: 0
          failed: 0
        No findings.
        """
        target = f" -> {self.out}" if self.out is not None else ""
        lines = [f"Census of {self.directory}: {len(self.rows)} files{target}"]
        fmts = Counter(r.get("format") for r in self.ok_rows)
        detail = ", ".join(f"{k} {v}" for k, v in sorted(fmts.items()) if k)
        lines.append(f"  readable: {len(self.ok_rows)}" + (f" ({detail})" if detail else ""))
        lines.append(f"  failed: {len(self.failed_rows)}")
        if self.other_rows:
            lines.append(f"  not images: {len(self.other_rows)}")
        findings = self.lint()
        if findings:
            lines.append("Findings:")
            lines.extend(f"  {f}" if f.startswith("  ") else f"  - {f}" for f in findings)
        else:
            lines.append("No findings.")
        return "\n".join(lines)


def _examples(rows: list[dict[str, Any]]) -> str:
    names = [r["path"] for r in rows[:_EXAMPLES]]
    more = f", ... {len(rows) - _EXAMPLES} more" if len(rows) > _EXAMPLES else ""
    return "e.g. " + ", ".join(names) + more


def _mixed(label: str, key: str, rows: list[dict[str, Any]], hint: str = "") -> list[str]:
    """``["mixed <label>: value (count), ..."]`` when the rows disagree on ``key``."""
    counts = Counter(str(r.get(key)) for r in rows if r.get(key) not in (None, ""))
    if len(counts) < 2:
        return []
    keys = sorted(counts, key=lambda k: k.zfill(12) if k.isdigit() else "~" + k)
    parts = ", ".join(f"{k} ({counts[k]})" for k in keys)
    return [f"mixed {label}: {parts}{hint}"]


def _mixed_findings(ok: list[dict[str, Any]], dicom: list[dict[str, Any]]) -> list[str]:
    """Readable files that disagree: photometry, bit depth, modality, format, intent."""
    mono1 = any(r.get("PhotometricInterpretation") == "MONOCHROME1" for r in ok)
    out = _mixed("photometric interpretations", "PhotometricInterpretation", ok,
                 " -> the windowing stage inverts MONOCHROME1 so that dense is bright" if mono1
                 else "")
    out += _mixed("bit depths (BitsStored)", "BitsStored", ok)
    out += _mixed("modalities", "Modality", dicom)
    out += _mixed("formats", "format", ok)
    out += _mixed("colour (grey / grey_in_rgb / rgb)", "colour", ok,
                  " -> data.color decides: auto makes grey_in_rgb grey and keeps rgb colour")
    out += _burned_in_findings(ok)
    intents = Counter(str(r.get("PresentationIntentType") or "").upper() for r in dicom)
    if intents.get("FOR PROCESSING") and intents.get("FOR PRESENTATION"):
        out.append(
            f"FOR PROCESSING ({intents['FOR PROCESSING']}) mixed with FOR PRESENTATION "
            f"({intents['FOR PRESENTATION']}): raw detector images need their own windowing"
        )
    return out


def _burned_in_findings(ok: list[dict[str, Any]]) -> list[str]:
    flagged = [r for r in ok if r.get("burned_in") in ("yes", "likely")]
    if not flagged:
        return []
    yes = sum(r.get("burned_in") == "yes" for r in flagged)
    return [f"{len(flagged)} file(s) may carry burned-in text ({yes} say BurnedInAnnotation "
            f"YES, the others are secondary captures or ultrasound): kept out of the report's "
            f"pictures unless evaluate.show_burned_in; {_examples(flagged)}"]


def _decoder_findings(rows: list[dict[str, Any]]) -> list[str]:
    """Files that need a decoder that is not installed, with what to install."""
    no_decoder = [r for r in rows if r.get("error") == "MissingDecoderError"]
    if not no_decoder:
        return []
    hints = sorted({r["decoder"] for r in no_decoder if r.get("decoder")})
    return [f"files without a decoder: {len(no_decoder)} ({_examples(no_decoder)})"
            + (f"; {'; '.join(hints)}" if hints else "")]


def _identity_findings(dicom: list[dict[str, Any]]) -> list[str]:
    """DICOM files that cannot be grouped by patient, or that share a SOPInstanceUID."""
    out = []
    missing_pid = [r for r in dicom if not r.get("PatientID")]
    if missing_pid:
        out.append(
            f"missing PatientID: {len(missing_pid)} DICOM file(s) ({_examples(missing_pid)}); "
            "patient-level splits cannot group them"
        )
    by_uid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in dicom:
        if r.get("SOPInstanceUID"):
            by_uid[r["SOPInstanceUID"]].append(r)
    dups = [rows for rows in by_uid.values() if len(rows) > 1]
    if dups:
        files = [r for rows in dups for r in rows]
        out.append(
            f"duplicate SOPInstanceUID: {len(dups)} UID(s) shared by {len(files)} files "
            f"({_examples(files)}); the same image counted twice can leak between splits"
        )
    return out


def _multi_frame_findings(ok: list[dict[str, Any]]) -> list[str]:
    multi = [r for r in ok if (r.get("NumberOfFrames") or 1) > 1]
    if not multi:
        return []
    return [f"multi-frame files: {len(multi)} ({_examples(multi)}); read_scan returns all "
            "frames unless frame= is given"]


def _failure_findings(failed_rows: list[dict[str, Any]]) -> list[str]:
    """Image files that failed (other than for a missing decoder), by error, with reasons."""
    failed = [r for r in failed_rows if r.get("error") != "MissingDecoderError"]
    if not failed:
        return []
    out = [f"files that failed: {len(failed)}"]
    by_error: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in failed:
        by_error[r["error"]].append(r)
    for err, rows in sorted(by_error.items()):
        out.append(f"  {err}: {len(rows)}")
        out.extend(f"    {r['path']}: {r['reason']}" for r in rows[:_EXAMPLES])
    return out


def _other_file_findings(others: list[dict[str, Any]]) -> list[str]:
    if not others:
        return []
    kinds = Counter(
        "DICOM without pixel data" if r["error"] == "NoPixelDataError" else "not images"
        for r in others
    )
    parts = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    return [f"other files, not read as scans: {len(others)} ({parts}; {_examples(others)})"]


def walk_files(directory: Path) -> list[Path]:
    """Every non-hidden file under ``directory``, in sorted order (hidden folders skipped).

    Examples
    --------
    >>> [p.name for p in walk_files(Path("imaging_tl/io"))][:2]
    ['__init__.py', 'census.py']
    """
    files: list[Path] = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
    return files




def _dicom_header_row(source: Any, path: str, has_preamble: bool, row: dict[str, Any]) -> None:
    """Fill ``row`` from the header and make the checks that need no decode.

    Raises ScanReadError like the loader would; ``row`` keeps what was read before.
    """
    from imaging_tl.io.dicom_pixels import damaged_header_errors, read_dataset

    # defer_size keeps large values (the pixel data) on disk; buffers are already in memory
    defer = 4096 if isinstance(source, str) else None
    ds = read_dataset(source, path, has_preamble=has_preamble, defer_size=defer)
    with damaged_header_errors(path):
        _check_dataset(ds, source, path, row)


def _check_dataset(ds: Any, source: Any, path: str, row: dict[str, Any]) -> None:
    from pydicom.pixels.utils import get_expected_length
    from pydicom.uid import UID

    from imaging_tl.io.dicom_checks import check_header
    from imaging_tl.io.dicom_pixels import (
        check_decoder,
        decoder_install_hint,
        ensure_transfer_syntax,
        require_pixel_data,
    )

    try:
        row.update({k: v for k, v in header_meta(ds).items() if k in row or k == "voi_luts"})
        row["burned_in"] = burned_in_flag(ds)
        row.update(subgroup_tags(ds))  # sex, age band, scanner, site code: never a name
        row["slices"] = slice_headers_of(ds, row["path"])  # grouped by run_census
    except Exception:
        pass  # a damaged optional field; the checks below report what blocks reading
    require_pixel_data(ds, path)
    ts = ensure_transfer_syntax(ds, path, [])
    row["TransferSyntaxUID"] = ts
    row["transfer_syntax"] = UID(ts).name
    check_header(ds, path)
    row["decoder"] = "not needed"
    if UID(ts).is_compressed:
        row["decoder"] = decoder_install_hint(ts)  # replaced by "available" when it is
        check_decoder(ts, path)
        row["decoder"] = "available"
        _check_codestream(ds, source, path, ts)
    else:
        raw = ds.get_item("PixelData", keep_deferred=True)
        tell, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
        deflated = ts == "1.2.840.10008.1.2.1.99"  # offsets refer to the inflated stream
        if tell is not None and length not in (None, 0xFFFFFFFF) and not deflated:
            size = os.path.getsize(source) if isinstance(source, str) else len(source.getvalue())
            expected = get_expected_length(ds, "bytes")
            available = min(length, size - tell)  # a missing pad byte loses no pixel
            if available < expected:
                raise CorruptPixelDataError(
                    path, f"the pixel data is truncated: {available} bytes where the header "
                    f"needs {expected}"
                )


def _check_codestream(ds: Any, source: Any, path: str, ts: str) -> None:
    """The JPEG 2000 SIZ check of the loader, reading only the start of the pixel data."""
    from imaging_tl.io.dicom_checks import check_codestream_size

    raw = ds.get_item("PixelData", keep_deferred=True)
    tell = getattr(raw, "value_tell", None)
    if tell is None or getattr(raw, "value", None) is not None:
        check_codestream_size(ds, path, ts)
        return
    if isinstance(source, str):
        with open(source, "rb") as f:
            f.seek(tell)
            head = f.read(1 << 16)
    else:
        head = source.getvalue()[tell: tell + (1 << 16)]
    check_codestream_size(ds, path, ts, head=head)


def census_row(path: str | os.PathLike, *, root: str | os.PathLike | None = None,
               decode: bool = False) -> dict[str, Any]:
    """One census row for one file; never raises for a bad file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    root : str or os.PathLike, optional
        Folder that ``path`` is written relative to in the row.
    decode : bool
        Decode the pixels with :func:`imaging_tl.read_scan` (slower, catches corrupt
        compressed data) instead of checking the header only.

    Returns
    -------
    dict
        Keys :data:`COLUMNS` (the series columns are filled by
        :func:`imaging_tl.io.series.add_series_columns`, from the row's ``slices``);
        ``status`` is ``"ok"``, ``"error"`` (an image that cannot
        be read) or ``"not_image"`` (not an image file, or DICOM without pixel data).

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> row = census_row(get_testdata_file("CT_small.dcm", download=False))
    >>> row["status"], row["Modality"], row["transfer_syntax"]
    ('ok', 'CT', 'Explicit VR Little Endian')
    """
    from imaging_tl.io.limits import check_pixel_count
    from imaging_tl.io.raster import read_raster_header
    from imaging_tl.io.reader import open_scan_source, raster_values, read_scan

    path = os.fspath(path)
    shown = readable_text(os.path.relpath(path, root) if root is not None else path)
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(path=shown, status="ok", gzipped=False, decoded=decode)
    scan = None
    try:
        source, kind, prov = open_scan_source(path)
        row["gzipped"] = "gunzip" in prov
        if kind in ("dicom", "dicom-nometa"):
            row["format"] = "dicom"
            _dicom_header_row(source, path, kind == "dicom", row)
        elif kind in ("png", "jpeg", "tiff"):
            row["format"] = kind
            meta = read_raster_header(source, path, kind)
            row.update({k: v for k, v in meta.items() if k in row})
            check_pixel_count(path, raster_values(meta))
        if decode or kind is None:
            scan = read_scan(path)  # raises NotAnImageError for kind None
            row.update({k: v for k, v in scan.meta.items() if k in row or k == "voi_luts"})
    except ScanReadError as exc:
        status = "not_image" if isinstance(exc, (NotAnImageError, NoPixelDataError)) else "error"
        row.update(status=status, error=type(exc).__name__, reason=exc.reason)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a census never crashes on one bad file (nor a Rust panic)
        row.update(status="error", error=type(exc).__name__, reason=str(exc) or repr(exc))
    if row["status"] == "ok":
        if scan is None and row.get("format") in ("png", "jpeg", "tiff") \
                and str(row.get("SamplesPerPixel")) == "3":
            scan = _decoded(path)  # a colour raster: is it grey in content?
        row["colour"] = colour_of(row, scan.pixels if scan is not None else None)
        row["burned_in"] = row["burned_in"] or burned_in_flag(row)
    if row.get("TransferSyntaxUID") and not row.get("transfer_syntax"):
        from pydicom.uid import UID

        row["transfer_syntax"] = UID(row["TransferSyntaxUID"]).name
    row["voi_lut_count"] = len(row.pop("voi_luts", None) or [])
    return row


def _decoded(path: str) -> Any:
    from imaging_tl.io.reader import read_scan

    try:
        return read_scan(path)
    except ScanReadError:
        return None


def burned_in_of(path: str | os.PathLike) -> str:
    """:func:`burned_in_flag` of a file, from its header (``""`` when it cannot be read).

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> burned_in_of(get_testdata_file("US1_UNCR.dcm", download=False))
    'likely'
    """
    return str(census_row(path).get("burned_in") or "")


def csv_value(value: Any) -> Any:
    """A census value as written to CSV: lists and dicts as JSON, None as empty.

    Examples
    --------
    >>> csv_value([0.5, 0.5]), csv_value(None), csv_value(12)
    ('[0.5, 0.5]', '', 12)
    """
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return "" if value is None else value




def pseudonymize_patient_id(patient_id: Any) -> str | None:
    """A stable pseudonym for a PatientID (:func:`imaging_tl.io.pseudonyms.pseudonym`).

    Files of one patient keep one pseudonym, so grouping, patient-level splits and the
    "missing PatientID" lint still work; the identifier itself is not written. (Short
    numeric IDs can be found again by trying them all: a pseudonym, not anonymisation.)

    Examples
    --------
    >>> pseudonymize_patient_id("1CT1")[:4]
    'pid:'
    >>> pseudonymize_patient_id(None) is None
    True
    """
    if patient_id in (None, ""):
        return None
    return pseudonym(str(patient_id))


def write_census_csv(rows: list[dict[str, Any]], out: str | os.PathLike | io.TextIOBase) -> None:
    """Write census rows as CSV (lists as JSON), columns :data:`COLUMNS`.

    A file is written atomically (an existing census survives any failure), with cells
    escaped against spreadsheet formulas and undecodable names written readably
    (:func:`imaging_tl._atomic.write_csv`).

    Examples
    --------
    >>> buf = io.StringIO()
    >>> write_census_csv([{"path": "a.dcm", "status": "ok"}], buf)
    >>> buf.getvalue().splitlines()[1][:9]
    'a.dcm,ok,'
    """
    table = [{k: csv_value(row.get(k)) for k in COLUMNS} for row in rows]
    if isinstance(out, io.TextIOBase):
        out.write(csv_text(table, COLUMNS))
    else:
        write_csv(out, table, COLUMNS)


def run_census(
    directory: str | os.PathLike,
    out: str | os.PathLike | None = "census.csv",
    *,
    progress: bool = True,
    decode: bool = False,
    keep_patient_id: bool = False,
) -> CensusResult:
    """Walk ``directory`` and write one CSV row per file, then return the lint summary.

    Parameters
    ----------
    directory : str or os.PathLike
        Folder walked recursively (names starting with ``.`` are skipped).
    out : str or os.PathLike or None
        CSV to write; None writes nothing.
    progress : bool
        Show a progress bar (only when stderr is a terminal).
    decode : bool
        Decode every file's pixels instead of checking headers only.
    keep_patient_id : bool
        Write PatientID as in the files. By default it is replaced by
        :func:`pseudonymize_patient_id` (the same pseudonym ``imaging-tl run`` writes).

    Returns
    -------
    CensusResult
        ``.rows`` and ``.format()`` (the lint summary).

    Raises
    ------
    NotADirectoryError
        ``directory`` is not a folder.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> folder = os.path.dirname(get_testdata_file("CT_small.dcm", download=False))
    >>> result = run_census(folder, None, progress=False)
    >>> result.format().startswith("Census of")
    True
    """
    from tqdm import tqdm

    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    files = walk_files(root)
    bar = tqdm(
        files, unit="file", desc="census", disable=not (progress and sys.stderr.isatty()),
        file=sys.stderr,
    )
    with warnings.catch_warnings():
        # pydicom warns about every odd value; the rows carry what matters
        warnings.simplefilter("ignore")
        rows = [census_row(p, root=root, decode=decode) for p in bar]
    series = add_series_columns(rows)
    if not keep_patient_id:
        for row in rows:
            row["PatientID"] = pseudonymize_patient_id(row.get("PatientID"))
    if out is not None:
        write_census_csv(rows, out)
    return CensusResult(root, Path(out) if out is not None else None, rows, series)
