"""Generating a labelled synthetic dataset on disk: DICOM + PNG files and ``labels.csv``.

Layout (paths in ``labels.csv`` are relative to its folder)::

    out_dir/
      labels.csv            path, patient_id, study_uid, label, nodule, consolidation, effusion
      SYN0001/st1_im01.dcm  one folder per patient; 1-3 images per study
      SYN0001/st2_im03.png  some studies exported as 8- or 16-bit PNG

Patients share their anatomy across images (so patient-level splitting matters, as with
real data); a patient's condition shows on most but not all of their images. Each study
has one encoding (CR or DX, MONOCHROME1/2, bit depth, transfer syntax, or a PNG export),
varied between studies. Every image is drawn from its own seed stream
(``[seed, patient, image]``), so a dataset is reproducible file by file and patients can be
generated in parallel.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from imaging_tl._atomic import write_csv
from imaging_tl.synthetic.composite import composite_radiograph
from imaging_tl.synthetic.dicom_writer import (
    TRANSFER_SYNTAXES,
    DicomIdentity,
    synthetic_uid,
    write_ct,
    write_radiograph,
)
from imaging_tl.synthetic.findings import FINDINGS, Difficulty, get_difficulty
from imaging_tl.synthetic.images import SyntheticImage, make_ct, make_radiograph
from imaging_tl.synthetic.png_writer import write_png
from imaging_tl.synthetic.population import Population, patient_tags, shifted_pixels
from imaging_tl.synthetic.sites import SiteProfile, get_site

__all__ = ["LABEL_COLUMNS", "generate_dataset"]

#: The columns of ``labels.csv``, in order (``visibility_cnr``: the contrast-to-noise ratio
#: of the least visible finding on the image, empty for normal images).
LABEL_COLUMNS = ["path", "patient_id", "study_uid", "label", *FINDINGS, "visibility_cnr"]

_DEFAULT_PREVALENCE = {"nodule": 0.5, "consolidation": 0.2, "effusion": 0.2}
_DEFAULT_SYNTAXES = {"jpeg2000": 0.55, "rle": 0.15, "explicit": 0.2, "implicit": 0.1}
_DEFAULT_BITS = {10: 0.4, 12: 0.35, 14: 0.15, 16: 0.1}


def _pick(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    keys = list(weights)
    p = np.asarray([weights[k] for k in keys], float)
    return str(keys[int(rng.choice(len(keys), p=p / p.sum()))])


def _write_mask_pngs(mask_dir: Path, rel: str, masks: dict[str, np.ndarray]) -> None:
    stem = Path(rel).with_suffix("")
    for kind, m in masks.items():
        out = mask_dir / f"{stem}_{kind}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(m.astype(np.uint8) * 255).save(out, format="PNG")


@dataclass(frozen=True)
class _Settings:
    """What every patient job needs (picklable, for worker processes)."""

    out_dir: Path
    n_images: int
    seed: int
    difficulty: Difficulty
    size: int
    kind: str
    prevalence: dict
    persistence: float
    png_fraction: float
    syntaxes: dict
    bit_depths: dict
    backgrounds: Sequence[np.ndarray] | None
    mask_dir: Path | None
    site: SiteProfile
    population: Population | None = None


def _patient(job: tuple[_Settings, int]) -> list[dict]:
    """Generate and write all images of one patient (runs in a worker process)."""
    import cv2
    from threadpoolctl import threadpool_limits

    # The small matrix products in smooth_noise and OpenCV's filters run slower with
    # threads competing for busy cores; one thread per worker is fastest.
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            return _patient_images(*job)
    finally:
        cv2.setNumThreads(threads)


def _patient_images(cfg: _Settings, p: int) -> list[dict]:
    """Generate and write all images of patient ``p``; returns their rows of the table."""
    prng = np.random.default_rng([cfg.seed, p, 0xA11])  # patient-level draws, apart from images
    sex = str(prng.choice(["F", "M"]))
    # a separate stream: giving a population changes no pixel of an unshifted image
    tags = ({"sex": sex, **patient_tags(cfg.population, cfg.seed, p)}
            if cfg.population is not None else {})
    conditions = {k: bool(prng.random() < cfg.prevalence.get(k, 0.0)) for k in FINDINGS}
    n_studies = max(1, int(round(cfg.n_images / 3)))
    studies = _draw_studies(prng, cfg, p, n_studies)
    background = None
    if cfg.backgrounds:
        background = cfg.backgrounds[int(prng.integers(len(cfg.backgrounds)))]
    rows = []
    for i in range(cfg.n_images):
        s = i * n_studies // cfg.n_images
        present = _present_findings(cfg, p, i, conditions)
        img = _draw_image(cfg, p, i, present, background, studies[s]["view"])
        if tags and cfg.kind == "radiograph":
            img.pixels = shifted_pixels(img.pixels, cfg.population, tags, cfg.seed, p, i)
        ident = DicomIdentity(
            patient_number=p + 1,
            study_uid=studies[s]["uid"],
            series_uid=studies[s]["series_uid"],
            sop_uid=synthetic_uid(cfg.seed, "image", p, i),
            study_date=studies[s]["date"],
            study_time=studies[s]["time"],
            series_number=s + 1,
            instance_number=i - (s * cfg.n_images + n_studies - 1) // n_studies + 1,
            sex=sex,
            age=tags.get("age"), manufacturer=tags.get("manufacturer"),
            model=tags.get("model"), institution=tags.get("institution"),
        )
        stem = f"{ident.patient_id}/st{s + 1}_im{i + 1:02d}"
        rows.append({**_write_image(cfg, img, ident, studies[s], stem, i),
                     **{f"patient_{k}": v for k, v in tags.items()}})
    return rows


def _draw_studies(
    prng: np.random.Generator, cfg: _Settings, p: int, n_studies: int
) -> list[dict]:
    """The studies of one patient: UIDs, dates and one encoding each."""
    base_day = _dt.date(2019, 1, 1) + _dt.timedelta(days=int(prng.integers(0, 1500)))
    studies = []
    for s in range(n_studies):
        is_dx = cfg.kind == "radiograph" and prng.random() < 0.4
        modality = "CT" if cfg.kind == "ct" else ("DX" if is_dx else "CR")
        studies.append(
            {
                "uid": synthetic_uid(cfg.seed, "study", p, s),
                "series_uid": synthetic_uid(cfg.seed, "series", p, s),
                "date": (
                    base_day + _dt.timedelta(days=int(90 * s + prng.integers(0, 60)))
                ).strftime("%Y%m%d"),
                "time": f"{int(prng.integers(7, 19)):02d}{int(prng.integers(0, 60)):02d}00",
                "modality": modality,
                "photometric": (
                    "MONOCHROME1" if prng.random() < (0.25 if is_dx else 0.5) else "MONOCHROME2"
                ),
                "bits": int(_pick(prng, cfg.bit_depths)),
                "syntax": _pick(prng, cfg.syntaxes),
                "signed": bool(prng.random() < 0.3),
                "png_bits": (8 if prng.random() < 0.6 else 16)
                if prng.random() < cfg.png_fraction
                else 0,
                "extra_windows": int(prng.integers(0, 3)),
                "view": "AP" if prng.random() < cfg.site.ap_fraction else "PA",
            }
        )
    return studies


def _present_findings(cfg: _Settings, p: int, i: int, conditions: dict[str, bool]) -> list[str]:
    """The patient's findings that show on image ``i`` (each with ``persistence``)."""
    irng = np.random.default_rng([cfg.seed, p, i, 0x1AB])
    return [k for k in FINDINGS if conditions[k] and irng.random() < cfg.persistence]


def _draw_image(
    cfg: _Settings, p: int, i: int, present: list[str], background: np.ndarray | None,
    view: str = "PA",
) -> SyntheticImage:
    """Image ``i`` of patient ``p``: a CT slice, a composite or a radiograph phantom."""
    img_seed = np.random.SeedSequence([cfg.seed, p, i])
    anatomy = [cfg.seed, p, 0xA4A]  # shared by all images of the patient
    diff, size = cfg.difficulty, cfg.size
    if cfg.kind == "ct":
        return make_ct(img_seed, present, size=size, difficulty=diff, anatomy_seed=anatomy)
    if background is not None:
        return composite_radiograph(img_seed, background, present, size=size, difficulty=diff)
    return make_radiograph(img_seed, present, size=size, difficulty=diff, anatomy_seed=anatomy,
                           site=cfg.site, view=view)


def _write_image(
    cfg: _Settings, img: SyntheticImage, ident: DicomIdentity, st: dict, stem: str, i: int
) -> dict:
    """Write image ``i`` (and its masks) in its study's encoding; returns its table row."""
    spacing = round(img.pixel_spacing, 3)
    rel, encoding = _write_file(cfg, img, ident, st, stem, i, spacing)
    if cfg.mask_dir is not None:
        _write_mask_pngs(cfg.mask_dir, rel, img.masks)
    labels = img.labels
    nod = img.params.get("nodule", {})
    vis = img.visibility
    return {
        "path": rel,
        "patient_id": ident.patient_id,
        "study_uid": str(st["uid"]),
        "label": "nodule" if labels["nodule"] else "normal",
        **labels,
        "series_uid": str(st["series_uid"]),
        "sop_uid": str(ident.sop_uid) if encoding["format"] == "dicom" else "",
        **encoding,
        "pixel_spacing_mm": spacing,
        "nodule_radius_mm": nod.get("radius_mm", np.nan),
        "nodule_contrast": nod.get("contrast", np.nan),
        **{f"{k}_cnr": vis.get(k, np.nan) for k in FINDINGS},
        "visibility_cnr": min(vis.values()) if vis else np.nan,
        "site": cfg.site.name,
        "marker": img.marker or "",
    }


def _write_file(
    cfg: _Settings,
    img: SyntheticImage,
    ident: DicomIdentity,
    st: dict,
    stem: str,
    i: int,
    spacing: float,
) -> tuple[str, dict]:
    """Write one file (CT, PNG export or CR/DX); returns its relative path and encoding."""
    if cfg.kind == "ct":
        write_ct(
            cfg.out_dir / f"{stem}.dcm",
            img.pixels,
            ident,
            pixel_spacing_mm=spacing,
            slice_location_mm=-100.0 + 10.0 * i,
            signed=st["signed"],
            transfer_syntax=st["syntax"],
        )
        bits = 16 if st["signed"] else 12
        return f"{stem}.dcm", _encoding("dicom", st["modality"], "MONOCHROME2", bits, st["syntax"])
    if st["png_bits"]:
        write_png(cfg.out_dir / f"{stem}.png", img.pixels, bits=st["png_bits"])
        return f"{stem}.png", _encoding("png", "", "MONOCHROME2", st["png_bits"], "")
    write_radiograph(
        cfg.out_dir / f"{stem}.dcm",
        img.pixels,
        ident,
        modality=st["modality"],
        pixel_spacing_mm=spacing,
        photometric=st["photometric"],
        bits_stored=st["bits"],
        transfer_syntax=st["syntax"],
        view_position=st["view"],
        extra_windows=st["extra_windows"],
        burned_in_annotation=img.marker is not None,
    )
    return f"{stem}.dcm", _encoding(
        "dicom", st["modality"], st["photometric"], st["bits"], st["syntax"]
    )


def _encoding(fmt: str, modality: str, photometric: str, bits: int, syntax: str) -> dict:
    """The encoding columns of the table, in order."""
    return {
        "format": fmt,
        "modality": modality,
        "photometric": photometric,
        "bits_stored": bits,
        "transfer_syntax": syntax,
    }


def _clear_previous(out_dir: Path) -> None:
    """Remove what an earlier run wrote (patient folders, labels.csv); keep anything else."""
    for d in out_dir.glob("SYN[0-9][0-9][0-9][0-9]"):
        if d.is_dir():
            shutil.rmtree(d)
    (out_dir / "labels.csv").unlink(missing_ok=True)


def generate_dataset(
    out_dir: str | os.PathLike,
    n_patients: int = 40,
    images_per_patient: int = 6,
    seed: int = 0,
    difficulty: str | Difficulty = "medium",
    *,
    size: int = 256,
    kind: str = "radiograph",
    prevalence: Mapping[str, float] | None = None,
    persistence: float = 0.85,
    png_fraction: float = 0.15,
    transfer_syntaxes: Mapping[str, float] | None = None,
    bit_depths: Mapping[int, float] | None = None,
    backgrounds: Sequence[np.ndarray] | None = None,
    mask_dir: str | os.PathLike | None = None,
    workers: int = 1,
    overwrite: bool = False,
    site: str | SiteProfile | None = None,
    population: Population | None = None,
) -> pd.DataFrame:
    """Generate a labelled synthetic dataset and write it with its ``labels.csv``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder; created if missing.
    n_patients, images_per_patient : int
        Synthetic patients (``SYN0001`` ...) and images of each, in studies of about three.
    seed : int
        Seed of everything (anatomy, findings, encodings, UIDs, dates).
    difficulty : str or Difficulty
        ``"easy"``, ``"medium"``, ``"hard"`` or custom ranges (see :class:`Difficulty`).
    size : int
        Image side in pixels.
    kind : {"radiograph", "ct"}
        Chest radiographs (CR/DX/PNG) or axial CT slices (DICOM only).
    prevalence : mapping, optional
        Fraction of patients with each finding (default nodule 0.5, consolidation 0.2,
        effusion 0.2; findings are independent, so some co-occur).
    persistence : float
        Probability that a patient's finding shows on each of their images.
    png_fraction : float
        Fraction of radiograph studies exported as PNG (8 or 16 bit) instead of DICOM.
    transfer_syntaxes, bit_depths : mapping, optional
        Weights per study of ``"jpeg2000"``, ``"rle"``, ``"explicit"``, ``"implicit"``, and of
        the radiographs' BitsStored (default 10: 0.4, 12: 0.35, 14: 0.15, 16: 0.1).
    backgrounds : sequence of numpy.ndarray, optional
        Real radiographs (display images in [0, 1], dense = bright) to composite findings on
        instead of phantoms; see :mod:`imaging_tl.synthetic.composite`.
    mask_dir : str or os.PathLike, optional
        Also write each finding's mask as ``<mask_dir>/<path stem>_<finding>.png``.
    workers : int
        Processes generating patients in parallel (results do not depend on it).
    overwrite : bool
        Replace an earlier generated set (patient folders, labels.csv; other files stay).
    site : str or SiteProfile, optional
        Acquisition site of every image (see :data:`~imaging_tl.synthetic.sites.SITES`);
        ``"local"`` when omitted.
    population : Population, optional
        Give every patient an age, a scanner and an institution (DICOM PatientAge,
        Manufacturer, ManufacturerModelName, InstitutionName; columns ``patient_sex``,
        ``patient_age``, ``patient_manufacturer``, ... of the returned table) and plant
        its :class:`~imaging_tl.synthetic.population.Shift` (radiographs), see
        :mod:`imaging_tl.synthetic.population`. Omitted: fixed equipment names, no age.

    Returns
    -------
    pandas.DataFrame
        One row per image: the :data:`LABEL_COLUMNS`, then how it was generated (format,
        modality, photometric, bits_stored, transfer_syntax, spacing, nodule, UIDs).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     df = generate_dataset(d, n_patients=2, images_per_patient=2, seed=1, size=64)
    ...     sorted(os.listdir(d))
    ['SYN0001', 'SYN0002', 'labels.csv']
    >>> list(df.columns[:8])  # doctest: +NORMALIZE_WHITESPACE
    ['path', 'patient_id', 'study_uid', 'label', 'nodule', 'consolidation', 'effusion',
     'visibility_cnr']
    """
    cfg = _settings(
        out_dir, n_patients, images_per_patient, seed, difficulty, size, kind, prevalence,
        persistence, png_fraction, transfer_syntaxes, bit_depths, backgrounds, mask_dir, site,
    )
    cfg = replace(cfg, population=population)
    _prepare_out_dir(cfg.out_dir, overwrite)
    df = _generate_patients(cfg, n_patients, workers)
    write_csv(cfg.out_dir / "labels.csv", df[LABEL_COLUMNS])
    return df


def _generate_patients(cfg: _Settings, n_patients: int, workers: int) -> pd.DataFrame:
    """Generate and write every patient (in ``workers`` processes); one row per image."""
    jobs = [(cfg, p) for p in range(n_patients)]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            per_patient = list(pool.map(_patient, jobs))
    else:
        per_patient = [_patient(j) for j in jobs]
    df = pd.DataFrame([r for rows in per_patient for r in rows])
    df = df[LABEL_COLUMNS + [c for c in df.columns if c not in LABEL_COLUMNS]]
    return df.sort_values("path", kind="stable").reset_index(drop=True)


def _settings(
    out_dir: str | os.PathLike,
    n_patients: int,
    images_per_patient: int,
    seed: int,
    difficulty: str | Difficulty,
    size: int,
    kind: str,
    prevalence: Mapping[str, float] | None,
    persistence: float,
    png_fraction: float,
    transfer_syntaxes: Mapping[str, float] | None,
    bit_depths: Mapping[int, float] | None,
    backgrounds: Sequence[np.ndarray] | None,
    mask_dir: str | os.PathLike | None,
    site: str | SiteProfile | None = None,
) -> _Settings:
    """Check the options of :func:`generate_dataset` and fill in the defaults."""
    if n_patients < 1 or images_per_patient < 1:
        raise ValueError(
            f"n_patients and images_per_patient must be >= 1, got {n_patients}, "
            f"{images_per_patient}"
        )
    if kind not in ("radiograph", "ct"):
        raise ValueError(f"kind must be 'radiograph' or 'ct', got {kind!r}")
    if not 32 <= size <= 4096:
        raise ValueError(f"size must be 32..4096 pixels, got {size}")
    prevalence = dict(_DEFAULT_PREVALENCE if prevalence is None else prevalence)
    unknown = set(prevalence) - set(FINDINGS)
    if unknown:
        raise ValueError(f"prevalence: unknown findings {sorted(unknown)}; use {list(FINDINGS)}")
    syntaxes = dict(_DEFAULT_SYNTAXES if transfer_syntaxes is None else transfer_syntaxes)
    bad = set(syntaxes) - set(TRANSFER_SYNTAXES)
    if bad or not syntaxes:
        raise ValueError(f"transfer_syntaxes: use weights of {sorted(TRANSFER_SYNTAXES)}")
    bits = dict(_DEFAULT_BITS if bit_depths is None else bit_depths)
    if not bits or any(not 10 <= int(b) <= 16 for b in bits):
        raise ValueError(f"bit_depths: keys must be BitsStored values 10..16, got {sorted(bits)}")
    return _Settings(
        out_dir=Path(out_dir),
        n_images=int(images_per_patient),
        seed=int(seed),
        difficulty=get_difficulty(difficulty),
        size=int(size),
        kind=kind,
        prevalence=prevalence,
        persistence=float(persistence),
        png_fraction=float(png_fraction if kind == "radiograph" else 0.0),
        syntaxes=syntaxes,
        bit_depths=bits,
        backgrounds=backgrounds,
        mask_dir=Path(mask_dir) if mask_dir is not None else None,
        site=get_site(site),
    )


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Create ``out``; an earlier generated set there is an error unless ``overwrite``."""
    if any(out.glob("SYN[0-9][0-9][0-9][0-9]")) or (out / "labels.csv").exists():
        if not overwrite:
            raise FileExistsError(
                f"{out}: already holds a generated dataset; pass overwrite=True to replace it"
            )
        _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
