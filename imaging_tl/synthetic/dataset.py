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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

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

__all__ = ["LABEL_COLUMNS", "generate_dataset"]

#: The columns of ``labels.csv``, in order.
LABEL_COLUMNS = ["path", "patient_id", "study_uid", "label", *FINDINGS]

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


def _patient(job: tuple[_Settings, int]) -> list[dict]:
    """Generate and write all images of one patient (runs in a worker process)."""
    from threadpoolctl import threadpool_limits

    # The small matrix products in smooth_noise run several times slower with OpenBLAS
    # threads competing for busy cores; one thread per worker is fastest.
    with threadpool_limits(limits=1, user_api="blas"):
        return _patient_images(*job)


def _patient_images(cfg: _Settings, p: int) -> list[dict]:
    out_dir, n_images, seed, diff, size, kind = (
        cfg.out_dir,
        cfg.n_images,
        cfg.seed,
        cfg.difficulty,
        cfg.size,
        cfg.kind,
    )
    prevalence, persistence, png_fraction = cfg.prevalence, cfg.persistence, cfg.png_fraction
    syntaxes, bit_depths, backgrounds, mask_dir = (
        cfg.syntaxes,
        cfg.bit_depths,
        cfg.backgrounds,
        cfg.mask_dir,
    )
    prng = np.random.default_rng([seed, p, 0xA11])  # patient-level draws, apart from images
    number = p + 1
    ident_sex = str(prng.choice(["F", "M"]))
    anatomy = [seed, p, 0xA4A]
    conditions = {k: bool(prng.random() < prevalence.get(k, 0.0)) for k in FINDINGS}
    n_studies = max(1, int(round(n_images / 3)))
    base_day = _dt.date(2019, 1, 1) + _dt.timedelta(days=int(prng.integers(0, 1500)))
    studies = []
    for s in range(n_studies):
        is_dx = kind == "radiograph" and prng.random() < 0.4
        modality = "CT" if kind == "ct" else ("DX" if is_dx else "CR")
        studies.append(
            {
                "uid": synthetic_uid(seed, "study", p, s),
                "series_uid": synthetic_uid(seed, "series", p, s),
                "date": (
                    base_day + _dt.timedelta(days=int(90 * s + prng.integers(0, 60)))
                ).strftime("%Y%m%d"),
                "time": f"{int(prng.integers(7, 19)):02d}{int(prng.integers(0, 60)):02d}00",
                "modality": modality,
                "photometric": (
                    "MONOCHROME1" if prng.random() < (0.25 if is_dx else 0.5) else "MONOCHROME2"
                ),
                "bits": int(_pick(prng, bit_depths)),
                "syntax": _pick(prng, syntaxes),
                "signed": bool(prng.random() < 0.3),
                "png_bits": (8 if prng.random() < 0.6 else 16)
                if prng.random() < png_fraction
                else 0,
                "extra_windows": int(prng.integers(0, 3)),
                "view": "PA" if prng.random() < 0.8 else "AP",
            }
        )
    background = None
    if backgrounds:
        background = backgrounds[int(prng.integers(len(backgrounds)))]
    rows = []
    for i in range(n_images):
        s = i * n_studies // n_images
        st = studies[s]
        irng = np.random.default_rng([seed, p, i, 0x1AB])
        present = [k for k in FINDINGS if conditions[k] and irng.random() < persistence]
        img_seed = np.random.SeedSequence([seed, p, i])
        img: SyntheticImage
        if kind == "ct":
            img = make_ct(img_seed, present, size=size, difficulty=diff, anatomy_seed=anatomy)
        elif background is not None:
            from imaging_tl.synthetic.composite import composite_radiograph

            img = composite_radiograph(img_seed, background, present, size=size, difficulty=diff)
        else:
            img = make_radiograph(
                img_seed, present, size=size, difficulty=diff, anatomy_seed=anatomy
            )
        pid = f"SYN{number:04d}"
        stem = f"{pid}/st{s + 1}_im{i + 1:02d}"
        ident = DicomIdentity(
            patient_number=number,
            study_uid=st["uid"],
            series_uid=st["series_uid"],
            sop_uid=synthetic_uid(seed, "image", p, i),
            study_date=st["date"],
            study_time=st["time"],
            series_number=s + 1,
            instance_number=i - (s * n_images + n_studies - 1) // n_studies + 1,
            sex=ident_sex,
        )
        spacing = round(img.pixel_spacing, 3)
        fmt, syntax, photometric, bits = "dicom", st["syntax"], st["photometric"], st["bits"]
        modality = st["modality"]
        if kind == "ct":
            rel = f"{stem}.dcm"
            write_ct(
                out_dir / rel,
                img.pixels,
                ident,
                pixel_spacing_mm=spacing,
                slice_location_mm=-100.0 + 10.0 * i,
                signed=st["signed"],
                transfer_syntax=syntax,
            )
            photometric, bits = "MONOCHROME2", 16 if st["signed"] else 12
        elif st["png_bits"]:
            rel = f"{stem}.png"
            write_png(out_dir / rel, img.pixels, bits=st["png_bits"])
            fmt, syntax, photometric, bits = "png", None, "MONOCHROME2", st["png_bits"]
            modality = ""
        else:
            rel = f"{stem}.dcm"
            write_radiograph(
                out_dir / rel,
                img.pixels,
                ident,
                modality=st["modality"],
                pixel_spacing_mm=spacing,
                photometric=photometric,
                bits_stored=bits,
                transfer_syntax=syntax,
                view_position=st["view"],
                extra_windows=st["extra_windows"],
            )
        if mask_dir is not None:
            _write_mask_pngs(mask_dir, rel, img.masks)
        labels = img.labels
        nod = img.params.get("nodule", {})
        rows.append(
            {
                "path": rel,
                "patient_id": pid,
                "study_uid": str(st["uid"]),
                "label": "nodule" if labels["nodule"] else "normal",
                **labels,
                "series_uid": str(st["series_uid"]),
                "sop_uid": str(ident.sop_uid) if fmt == "dicom" else "",
                "format": fmt,
                "modality": modality,
                "photometric": photometric,
                "bits_stored": bits,
                "transfer_syntax": syntax or "",
                "pixel_spacing_mm": spacing,
                "nodule_radius_mm": nod.get("radius_mm", np.nan),
                "nodule_contrast": nod.get("contrast", np.nan),
            }
        )
    return rows


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
) -> pd.DataFrame:
    """Generate a labelled synthetic dataset and write it with its ``labels.csv``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder; created if missing.
    n_patients : int
        Number of synthetic patients (``SYN0001`` ...).
    images_per_patient : int
        Images per patient, grouped into studies of about three.
    seed : int
        Seed of everything (anatomy, findings, encodings, UIDs, dates).
    difficulty : str or Difficulty
        ``"easy"``, ``"medium"``, ``"hard"`` or custom ranges (see :class:`Difficulty`).
    size : int
        Image side in pixels.
    kind : {"radiograph", "ct"}
        Chest radiographs (CR/DX/PNG) or axial CT slices (DICOM only).
    prevalence : mapping, optional
        Per finding, the fraction of patients who have it (default nodule 0.5,
        consolidation 0.2, effusion 0.2; findings are independent, so some co-occur).
    persistence : float
        Probability that a patient's finding shows on each of their images.
    png_fraction : float
        Fraction of radiograph studies exported as PNG (8 or 16 bit) instead of DICOM.
    transfer_syntaxes : mapping, optional
        Weights of ``"jpeg2000"``, ``"rle"``, ``"explicit"``, ``"implicit"`` per study.
    bit_depths : mapping, optional
        Weights of the radiographs' BitsStored (10-16) per study; default 10: 0.4, 12: 0.35,
        14: 0.15, 16: 0.1.
    backgrounds : sequence of numpy.ndarray, optional
        Real radiographs (display images in [0, 1], dense = bright) to composite findings on
        instead of drawing phantoms; see :mod:`imaging_tl.synthetic.composite`.
    mask_dir : str or os.PathLike, optional
        Also write each finding's mask as ``<mask_dir>/<path stem>_<finding>.png``.
    workers : int
        Processes generating patients in parallel (results do not depend on it).
    overwrite : bool
        Replace an earlier generated set in ``out_dir`` (patient folders and labels.csv;
        other files such as a README are kept).

    Returns
    -------
    pandas.DataFrame
        One row per image: the ``labels.csv`` columns (:data:`LABEL_COLUMNS`) followed by
        generation details (format, modality, photometric, bits_stored, transfer_syntax,
        pixel_spacing_mm, nodule_radius_mm, nodule_contrast, series/SOP UIDs).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     df = generate_dataset(d, n_patients=2, images_per_patient=2, seed=1, size=64)
    ...     sorted(os.listdir(d))
    ['SYN0001', 'SYN0002', 'labels.csv']
    >>> list(df.columns[:7])
    ['path', 'patient_id', 'study_uid', 'label', 'nodule', 'consolidation', 'effusion']
    """
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
    diff = get_difficulty(difficulty)
    out = Path(out_dir)
    if any(out.glob("SYN[0-9][0-9][0-9][0-9]")) or (out / "labels.csv").exists():
        if not overwrite:
            raise FileExistsError(
                f"{out}: already holds a generated dataset; pass overwrite=True to replace it"
            )
        _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = _Settings(
        out_dir=out,
        n_images=int(images_per_patient),
        seed=int(seed),
        difficulty=diff,
        size=int(size),
        kind=kind,
        prevalence=prevalence,
        persistence=float(persistence),
        png_fraction=float(png_fraction if kind == "radiograph" else 0.0),
        syntaxes=syntaxes,
        bit_depths=bits,
        backgrounds=backgrounds,
        mask_dir=Path(mask_dir) if mask_dir is not None else None,
    )
    jobs = [(cfg, p) for p in range(n_patients)]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            per_patient = list(pool.map(_patient, jobs))
    else:
        per_patient = [_patient(j) for j in jobs]
    df = pd.DataFrame([r for rows in per_patient for r in rows])
    df = df.sort_values("path", kind="stable").reset_index(drop=True)
    df[LABEL_COLUMNS].to_csv(out / "labels.csv", index=False, lineterminator="\n")
    return df
