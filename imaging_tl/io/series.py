"""CT and MR series: slices grouped by SeriesInstanceUID, put in order, and checked.

Only headers are read (``stop_before_pixels``). Slices are ordered by their position along
the slice normal: ImagePositionPatient projected on the cross product of the row and column
direction cosines of ImageOrientationPatient, which is right for oblique series too (sorting
by the z coordinate is not). Where positions or one common orientation are missing the
InstanceNumber orders the slices, and the series says so (``order_by``). An enhanced
multi-frame object is one series whose frames are its slices (positions and orientation
from its functional groups).

Each series is checked: a single slice, mixed sizes or orientations, duplicated positions
and gaps (spacing not uniform). A problem flags the series with a message that names it by
its first file and slice count, never by a UID or patient identifier; the other series are
not affected.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imaging_tl.io.errors import ScanReadError
from imaging_tl.io.limits import check_pixel_count

#: How a series' slices were ordered.
ORDER_METHODS = ("position", "instance_number", "file")

# Positions closer than this (mm) along the normal are the same position.
_SAME_POSITION_MM = 1e-3
# Direction cosines differing by more than this are another orientation.
_ORIENTATION_TOL = 1e-3
# A step between neighbours differing from the median step by more than this share is a gap.
_SPACING_TOL = 0.1


@dataclass(frozen=True)
class SliceHeader:
    """The geometry of one slice (one file, or one frame of a multi-frame file).

    Attributes
    ----------
    path : str
        The file.
    frame : int or None
        0-based frame of a multi-frame file, None for a single-frame file.
    series_uid : str or None
        SeriesInstanceUID (None when the header has none).
    position : tuple of float or None
        ImagePositionPatient (mm).
    orientation : tuple of float or None
        ImageOrientationPatient: row then column direction cosines.
    instance_number : int or None
        InstanceNumber (for a frame: its 1-based frame number).
    size : tuple of int or None
        (Rows, Columns).
    pixel_spacing : tuple of float or None
        PixelSpacing (mm, row then column).
    slice_thickness : float or None
        SliceThickness (mm).
    patient_id, sop_uid : str or None
        PatientID and SOPInstanceUID, for grouping and the leakage audit; kept out of
        ``repr`` and of every message (callers store pseudonyms).

    Examples
    --------
    >>> s = SliceHeader("a.dcm", None, "1.2", (0.0, 0.0, 5.0), (1, 0, 0, 0, 1, 0), 3,
    ...                 (64, 64), (0.7, 0.7), 5.0)
    >>> s.normal_position()
    5.0
    """

    path: str
    frame: int | None
    series_uid: str | None
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    instance_number: int | None
    size: tuple[int, int] | None = None
    pixel_spacing: tuple[float, ...] | None = None
    slice_thickness: float | None = None
    patient_id: str | None = field(default=None, repr=False)
    sop_uid: str | None = field(default=None, repr=False)

    def normal(self) -> np.ndarray | None:
        """The unit slice normal (row cosines x column cosines), None without orientation."""
        if self.orientation is None:
            return None
        n = np.cross(np.asarray(self.orientation[:3]), np.asarray(self.orientation[3:]))
        length = float(np.linalg.norm(n))
        return n / length if length > 0 else None

    def normal_position(self, normal: np.ndarray | None = None) -> float | None:
        """The position projected on ``normal`` (default: this slice's own normal)."""
        n = self.normal() if normal is None else normal
        if n is None or self.position is None:
            return None
        return float(np.dot(np.asarray(self.position), n))


@dataclass
class Series:
    """One series: its slices in order, how they were ordered, and what is wrong with it.

    Attributes
    ----------
    uid : str
        SeriesInstanceUID (for a file without one: ``"file:" + path``). Kept in memory for
        grouping; messages never print it.
    slices : list of SliceHeader
        In order along the slice normal (or by InstanceNumber, see ``order_by``).
    order_by : str
        ``"position"``, ``"instance_number"`` or ``"file"`` (file name order: neither
        positions nor instance numbers).
    spacing : float or None
        The median distance between neighbouring slices (mm) when ordered by position.
    problems : list of str
        One sentence per problem; a series with any is flagged.

    Examples
    --------
    >>> Series("1.2", []).name
    'empty series'
    """

    uid: str
    slices: list[SliceHeader]
    order_by: str = "position"
    spacing: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """True when the series has a problem (see ``problems``)."""
        return bool(self.problems)

    @property
    def name(self) -> str:
        """How messages name the series: its first file and slice count (no UID)."""
        if not self.slices:
            return "empty series"
        first = self.slices[0]
        frame = f" frame {first.frame}" if first.frame is not None else ""
        return f"series of {len(self.slices)} slice(s) starting at {first.path}{frame}"

    def message(self) -> str:
        """The per-series report line: its name and its problems (empty when unflagged)."""
        return f"{self.name}: {'; '.join(self.problems)}" if self.problems else ""


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def _thickness(value: Any) -> float | None:
    one = _floats([value], 1) if value is not None else None
    return one[0] if one else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _plane(ds: Any, frame: int | None) -> tuple[Any, Any]:
    """(ImagePositionPatient, ImageOrientationPatient) of a dataset or one of its frames."""
    from imaging_tl.io.dicom_header import functional_group

    position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    if frame is not None:
        pos_group = functional_group(ds, "PlanePositionSequence", frame)
        ori_group = functional_group(ds, "PlaneOrientationSequence", frame)
        if pos_group is not None and "ImagePositionPatient" in pos_group:
            position = pos_group.ImagePositionPatient
        if ori_group is not None and "ImageOrientationPatient" in ori_group:
            orientation = ori_group.ImageOrientationPatient
    return position, orientation


def _spacing_thickness(ds: Any, frame: int) -> tuple[Any, Any]:
    from imaging_tl.io.dicom_header import functional_group

    spacing, thickness = ds.get("PixelSpacing"), ds.get("SliceThickness")
    measures = functional_group(ds, "PixelMeasuresSequence", frame)
    if measures is not None:
        spacing = measures.get("PixelSpacing", spacing)
        thickness = measures.get("SliceThickness", thickness)
    return spacing, thickness


def slice_headers_of(ds: Any, path: str) -> list[SliceHeader]:
    """The slices of a pydicom dataset: one, or one per frame of a multi-frame object.

    A declared frame count is checked against the pixel limit before anything is made per
    frame (:class:`~imaging_tl.io.errors.ImageTooLargeError`), and at most as many
    frames as the per-frame functional groups describe are listed.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset(); ds.SeriesInstanceUID = "1.2"; ds.InstanceNumber = 4
    >>> ds.ImagePositionPatient = [0, 0, 2.5]; ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    >>> [(s.instance_number, s.normal_position()) for s in slice_headers_of(ds, "a.dcm")]
    [(4, 2.5)]
    """
    uid, pid, sop = (ds.get(k) for k in ("SeriesInstanceUID", "PatientID", "SOPInstanceUID"))
    rows, cols = _int(ds.get("Rows")), _int(ds.get("Columns"))
    size = (rows, cols) if rows is not None and cols is not None else None
    n_frames = _int(ds.get("NumberOfFrames")) or 1
    if n_frames > 1:  # a header's claim: bounded before one entry per frame is made
        check_pixel_count(path, n_frames * (rows or 1) * (cols or 1),
                          what=f"the header declares {n_frames} frames")
        described = ds.get("PerFrameFunctionalGroupsSequence")
        if described is not None:
            n_frames = min(n_frames, len(described))
    frames: list[int | None] = list(range(n_frames)) if n_frames > 1 else [None]
    out = []
    for frame in frames:
        position, orientation = _plane(ds, frame)
        spacing, thickness = _spacing_thickness(ds, frame or 0)
        number = _int(ds.get("InstanceNumber")) if frame is None else frame + 1
        out.append(SliceHeader(
            path=path, frame=frame, series_uid=str(uid) if uid else None,
            position=_floats(position, 3) if position is not None else None,
            orientation=_floats(orientation, 6) if orientation is not None else None,
            instance_number=number, size=size,
            pixel_spacing=_floats(spacing, 2) if spacing is not None else None,
            slice_thickness=_thickness(thickness),
            patient_id=str(pid).strip() or None if pid else None,
            sop_uid=str(sop) if sop else None,
        ))
    return out


def read_slice_headers(path: str | os.PathLike) -> list[SliceHeader]:
    """Read one DICOM file's header (no pixels) and return its slices.

    Raises
    ------
    ScanReadError
        The file cannot be read or is not DICOM (the error names the file).

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> s = read_slice_headers(get_testdata_file("CT_small.dcm", download=False))[0]
    >>> s.size, s.position
    ((128, 128), (-158.135803, -179.035797, -75.699997))
    """
    from imaging_tl.io.dicom_pixels import damaged_header_errors, read_dataset
    from imaging_tl.io.errors import NotAnImageError
    from imaging_tl.io.reader import open_scan_source

    name = os.fspath(path)
    source, kind, _ = open_scan_source(name)
    if kind not in ("dicom", "dicom-nometa"):
        raise NotAnImageError(name, "not a DICOM file: a series needs DICOM headers")
    ds = read_dataset(source, name, has_preamble=kind == "dicom", stop_before_pixels=True)
    with damaged_header_errors(name):
        return slice_headers_of(ds, name)


def _counts(values: Iterable[Any]) -> str:
    counts = Counter(values)
    return ", ".join(f"{k} ({n})" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _shape_problems(slices: Sequence[SliceHeader]) -> list[str]:
    problems = []
    if len(slices) == 1 and slices[0].position is not None:  # cross-sectional, alone
        problems.append("a single slice: no neighbouring slices, no slice order")
    sizes = {s.size for s in slices if s.size is not None}
    if len(sizes) > 1:
        problems.append("mixed sizes: " + _counts(
            f"{s.size[0]}x{s.size[1]}" for s in slices if s.size is not None))
    return problems


def _common_orientation(slices: Sequence[SliceHeader]) -> tuple[np.ndarray | None, str | None]:
    """The shared orientation's normal, or None with the problem (None: simply missing)."""
    orientations = [s.orientation for s in slices]
    if any(o is None for o in orientations):
        return None, None
    first = np.asarray(orientations[0])
    differ = [o for o in orientations if np.max(np.abs(np.asarray(o) - first)) > _ORIENTATION_TOL]
    if differ:
        return None, (f"mixed orientations: {len(differ)} of {len(slices)} slice(s) differ "
                      "from the first slice's ImageOrientationPatient")
    return slices[0].normal(), None


def _position_problems(distances: np.ndarray) -> tuple[float | None, list[str]]:
    """The median step, and duplicated positions or gaps, from sorted positions."""
    if len(distances) < 2:
        return None, []
    steps = np.diff(distances)
    problems = []
    same = steps < _SAME_POSITION_MM
    if same.any():
        at = ", ".join(f"{d:.2f}" for d in distances[1:][same][:3])
        problems.append(f"duplicated positions: {int(same.sum())} slice(s) at the position of "
                        f"a neighbour (at {at} mm along the normal)")
    moving = steps[~same]
    if len(moving) == 0:
        return None, problems
    spacing = float(np.median(moving))
    off = np.abs(moving - spacing) > _SPACING_TOL * spacing
    if off.any():
        largest = float(moving[off][np.argmax(np.abs(moving[off] - spacing))])
        missing = max(int(round(largest / spacing)) - 1, 0)
        hint = f"; about {missing} missing slice(s)" if missing else ""
        problems.append(f"spacing not uniform: {int(off.sum())} step(s) differ from the "
                        f"median {spacing:.3g} mm (largest {largest:.3g} mm){hint}")
    return spacing, problems


def order_series(slices: Sequence[SliceHeader]) -> Series:
    """Order the slices of one series and check it.

    Parameters
    ----------
    slices : sequence of SliceHeader
        The slices of one series, in any order (all with the same ``series_uid``).

    Returns
    -------
    Series
        Slices along the normal (``order_by`` ``"position"``), else by InstanceNumber,
        else by file name; ``problems`` lists what is wrong.

    Examples
    --------
    >>> ori = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    >>> s = [SliceHeader(f"{z:g}.dcm", None, "1", (0.0, 0.0, z), ori, None)
    ...      for z in (5.0, 0.0, 20.0, 10.0)]
    >>> series = order_series(s)
    >>> [x.path for x in series.slices], series.spacing
    (['0.dcm', '5.dcm', '10.dcm', '20.dcm'], 5.0)
    >>> first, hint = series.problems[0].split("; ")
    >>> first
    'spacing not uniform: 1 step(s) differ from the median 5 mm (largest 10 mm)'
    >>> hint
    'about 1 missing slice(s)'
    """
    items = list(slices)
    uid = items[0].series_uid if items and items[0].series_uid else (
        "file:" + items[0].path if items else "")
    problems = _shape_problems(items)
    normal, orientation_problem = _common_orientation(items)
    if orientation_problem:
        problems.append(orientation_problem)
    if normal is not None and all(s.position is not None for s in items):
        distances = np.array([s.normal_position(normal) for s in items], dtype=float)
        order = np.argsort(distances, kind="stable")
        spacing, more = _position_problems(distances[order])
        return Series(uid, [items[i] for i in order], "position", spacing, problems + more)
    if all(s.instance_number is not None for s in items):
        ordered = sorted(items, key=lambda s: (s.instance_number, s.path))
        numbers = [s.instance_number for s in ordered]
        if len(set(numbers)) < len(numbers):
            problems.append("duplicated InstanceNumber (and no usable positions)")
        return Series(uid, ordered, "instance_number", None, problems)
    if len(items) > 1:
        problems.append("neither ImagePositionPatient/ImageOrientationPatient nor "
                        "InstanceNumber on every slice: slices in file-name order")
    return Series(uid, sorted(items, key=lambda s: (s.path, s.frame or 0)), "file", None,
                  problems)


def group_series(slices: Iterable[SliceHeader]) -> list[Series]:
    """Group slices by SeriesInstanceUID, order and check each series.

    A slice without SeriesInstanceUID is a series of its own file. A single slice with an
    ImagePositionPatient (cross-sectional) is flagged; a lone radiograph is not. The series
    come back in the order of their first file's path.

    Examples
    --------
    >>> ori = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    >>> s = [SliceHeader(f"{u}{z}.dcm", None, u, (0.0, 0.0, z), ori, None)
    ...      for u in "ab" for z in (1.0, 0.0)]
    >>> [(x.uid, len(x.slices), x.flagged) for x in group_series(s)]
    [('a', 2, False), ('b', 2, False)]
    """
    groups: dict[str, list[SliceHeader]] = defaultdict(list)
    for s in slices:
        groups[s.series_uid or f"file:{s.path}"].append(s)
    out = [order_series(items) for items in groups.values()]
    return sorted(out, key=lambda x: min((s.path, s.frame or 0) for s in x.slices))


def scan_series(paths: Iterable[str | os.PathLike]) -> tuple[list[Series], dict[str, str]]:
    """Read the headers of ``paths``, group them into ordered, checked series.

    A file whose header cannot be read is left out and returned with its reason: the other
    files go on.

    Returns
    -------
    (series, failed)
        The series (see :func:`group_series`) and ``{path: reason}`` of unreadable files.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> series, failed = scan_series([get_testdata_file("CT_small.dcm", download=False)])
    >>> len(series), series[0].problems, failed
    (1, ['a single slice: no neighbouring slices, no slice order'], {})
    """
    headers: list[SliceHeader] = []
    failed: dict[str, str] = {}
    for p in paths:
        try:
            headers.extend(read_slice_headers(p))
        except ScanReadError as exc:
            failed[os.fspath(p)] = exc.reason
    return group_series(headers), failed


#: Census columns this module fills (see :func:`add_series_columns`).
SERIES_COLUMNS: tuple[str, ...] = ("series_slice", "slice_order", "series_problem")


def add_series_columns(rows: list[dict[str, Any]]) -> list[Series]:
    """Fill the census's series columns from the slices its rows carry, and drop those.

    Each row may hold ``"slices"`` (from :func:`slice_headers_of`). The rows' slices are
    grouped into series; every DICOM row gets ``series_slice`` (its 0-based place in the
    series order; blank for a multi-frame file, whose frames are the series), ``slice_order``
    (:data:`ORDER_METHODS`) and ``series_problem`` (the series' problems, blank if none).
    A lone image without position (a radiograph) gets none of them.

    Returns
    -------
    list of Series

    Examples
    --------
    >>> ori = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    >>> rows = [{"path": f"{z}.dcm", "slices": [SliceHeader(f"{z}.dcm", None, "1",
    ...          (0.0, 0.0, z), ori, None)]} for z in (2.0, 1.0)]
    >>> _ = add_series_columns(rows)
    >>> [(r["series_slice"], r["slice_order"]) for r in rows]
    [(1, 'position'), (0, 'position')]
    """
    by_path: dict[str, dict[str, Any]] = {}
    headers: list[SliceHeader] = []
    for row in rows:
        slices = row.pop("slices", None) or []
        if slices:
            by_path[slices[0].path] = row
            headers.extend(slices)
    series = group_series(headers)
    for one in series:
        if len(one.slices) == 1 and not one.flagged:
            continue  # a radiograph: a series of one image, nothing to order
        problem = "; ".join(one.problems)
        for index, s in enumerate(one.slices):
            row = by_path[s.path]
            row["series_slice"] = index if s.frame is None else None
            row["slice_order"] = one.order_by
            row["series_problem"] = problem
    return series


def series_findings(series: Sequence[Series], examples: int = 3) -> list[str]:
    """Census lint lines: flagged series (with their messages) and the order fallbacks.

    Examples
    --------
    >>> s = Series("1", [SliceHeader("a.dcm", None, "1", None, None, 1)], "instance_number",
    ...            problems=["a single slice: no neighbouring slices, no slice order"])
    >>> series_findings([s])[0]
    'series flagged: 1 of 1 (each is reported, the others go on)'
    """
    stacks = [s for s in series if len(s.slices) > 1 or s.flagged]
    flagged = [s for s in stacks if s.flagged]
    out = []
    if flagged:
        out.append(f"series flagged: {len(flagged)} of {len(stacks)} (each is reported, "
                   "the others go on)")
        out.extend(f"  {s.message()}" for s in flagged[:examples])
        if len(flagged) > examples:
            out.append(f"  ... {len(flagged) - examples} more (column series_problem)")
    fallback = [s for s in stacks if s.order_by != "position" and len(s.slices) > 1]
    if fallback:
        out.append(f"series ordered without ImagePositionPatient: {len(fallback)} "
                   f"(by InstanceNumber or file name; column slice_order)")
    return out
