"""Synthetic CT series (chest or head): a stack of slices with a lesion spanning a few.

A series is drawn as a volume in Hounsfield units, one slice per ``slice_thickness_mm``.
A positive series holds one lesion, a sphere whose cross-sections appear on the few slices
it crosses: a soft-tissue nodule in a lung (chest) or a hyperdense haemorrhage in the
brain (head). :func:`write_ct_series` writes one DICOM file per slice with the geometry a
scanner writes (ImagePositionPatient, ImageOrientationPatient, SliceThickness,
PixelSpacing, one SeriesInstanceUID, InstanceNumber), axial or tilted about the
left-right axis (a gantry tilt: an oblique series). :func:`generate_series_dataset` writes
a folder of series with ``series_labels.csv`` (one row per series, keyed by
SeriesInstanceUID) and ``slice_labels.csv`` (one row per slice: the lesion's slices are
``lesion``, the others ``normal``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl.synthetic.dicom_writer import DicomIdentity, synthetic_uid, write_ct
from imaging_tl.synthetic.noise import smooth_noise
from imaging_tl.synthetic.phantom import ct_slice

#: Body regions a series can show.
REGIONS = ("chest", "head")

#: Columns of ``series_labels.csv``.
SERIES_LABEL_COLUMNS = [
    "series_uid", "patient_id", "folder", "label", "region", "n_slices", "lesion_slices",
    "tilt_deg",
]

#: Columns of ``slice_labels.csv`` (``path`` relative to it; ``slice`` 0-based).
SLICE_LABEL_COLUMNS = ["path", "series_uid", "instance_number", "slice", "label"]

_FOV_MM = {"chest": 380.0, "head": 240.0}
# Lesion: HU inside, radius range (mm).
_LESION = {"chest": (20.0, (10.0, 16.0)), "head": (75.0, (9.0, 14.0))}


@dataclass
class CTSeries:
    """A synthetic CT volume and what it shows.

    Attributes
    ----------
    hu : numpy.ndarray
        float32 (slices, H, W) in Hounsfield units, slice 0 the most inferior (feet side).
    region : str
        ``"chest"`` or ``"head"``.
    pixel_spacing : float
        mm per pixel in the slice plane.
    slice_thickness : float
        mm between slice centres (contiguous slices).
    lesion_slices : list of int
        Slices the lesion appears on (empty for a negative series).
    params : dict
        The drawn lesion (centre, radius) and noise.

    Examples
    --------
    >>> s = make_ct_series(0, n_slices=6, size=32, lesion=True)
    >>> s.hu.shape, s.label, len(s.lesion_slices) >= 2
    ((6, 32, 32), 'lesion', True)
    """

    hu: np.ndarray
    region: str
    pixel_spacing: float
    slice_thickness: float
    lesion_slices: list[int] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``"lesion"`` when the series holds a lesion, else ``"normal"``."""
        return "lesion" if self.lesion_slices else "normal"


def _head_slice(rng: np.random.Generator, shape: tuple[int, int], extent: float,
                anatomy: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One axial head slice (HU) and its brain mask; ``extent`` in (0, 1] shrinks the
    skull towards the vertex."""
    h, w = shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (u - (w - 1) / 2) / (w / 2), (v - (h - 1) / 2) / (h / 2)
    ax, ay = anatomy.uniform(0.62, 0.7) * extent, anatomy.uniform(0.78, 0.86) * extent
    r = np.hypot(u / max(ax, 1e-3), v / max(ay, 1e-3))
    hu = np.full(shape, -1000.0, np.float32)
    hu[r < 1.0] = 40.0  # scalp
    hu[r < 0.95] = 1000.0  # skull
    brain = r < 0.86
    texture = smooth_noise(rng, shape, 3.0) * 4.0
    hu[brain] = (33.0 + texture)[brain]
    if extent > 0.7:  # lateral ventricles on the middle slices
        for sign in (-1.0, 1.0):
            vent = np.hypot((u - sign * 0.12 * ax) / (0.07 * ax), v / (0.3 * ay)) < 1.0
            hu[vent & brain] = 8.0
    return hu, brain & (r < 0.75)


def _chest_slices(n: int, shape: tuple[int, int], seed: Any
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """Chest slices of one patient (``ct_slice``) and their lung masks."""
    hu, lungs = np.empty((n, *shape), np.float32), np.empty((n, *shape), bool)
    spacing = _FOV_MM["chest"] / max(shape)
    for k in range(n):
        ph = ct_slice(np.random.default_rng([*seed, k]), shape,
                      field_of_view_mm=_FOV_MM["chest"], anatomy_seed=list(seed))
        hu[k], lungs[k] = ph.hu, ph.lung_mask
    return hu, lungs, spacing


def _head_slices(n: int, shape: tuple[int, int], seed: Any
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """Head slices from the skull base to the vertex, and where a bleed may sit."""
    hu, brain = np.empty((n, *shape), np.float32), np.empty((n, *shape), bool)
    for k in range(n):
        z = (k + 0.5) / n  # 0 skull base .. 1 vertex
        extent = float(np.sqrt(max(1.0 - (z - 0.35) ** 2 / 0.75 ** 2, 0.05)))
        hu[k], brain[k] = _head_slice(np.random.default_rng([*seed, k]), shape, extent,
                                      np.random.default_rng(list(seed)))
    return hu, brain, _FOV_MM["head"] / max(shape)


def _add_lesion(hu: np.ndarray, allowed: np.ndarray, rng: np.random.Generator, region: str,
                pixel_spacing: float, thickness: float, lesion: tuple[Any, Any]
                ) -> tuple[list[int], dict[str, Any]]:
    """Paint a sphere into ``hu`` (in place) centred on an allowed voxel of a middle slice;
    ``lesion``: (HU inside, radius range in mm), None for the region's defaults."""
    n = hu.shape[0]
    inside, (r_lo, r_hi) = (lesion[0] if lesion[0] is not None else _LESION[region][0],
                            lesion[1] if lesion[1] is not None else _LESION[region][1])
    radius = float(rng.uniform(r_lo, r_hi))
    margin = min(int(radius // thickness), (n - 1) // 2)
    centre_k = int(rng.integers(margin, n - margin)) if n > 2 * margin else n // 2
    ys, xs = np.nonzero(allowed[centre_k])
    if len(ys) == 0:
        ys, xs = np.array([hu.shape[1] // 2]), np.array([hu.shape[2] // 2])
    pick = int(rng.integers(len(ys)))
    cy, cx = float(ys[pick]), float(xs[pick])
    v, u = np.mgrid[0:hu.shape[1], 0:hu.shape[2]].astype(np.float32)
    slices = []
    for k in range(n):
        dz = (k - centre_k) * thickness
        if abs(dz) >= radius:
            continue
        r_px = np.sqrt(radius ** 2 - dz ** 2) / pixel_spacing
        weight = np.clip(r_px + 0.5 - np.hypot(u - cx, v - cy), 0.0, 1.0)  # antialiased disc
        if weight.max() <= 0:
            continue
        hu[k] = hu[k] * (1 - weight) + inside * weight
        slices.append(k)
    return slices, {"centre": [centre_k, cy, cx], "radius_mm": radius, "hu": inside}


def make_ct_series(
    seed: int | list[int],
    *,
    region: str = "chest",
    n_slices: int = 10,
    size: int = 64,
    lesion: bool = False,
    slice_thickness_mm: float = 5.0,
    noise_hu: float = 6.0,
    lesion_hu: float | None = None,
    lesion_radius_mm: tuple[float, float] | None = None,
) -> CTSeries:
    """Draw one CT series, with a lesion across a few slices when ``lesion``.

    Parameters
    ----------
    seed : int or list of int
        Seed of the series (anatomy, texture, lesion and noise).
    region : {"chest", "head"}
        Chest at lung level (a soft-tissue nodule, 10-16 mm radius) or the head (a
        haemorrhage of 75 HU in the brain, 9-14 mm radius).
    n_slices : int
        Slices in the series (at least 2).
    size : int
        Matrix side in pixels.
    lesion : bool
        Whether the series holds a lesion.
    slice_thickness_mm : float
        Distance between slice centres (mm).
    noise_hu : float
        Standard deviation of the added noise (HU).
    lesion_hu, lesion_radius_mm : float, (float, float), optional
        The lesion's HU and radius range (mm) instead of the region's (a fainter, smaller
        lesion is harder: e.g. a -600 HU ground-glass nodule of 6-10 mm).

    Returns
    -------
    CTSeries

    Examples
    --------
    >>> make_ct_series(1, region="head", n_slices=4, size=32).lesion_slices
    []
    """
    if region not in REGIONS:
        raise ValueError(f"region: {region!r} is not one of {list(REGIONS)}")
    if n_slices < 2 or size < 16:
        raise ValueError(f"n_slices must be >= 2 and size >= 16, got {n_slices} and {size}")
    key = [seed] if isinstance(seed, int) else list(seed)
    # Separate streams: a series with and without its lesion share anatomy and noise.
    rng, noise = np.random.default_rng([*key, 7]), np.random.default_rng([*key, 9])
    shape = (size, size)
    draw = _chest_slices if region == "chest" else _head_slices
    hu, allowed, spacing = draw(n_slices, shape, key)
    lesion_slices: list[int] = []
    params: dict[str, Any] = {"noise_hu": noise_hu}
    if lesion:
        lesion_slices, params["lesion"] = _add_lesion(
            hu, allowed, rng, region, spacing, slice_thickness_mm, (lesion_hu, lesion_radius_mm))
    hu += noise.standard_normal(hu.shape).astype(np.float32) * np.float32(noise_hu)
    return CTSeries(hu.astype(np.float32), region, spacing, float(slice_thickness_mm),
                    lesion_slices, params)


def slice_planes(series: CTSeries, tilt_deg: float = 0.0
                 ) -> list[tuple[list[float], list[float]]]:
    """(ImagePositionPatient, ImageOrientationPatient) of every slice, tilted about the
    patient's left-right axis by ``tilt_deg`` (a gantry tilt), centred on the table axis.

    Examples
    --------
    >>> s = make_ct_series(0, n_slices=3, size=16)
    >>> [round(p[0][2], 2) for p in slice_planes(s)]
    [0.0, 5.0, 10.0]
    """
    t = np.deg2rad(tilt_deg)
    row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(t), np.sin(t)])
    normal = np.cross(row, col)
    h, w = series.hu.shape[1:]
    half = series.pixel_spacing * (np.array([w, h]) / 2)
    out = []
    for k in range(series.hu.shape[0]):
        centre = normal * k * series.slice_thickness
        corner = centre - half[0] * row - half[1] * col
        out.append(([float(v) for v in corner], [*map(float, row), *map(float, col)]))
    return out


def write_ct_series(
    out_dir: str | os.PathLike,
    series: CTSeries,
    ident: DicomIdentity,
    *,
    tilt_deg: float = 0.0,
    transfer_syntax: str = "explicit",
) -> list[Path]:
    """Write a series as one DICOM file per slice, ``im001.dcm`` ... (InstanceNumber order).

    Each file gets its own SOPInstanceUID (derived from ``ident.sop_uid``); the series,
    study and frame of reference are ``ident``'s.

    Examples
    --------
    >>> import tempfile, pydicom
    >>> ident = DicomIdentity(1, "1.2.3", "1.2.3.1", "1.2.3.1.1", "20200101", "090000")
    >>> with tempfile.TemporaryDirectory() as d:
    ...     files = write_ct_series(d, make_ct_series(0, n_slices=3, size=16), ident, tilt_deg=20)
    ...     ds = pydicom.dcmread(files[2])
    ...     [round(float(x), 3) for x in ds.ImageOrientationPatient], int(ds.InstanceNumber)
    ([1.0, 0.0, 0.0, 0.0, 0.94, 0.342], 3)
    """
    from dataclasses import replace

    out, files = Path(out_dir), []
    part = "HEAD" if series.region == "head" else "CHEST"
    for k, plane in enumerate(slice_planes(series, tilt_deg)):
        one = replace(ident, sop_uid=synthetic_uid(ident.sop_uid, k), instance_number=k + 1)
        files.append(write_ct(
            out / f"im{k + 1:03d}.dcm", series.hu[k], one,
            pixel_spacing_mm=series.pixel_spacing, slice_location_mm=plane[0][2],
            slice_thickness_mm=series.slice_thickness, signed=True,
            transfer_syntax=transfer_syntax, plane=plane, body_part=part,
        ))
    return files


def slice_label_rows(folder: str, series_uid: str, n_slices: int,
                     lesion_slices: list[int]) -> list[dict[str, Any]]:
    """The ``slice_labels.csv`` rows of one written series (:data:`SLICE_LABEL_COLUMNS`).

    Examples
    --------
    >>> [r["label"] for r in slice_label_rows("SYNCT0001", "1.2", 3, [1])]
    ['normal', 'lesion', 'normal']
    """
    return [{"path": f"{folder}/im{k + 1:03d}.dcm", "series_uid": series_uid,
             "instance_number": k + 1, "slice": k,
             "label": "lesion" if k in lesion_slices else "normal"} for k in range(n_slices)]


def generate_series_dataset(
    out_dir: str | os.PathLike,
    *,
    n_patients: int = 12,
    region: str = "chest",
    n_slices: int = 10,
    size: int = 64,
    seed: int = 0,
    prevalence: float = 0.5,
    oblique_fraction: float = 0.25,
    transfer_syntax: str = "explicit",
) -> pd.DataFrame:
    """Write ``n_patients`` series (one per patient), ``series_labels.csv`` and
    ``slice_labels.csv`` (:func:`slice_label_rows`).

    Exactly ``round(prevalence * n_patients)`` series hold a lesion; a share
    ``oblique_fraction`` of the series is tilted 15-25 degrees. Folders are
    ``SYNCT<n>/`` with ``im001.dcm`` ... inside; patients ``SYN1001`` ... (apart from the
    radiograph sets' ``SYN0001`` ...).

    Returns
    -------
    pandas.DataFrame
        :data:`SERIES_LABEL_COLUMNS`, as written to ``series_labels.csv`` (``lesion_slices``
        0-based, joined with ``;``).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     df = generate_series_dataset(d, n_patients=2, n_slices=3, size=16)
    >>> sorted(df.label), df.n_slices.tolist()
    (['lesion', 'normal'], [3, 3])
    """
    out = Path(out_dir)
    rng = np.random.default_rng([seed, 19])
    positive = set(rng.permutation(n_patients)[: int(round(prevalence * n_patients))].tolist())
    oblique = set(rng.permutation(n_patients)[: int(round(oblique_fraction * n_patients))]
                  .tolist())
    rows, slice_rows = [], []
    for p in range(n_patients):
        series = make_ct_series([seed, p], region=region, n_slices=n_slices, size=size,
                                lesion=p in positive)
        tilt = float(rng.uniform(15, 25)) if p in oblique else 0.0
        study = synthetic_uid(seed, "ct-series", p)
        ident = DicomIdentity(1001 + p, study, synthetic_uid(study, "series"),
                              synthetic_uid(study, "sop"), "20240101", "080000",
                              sex="MF"[p % 2])
        folder = f"SYNCT{p + 1:04d}"
        write_ct_series(out / folder, series, ident, tilt_deg=tilt,
                        transfer_syntax=transfer_syntax)
        rows.append({
            "series_uid": str(ident.series_uid), "patient_id": ident.patient_id,
            "folder": folder, "label": series.label, "region": region,
            "n_slices": n_slices, "lesion_slices": ";".join(map(str, series.lesion_slices)),
            "tilt_deg": round(tilt, 2),
        })
        slice_rows += slice_label_rows(folder, str(ident.series_uid), n_slices,
                                       series.lesion_slices)
    df = pd.DataFrame(rows, columns=SERIES_LABEL_COLUMNS)
    df.to_csv(out / "series_labels.csv", index=False)
    pd.DataFrame(slice_rows, columns=SLICE_LABEL_COLUMNS).to_csv(out / "slice_labels.csv",
                                                                index=False)
    return df
