"""Speed of the synthetic data generator, as ratios against a baseline measured in the same run.

Baseline: writing the same number of plain, uninformative DICOM files (a constant 16-bit
image with a minimal CR header, uncompressed) with pydicom, i.e. the cost of just putting
files on disk. Compared with it:

- ``generate_dataset``: phantoms + findings + detector + DICOM/PNG writing with the default
  encoding mix (55% JPEG 2000 lossless, 15% RLE, ...), one process and two processes;
- the same with uncompressed DICOM only (what the encoders cost);
- ``make_radiograph`` alone (image synthesis, nothing written).

Run: ``.venv/bin/python benchmarks/synthetic.py [--images 300] [--size 256]``
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComputedRadiographyImageStorage, ExplicitVRLittleEndian, generate_uid
from threadpoolctl import threadpool_limits

from imaging_tl.synthetic import generate_dataset, make_radiograph


def write_plain_dicoms(out: Path, n: int, size: int) -> None:
    """The baseline: n uninformative CR files, uncompressed, minimal header."""
    pixels = np.full((size, size), 2048, np.uint16).tobytes()
    for i in range(n):
        ds = Dataset()
        ds.SOPClassUID = ComputedRadiographyImageStorage
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["bench", str(i)])
        ds.PatientID = f"B{i // 6:04d}"
        ds.Modality = "CR"
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(out / f"{i:05d}.dcm", enforce_file_format=True)


def timed(fn) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process and finished worker processes)."""

    def cpu() -> float:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + kids.ru_utime + kids.ru_stime

    t, c = time.perf_counter(), cpu()
    fn()
    return time.perf_counter() - t, cpu() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    per_patient = 6
    n_patients = max(1, args.images // per_patient)
    n = n_patients * per_patient
    tmp = Path(tempfile.mkdtemp(prefix="bench-synthetic-"))
    try:
        make_radiograph(0, ["nodule"], size=args.size)  # warm caches (spline matrices)
        results: dict[str, tuple[float, float]] = {}
        (tmp / "plain").mkdir()
        results["baseline: plain DICOM files"] = timed(
            lambda: write_plain_dicoms(tmp / "plain", n, args.size)
        )
        common = {
            "n_patients": n_patients,
            "images_per_patient": per_patient,
            "size": args.size,
            "seed": 0,
        }
        results["generate_dataset (default mix), 1 process"] = timed(
            lambda: generate_dataset(tmp / "mix1", **common)
        )
        results["generate_dataset (default mix), 2 processes"] = timed(
            lambda: generate_dataset(tmp / "mix2", workers=2, **common)
        )
        results["generate_dataset (uncompressed DICOM only)"] = timed(
            lambda: generate_dataset(
                tmp / "plainmix", png_fraction=0.0, transfer_syntaxes={"explicit": 1.0}, **common
            )
        )

        def synth_only() -> None:
            # One BLAS thread, as generate_dataset uses (see imaging_tl.synthetic.dataset).
            cv2.setNumThreads(1)
            with threadpool_limits(limits=1, user_api="blas"):
                for i in range(n):
                    make_radiograph(i, ["nodule"] if i % 2 else [], size=args.size)

        results["make_radiograph only (nothing written)"] = timed(synth_only)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base_wall = n / results["baseline: plain DICOM files"][0]
    base_cpu = n / results["baseline: plain DICOM files"][1]
    print(f"{n} images of {args.size} x {args.size} px; ratios against the baseline")
    print(f"{'what':46s} {'img/s':>7s} {'ratio':>6s} {'img/CPU-s':>9s} {'ratio':>6s}")
    for name, (wall, cpu) in results.items():
        print(
            f"{name:46s} {n / wall:7.1f} {n / wall / base_wall:6.3f} "
            f"{n / cpu:9.1f} {n / cpu / base_cpu:6.3f}"
        )
    print("img/CPU-s (images per CPU-second) is robust to other load on a shared machine;")
    print("x 60 gives images per minute per core.")


if __name__ == "__main__":
    main()
