"""Command line: ``python -m imaging_tl.synthetic --preset demo --out sample_dicoms``.

Presets fix every parameter, so a preset and a seed regenerate a set bit for bit (with the
same versions of imaging_tl, numpy, scipy, pydicom, pylibjpeg-openjpeg and Pillow). Options
given on the command line override the preset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imaging_tl.synthetic.dataset import generate_dataset
from imaging_tl.synthetic.dicom_writer import TRANSFER_SYNTAXES
from imaging_tl.synthetic.findings import DIFFICULTIES, Difficulty
from imaging_tl.synthetic.sites import SITES

#: Difficulty of the demo set: nodules 12-25 mm in radius whose contrast-to-noise ratio
#: against the local anatomy is 5-9 (see ``imaging_tl.synthetic.lesions.finding_cnr``):
#: visible to a reader, learnable by a pretrained model from ~120 training images at 128 px
#: in a few CPU minutes, not trivial.
DEMO_DIFFICULTY = Difficulty(
    nodule_radius_mm=(12.0, 25.0),
    nodule_contrast=(0.6, 1.0),
    consolidation_contrast=(0.3, 0.7),
    effusion_height=(0.12, 0.3),
    cnr=(5.0, 9.0),
)

PRESETS: dict[str, dict] = {
    "demo": {
        "n_patients": 32,
        "images_per_patient": 6,
        "seed": 6,
        "difficulty": DEMO_DIFFICULTY,
        "size": 224,
        "png_fraction": 0.15,
        # Mostly JPEG 2000 and 10-12 bits keep the set under 10 MB; every variant occurs.
        "transfer_syntaxes": {"jpeg2000": 0.75, "rle": 0.1, "explicit": 0.08, "implicit": 0.07},
        "bit_depths": {10: 0.6, 12: 0.25, 14: 0.1, 16: 0.05},
    },
    "small": {"n_patients": 8, "images_per_patient": 4, "seed": 0, "size": 128},
    "benchmark": {
        "n_patients": 200,
        "images_per_patient": 10,
        "seed": 1,
        "difficulty": "hard",
        "size": 256,
    },
    "ct": {"n_patients": 10, "images_per_patient": 6, "seed": 0, "size": 256, "kind": "ct"},
    # CT series (one per patient, a slice per file), as in sample_dicoms/ct_series.
    "ct_series": {"n_patients": 12, "seed": 0, "size": 64, "kind": "ct_series",
                  "n_slices": 8, "region": "chest", "transfer_syntax": "rle"},
}

_README = """\
# sample_dicoms: a SYNTHETIC demo set

**Every image here is synthetic.** No real patient is shown; the files were drawn by
`imaging_tl.synthetic` (chest-radiograph phantoms with generated findings). Each DICOM
file says so in its header (PatientName `SYNTHETIC^nnnn`, ImageComments, Manufacturer),
each PNG in a `Comment` text chunk.

## What is in it

- {n_images} chest radiographs of {n_patients} synthetic patients (`SYN0001` ...), {size} x
  {size} px, {n_dicom} DICOM and {n_png} PNG files, in one folder per patient.
- DICOM: CR and DX (For Presentation), MONOCHROME1 and MONOCHROME2, 10-16 bits stored,
  window tags, PixelSpacing (CR) or ImagerPixelSpacing (DX); transfer syntaxes Explicit and
  Implicit VR Little Endian, RLE Lossless and JPEG 2000 Lossless. PNG: 8 and 16 bit.
- `labels.csv`: `path` (relative to this folder), `patient_id`, `study_uid`, `label`
  (`nodule` or `normal`, the binary demo task) and one 0/1 column per finding
  (`nodule`, `consolidation`, `effusion`) for multi-label or multi-class tasks.
  {n_nodule} images show a nodule, {n_consolidation} a consolidation, {n_effusion} an
  effusion (findings can co-occur). Images of one patient share the anatomy: split by
  `patient_id`.

## How it was generated

```
{command}
```

Run from the repository root, this regenerates the set bit for bit (same versions of
imaging_tl, numpy, scipy, pydicom, pylibjpeg-openjpeg and Pillow). Preset: {preset}.

## What a model reaches on it (measured when the set was made)

Anatomy varies per patient (lungs, heart size, ribs, habitus, positioning, devices,
burned-in side markers on some films: those files say BurnedInAnnotation `YES`). Nodules
are 12-25 mm in radius with a contrast-to-noise ratio of 5-9 against the surrounding
anatomy (see `imaging_tl.synthetic.__main__.DEMO_DIFFICULTY`; `visibility_cnr` in
`labels.csv` gives each image's): learnable, not trivial.

- `imaging-tl run pipelines/demo.yaml` (efficientnet_lite0, 128 px, head on cached
  features + 2 fine-tuning epochs, 2 shared CPU cores): see the README's demo section for
  the test ROC AUC measured on this set.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m imaging_tl.synthetic",
        description="Generate a labelled synthetic radiology dataset (DICOM + PNG + labels.csv).",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default="small", help="base settings")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=int)
    p.add_argument("--n-patients", type=int)
    p.add_argument("--images-per-patient", type=int)
    p.add_argument("--size", type=int, help="image side in pixels")
    p.add_argument("--difficulty", choices=sorted(DIFFICULTIES))
    p.add_argument("--site", choices=sorted(SITES), help="acquisition site (default: local)")
    p.add_argument("--kind", choices=["radiograph", "ct", "ct_series"],
                   help="ct_series: one CT series per patient, a file per slice, and "
                        "series_labels.csv")
    p.add_argument("--slices", type=int, help="ct_series: slices per series")
    p.add_argument("--region", choices=["chest", "head"], help="ct_series: body region")
    p.add_argument("--png-fraction", type=float)
    p.add_argument("--transfer-syntax", choices=sorted(TRANSFER_SYNTAXES),
                   help="write every DICOM file with this one (default: a mix, 55%% JPEG 2000 "
                        "lossless; its encoder costs more than drawing a 1024-px film)")
    p.add_argument("--masks", type=Path, help="also write finding masks as PNG here")
    p.add_argument("--workers", type=int, default=1, help="processes (output does not change)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier generated set")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the generator from the command line; returns the exit code.

    Examples
    --------
    >>> import tempfile
    >>> args = ["--preset", "small", "--n-patients", "2", "--size", "64"]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     main([*args, "--out", d])  # doctest: +ELLIPSIS
    generated 8 images of 2 patients in ...
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    settings = dict(PRESETS[args.preset])
    if (args.kind or settings.get("kind")) == "ct_series":
        return _series_main(args, settings)
    for key in ("seed", "n_patients", "images_per_patient", "size", "difficulty", "kind", "site"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.png_fraction is not None:
        settings["png_fraction"] = args.png_fraction
    if args.transfer_syntax is not None:
        settings["transfer_syntaxes"] = {args.transfer_syntax: 1.0}
    try:
        df = generate_dataset(
            args.out,
            **settings,
            mask_dir=args.masks,
            workers=args.workers,
            overwrite=args.overwrite,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.preset == "demo":
        # The command names the set's home, sample_dicoms, whatever --out was, so that a
        # regenerated copy (e.g. in a test) is byte-identical README included.
        kept, skip = [], False
        for a in argv:
            if skip or a == "--overwrite":
                skip = False
                continue
            if a in ("--out", "--workers", "--masks"):
                skip = True
                continue
            if not a.startswith(("--out=", "--workers=", "--masks=")):
                kept.append(a)
        command = " ".join(["python -m imaging_tl.synthetic", *kept, "--out sample_dicoms"])
        (args.out / "README.md").write_text(
            _README.format(
                n_images=len(df),
                n_patients=df.patient_id.nunique(),
                size=settings["size"],
                n_dicom=int((df.format == "dicom").sum()),
                n_png=int((df.format == "png").sum()),
                n_nodule=int(df.nodule.sum()),
                n_consolidation=int(df.consolidation.sum()),
                n_effusion=int(df.effusion.sum()),
                command=command,
                preset=args.preset,
            ),
            encoding="utf-8",
        )
    print(f"generated {len(df)} images of {df.patient_id.nunique()} patients in {args.out}")
    return 0


def _series_main(args: argparse.Namespace, settings: dict) -> int:
    """``--kind ct_series``: :func:`imaging_tl.synthetic.series.generate_series_dataset`."""
    from imaging_tl.synthetic.series import generate_series_dataset

    keys = {"seed": "seed", "n_patients": "n_patients", "size": "size", "slices": "n_slices",
            "region": "region", "transfer_syntax": "transfer_syntax"}
    options = {k: settings[k] for k in ("seed", "n_patients", "size", "n_slices", "region",
                                        "transfer_syntax") if k in settings}
    options.update({dest: getattr(args, a) for a, dest in keys.items()
                    if getattr(args, a) is not None})
    try:
        df = generate_series_dataset(args.out, **options)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"generated {len(df)} CT series ({int((df.label == 'lesion').sum())} with a lesion) "
          f"in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
