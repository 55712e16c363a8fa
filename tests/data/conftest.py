"""Small real DICOM sets for the data tests, written with pydicom from a real template."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


def smooth_image(seed: int, size: int = 64) -> np.ndarray:
    """A random smooth CT-like image (int16 HU + 1024 offset) that differs per seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0, 1, (8, 8))
    img = np.kron(coarse, np.ones((size // 8, size // 8)))
    return (img * 300 + 1024 + rng.normal(0, 5, (size, size))).clip(0, 4000).astype(np.int16)


def write_dicom(
    template: Path,
    out: Path,
    pixels: np.ndarray,
    *,
    patient: str,
    sop: str | None = None,
    study: str | None = None,
) -> Path:
    """Write ``pixels`` into a copy of a real DICOM header with new identifiers."""
    ds = pydicom.dcmread(template)
    ds.PatientID = patient
    ds.PatientName = "Anon^" + patient
    ds.SOPInstanceUID = sop or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study or generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = pixels.astype("<i2").tobytes()
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


@pytest.fixture(scope="session")
def ct_template(pydicom_test_dir: Path) -> Path:
    return pydicom_test_dir / "CT_small.dcm"


@pytest.fixture(scope="session")
def dicom_set(tmp_path_factory, ct_template: Path, pydicom_test_dir: Path) -> Path:
    """root/<normal|abnormal>/: 6 patients per class x 2 images (64 x 64), one extension-less
    file, plus a real multi-frame file (rtdose.dcm, 15 frames) in 'abnormal'."""
    root = tmp_path_factory.mktemp("dicom_set")
    k = 0
    for label in ("normal", "abnormal"):
        for p in range(6):
            patient = f"{label[:3].upper()}{p:03d}"
            for i in range(2):
                name = f"{patient}_{i}.dcm" if (p, i) != (0, 1) else f"{patient}_{i}"
                write_dicom(ct_template, root / label / patient / name, smooth_image(k),
                            patient=patient)
                k += 1
    shutil.copy(pydicom_test_dir / "rtdose.dcm", root / "abnormal" / "rtdose.dcm")
    return root


class DicomFactory:
    """``make(out, pixels_or_seed, patient=..., sop=...)`` writes a real DICOM file."""

    def __init__(self, template: Path) -> None:
        self.template = template

    smooth = staticmethod(smooth_image)

    def __call__(self, out: Path, pixels: np.ndarray | int, **ids) -> Path:
        if not isinstance(pixels, np.ndarray):
            pixels = smooth_image(int(pixels))
        return write_dicom(self.template, out, pixels, **ids)


@pytest.fixture(scope="session")
def make_dicom(ct_template: Path) -> DicomFactory:
    return DicomFactory(ct_template)
