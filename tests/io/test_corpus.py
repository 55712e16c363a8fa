"""read_scan against every file of pydicom's test files and pydicom-data (real DICOM).

For each decodable file the pixels must equal pydicom's own output: for grey images
``apply_modality_lut(pixel_array)`` (within float32 rounding), for colour the RGB
``pixel_array`` (palette through ``apply_color_lut``). Broken or non-image files must raise
the right :class:`ScanReadError` subclass with a message naming the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

from imaging_tl import read_scan
from imaging_tl.io import (
    CorruptPixelDataError,
    InconsistentHeaderError,
    NoPixelDataError,
    NotAnImageError,
)
from imaging_tl.io.dicom_header import functional_group

PYDICOM_DIR = Path(pydicom.data.__file__).parent / "test_files"
try:
    import data_store

    DATA_DIR: Path | None = Path(data_store.__file__).parent / "data"
except ImportError:  # pragma: no cover - pydicom-data is a test dependency
    DATA_DIR = None

# Files that must fail, and how. Found by reading each one of the known-broken test files:
# OT-PAL-8-face.dcm and bad_sequence.dcm from that list do decode to correct pictures
# (a palette face without file meta; a CT slice whose odd sequence is not in the pixels),
# so they are checked against pydicom like the good files.
EXPECTED_ERRORS: dict[str, type[Exception]] = {
    "JPEG-lossy.dcm": CorruptPixelDataError,
    "JPEG2000-embedded-sequence-delimiter.dcm": CorruptPixelDataError,
    "MR_truncated.dcm": CorruptPixelDataError,
    "emri_small_jpeg_2k_lossless_too_short.dcm": CorruptPixelDataError,
    "badVR.dcm": InconsistentHeaderError,
    "meta_missing_tsyntax.dcm": InconsistentHeaderError,
    "nested_priv_SQ.dcm": InconsistentHeaderError,
    "no_meta.dcm": NotAnImageError,  # a stray byte before the data set: not parseable
    "README.txt": NotAnImageError,
    "crayons.icc": NotAnImageError,
    "rtplan.dump": NotAnImageError,
    "rtstruct.dump": NotAnImageError,
    "test1.json": NotAnImageError,
    "test_PN.json": NotAnImageError,
    "rtplan.dcm": NoPixelDataError,
    "rtplan_truncated.dcm": NoPixelDataError,
    "rtstruct.dcm": NoPixelDataError,
    "test-SR.dcm": NoPixelDataError,
    "reportsi.dcm": NoPixelDataError,
    "reportsi_with_empty_number_tags.dcm": NoPixelDataError,
    "waveform_ecg.dcm": NoPixelDataError,
    "ExplVR_BigEndNoMeta.dcm": NoPixelDataError,
    "ExplVR_LitEndNoMeta.dcm": NoPixelDataError,
    "UN_sequence.dcm": NoPixelDataError,
    "empty_charset_LEI.dcm": NoPixelDataError,
    "no_meta_group_length.dcm": NoPixelDataError,
    "priv_SQ.dcm": NoPixelDataError,
}
# Large files: decoded in full only by `make test-slow`; the default run reads one frame.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on odd values
SLOW = {"color3d_jpeg_baseline.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm", "RG3_J2KR.dcm"}


def _corpus() -> list[Path]:
    files = sorted(p for p in PYDICOM_DIR.iterdir() if p.is_file())
    if DATA_DIR is not None:
        files += sorted(p for p in DATA_DIR.iterdir() if p.is_file() and p.suffix == ".dcm")
    return files


CORPUS = _corpus()
GOOD = [p for p in CORPUS if p.name not in EXPECTED_ERRORS]


def _reference(path: Path, frame: int | None = None) -> np.ndarray:
    """pydicom's own idea of the pixels, with the same Modality LUT / colour handling."""
    import gzip
    import io

    src = io.BytesIO(gzip.open(path).read()) if path.suffix == ".gz" else path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(src, force=True)
        if "TransferSyntaxUID" not in ds.file_meta:  # file without meta: native data
            implicit, little = ds.original_encoding
            ds.file_meta.TransferSyntaxUID = (
                pydicom.uid.ImplicitVRLittleEndian if implicit
                else pydicom.uid.ExplicitVRLittleEndian if little
                else pydicom.uid.ExplicitVRBigEndian
            )
        arr = ds.pixel_array if frame is None else pixel_array(ds, index=frame)
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        return apply_color_lut(arr, ds)
    if ds.get("SamplesPerPixel", 1) == 3:
        return arr
    # Enhanced multi-frame: pydicom's apply_modality_lut reads only top-level elements,
    # so hand it the rescale from the functional groups (what the standard says applies).
    group = functional_group(ds, "PixelValueTransformationSequence", frame or 0)
    if "RescaleSlope" not in ds and group is not None:
        ds.RescaleSlope = group.RescaleSlope
        ds.RescaleIntercept = group.RescaleIntercept
    return apply_modality_lut(arr, ds)


def _assert_matches(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape
    ref64 = ref.astype(np.float64)
    eps = np.finfo(np.float32).eps
    # float32 rounding of each step of x * slope + intercept
    tol = 4 * eps * (np.abs(ref64).max(initial=0) + 1)
    np.testing.assert_allclose(ours.astype(np.float64), ref64, rtol=0, atol=tol)


@pytest.mark.parametrize(
    "path", [p for p in GOOD if p.name not in SLOW], ids=lambda p: p.name
)
def test_pixels_equal_pydicom(path: Path) -> None:
    scan = read_scan(path)
    _assert_matches(scan.pixels, _reference(path))
    assert scan.pixels.flags.writeable and scan.pixels.flags.owndata  # not a view on the file
    assert scan.path == str(path)
    assert scan.meta["format"] == "dicom"
    assert scan.provenance and scan.provenance[0].startswith(("read:", "gunzip", "transfer"))


@pytest.mark.parametrize("path", [p for p in GOOD if p.name in SLOW], ids=lambda p: p.name)
def test_large_files_first_frame(path: Path) -> None:
    """Default run: large files read as one frame (fast); `make test-slow` reads all."""
    scan = read_scan(path, frame=0)
    _assert_matches(scan.pixels, _reference(path, 0))


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in GOOD if p.name in SLOW], ids=lambda p: p.name)
def test_large_files_all_frames(path: Path) -> None:
    _assert_matches(read_scan(path).pixels, _reference(path))


@pytest.mark.parametrize(
    "name", sorted(n for n in EXPECTED_ERRORS if (PYDICOM_DIR / n).exists()
                   or (DATA_DIR and (DATA_DIR / n).exists()))
)
def test_broken_and_non_image_files_raise(name: str) -> None:
    path = PYDICOM_DIR / name
    if not path.exists():
        assert DATA_DIR is not None
        path = DATA_DIR / name
    with pytest.raises(EXPECTED_ERRORS[name]) as info:
        read_scan(path)
    message = str(info.value)
    assert message.startswith(str(path)), message  # names the file
    assert len(info.value.reason) > 20  # and says why in words
    if EXPECTED_ERRORS[name] is NoPixelDataError:
        assert "no pixel data" in message


def test_corpora_present_and_error_list_has_no_typos() -> None:
    names = {p.name for p in CORPUS}
    assert set(EXPECTED_ERRORS) <= names
    assert len(GOOD) > 120
