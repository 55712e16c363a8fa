"""What read_scan records besides the pixels: Modality LUT, VOI information, inversion,
frames, colour, provenance, and no patient identity beyond PatientID."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from imaging_tl import read_scan
from imaging_tl.io import FrameOutOfRangeError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _file(name: str) -> str:
    path = get_testdata_file(name, download=False)
    assert path is not None, name
    return str(path)


def _stored(name: str) -> np.ndarray:
    return pydicom.dcmread(_file(name)).pixel_array


def test_ct_in_hounsfield_units() -> None:
    scan = read_scan(_file("CT_small.dcm"))
    np.testing.assert_array_equal(scan.pixels, _stored("CT_small.dcm").astype(np.float32) - 1024)
    assert scan.provenance == [
        "read: dicom Explicit VR Little Endian",
        "modality_lut: slope=1 intercept=-1024",
    ]
    assert scan.meta["Modality"] == "CT"
    assert scan.meta["PixelSpacing"] == pytest.approx([0.661468, 0.661468])
    assert scan.meta["PixelRepresentation"] == 1
    # signed 16 bits after rescale
    assert scan.meta["value_range"] == [-32768 - 1024, 32767 - 1024]
    assert not scan.is_colour


def test_signed_pixels_with_fewer_bits_stored() -> None:
    # 14 of 16 bits, signed: values must be sign-extended from bit 13, not read as uint16
    scan = read_scan(_file("693_UNCI.dcm"))
    assert scan.meta["BitsStored"] == 14
    assert scan.meta["value_range"] == [-8192 - 1024, 8191 - 1024]
    assert scan.pixels.min() >= -8192 - 1024 and scan.pixels.max() <= 8191 - 1024
    assert scan.pixels.min() < -1024  # negative stored values exist and survive


def test_rescale_slope_is_applied_in_float32() -> None:
    scan = read_scan(_file("MR2_UNCI.dcm"))
    ds = pydicom.dcmread(_file("MR2_UNCI.dcm"))
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(scan.pixels, expected, rtol=1e-6)
    assert scan.pixels.dtype == np.float32
    assert scan.provenance[-1].startswith("modality_lut: slope=3.77")


def test_monochrome1_recorded_not_applied() -> None:
    scan = read_scan(_file("RG3_UNCI.dcm"))
    assert scan.meta["PhotometricInterpretation"] == "MONOCHROME1"
    assert scan.meta["invert"] is True
    assert scan.meta["windows"] == [{"center": 550.0, "width": 1024.0, "explanation": None}]
    assert scan.meta["value_range"] == [0.0, 1023.0]
    assert scan.meta["ViewPosition"] == "AP"
    # the pixels are the stored values: inversion is the windowing stage's job
    np.testing.assert_array_equal(scan.pixels, _stored("RG3_UNCI.dcm"))


def test_presentation_lut_shape_inverse_sets_invert(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_file("MR_small.dcm"))
    ds.PresentationLUTShape = "INVERSE"
    ds.VOILUTFunction = "SIGMOID"
    path = tmp_path / "inverse.dcm"
    ds.save_as(path)
    meta = read_scan(path).meta
    assert meta["PhotometricInterpretation"] == "MONOCHROME2"
    assert meta["invert"] is True
    assert meta["voi_lut_function"] == "SIGMOID"
    assert read_scan(_file("MR_small.dcm")).meta["invert"] is False


def test_every_window_kept_in_header_order_with_explanation() -> None:
    meta = read_scan(_file("bad_sequence.dcm")).meta
    assert meta["windows"] == [
        {"center": 40.0, "width": 350.0, "explanation": "WINDOW1"},
        {"center": 450.0, "width": 1500.0, "explanation": "WINDOW2"},
    ]
    assert meta["voi_lut_function"] == "LINEAR"


def test_voi_lut_sequence_kept() -> None:
    scan = read_scan(_file("vlut_04.dcm"))
    ds = pydicom.dcmread(_file("vlut_04.dcm"))
    (lut,) = scan.meta["voi_luts"]
    assert lut["first_mapped"] == 0 and lut["bits"] == 16
    np.testing.assert_array_equal(lut["data"], ds.VOILUTSequence[0].LUTData)
    # not applied: pixels are the stored values
    np.testing.assert_array_equal(scan.pixels, ds.pixel_array)


def test_modality_lut_sequence_applied() -> None:
    scan = read_scan(_file("mlut_18.dcm"))
    ds = pydicom.dcmread(_file("mlut_18.dcm"))
    lut = np.asarray(ds.ModalityLUTSequence[0].LUTData)
    first = ds.ModalityLUTSequence[0].LUTDescriptor[1]
    idx = np.clip(ds.pixel_array.astype(np.int64) - first, 0, len(lut) - 1)
    np.testing.assert_array_equal(scan.pixels, lut[idx])
    assert "LUT sequence" in scan.provenance[-1]


def test_enhanced_ct_rescale_and_window_from_functional_groups() -> None:
    scan = read_scan(_file("eCT_Supplemental.dcm"))
    assert scan.pixels.shape == (2, 512, 512)
    np.testing.assert_array_equal(
        scan.pixels, _stored("eCT_Supplemental.dcm").astype(np.float32) - 1024
    )
    assert scan.meta["windows"] == [{"center": 49.0, "width": 102.0, "explanation": None}]
    assert scan.meta["PixelSpacing"] == pytest.approx([0.388672, 0.388672])


def test_frames_all_or_one() -> None:
    path = _file("emri_small.dcm")
    everything = read_scan(path)
    assert everything.pixels.shape == (10, 64, 64)
    assert everything.meta["NumberOfFrames"] == 10
    third = read_scan(path, frame=3)
    assert third.pixels.shape == (64, 64)
    np.testing.assert_array_equal(third.pixels, everything.pixels[3])
    assert "frame=3" in third.provenance[0]
    for bad in (10, -1):
        with pytest.raises(FrameOutOfRangeError, match="10 frame"):
            read_scan(path, frame=bad)
    with pytest.raises(IndexError):  # also an IndexError for plain Python callers
        read_scan(_file("CT_small.dcm"), frame=1)


def test_colour_frames_and_conversions() -> None:
    ybr = read_scan(_file("SC_ybr_full_uncompressed.dcm"))
    assert ybr.is_colour and ybr.pixels.shape == (100, 100, 3)
    assert "colour: YBR_FULL -> RGB (pydicom)" in ybr.provenance
    rgb = read_scan(_file("SC_rgb.dcm"))
    # the same picture stored as RGB and as YBR_FULL agrees within 8-bit YBR rounding
    diff = np.abs(ybr.pixels - rgb.pixels)
    assert diff.mean() < 1 and diff.max() <= 8
    multi = read_scan(_file("SC_rgb_rle_2frame.dcm"))
    assert multi.pixels.shape == (2, 100, 100, 3)
    pal = read_scan(_file("OBXXXX1A.dcm"))
    assert pal.is_colour and pal.pixels.shape == (600, 800, 3)
    assert pal.meta["PhotometricInterpretation"] == "PALETTE COLOR"
    assert pal.meta["value_range"] == [0.0, 65535.0]


def test_file_without_file_meta_is_read_by_content() -> None:
    scan = read_scan(_file("OT-PAL-8-face.dcm"))
    assert scan.pixels.shape == (480, 640, 3)
    assert scan.provenance[0].startswith("transfer_syntax: inferred Implicit VR Little Endian")


def test_gzipped_dicom_and_extension_ignored(tmp_path: Path) -> None:
    gz = read_scan(_file("zipMR.gz"))
    np.testing.assert_array_equal(gz.pixels, read_scan(_file("MR_small.dcm")).pixels)
    assert gz.provenance[0] == "gunzip"
    odd = tmp_path / "scan.png"  # content decides, not the name
    with open(_file("CT_small.dcm"), "rb") as src, gzip.open(odd, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert read_scan(odd).meta["Modality"] == "CT"


def test_meta_keys_and_no_patient_identity() -> None:
    for name, patient_name, birth in (
        ("CT_small.dcm", "CompressedSamples^CT1", None),
        ("RG1_UNCI.dcm", "CompressedSamples^RG1", "19400305"),
    ):
        ds = pydicom.dcmread(_file(name), stop_before_pixels=True)
        assert str(ds.PatientName) == patient_name  # the file does hold a name
        meta = read_scan(_file(name)).meta
        text = repr(meta)
        assert patient_name not in text and "CompressedSamples" not in text
        if birth:
            assert birth not in text
        assert not any("Name" in k or "Birth" in k for k in meta)
        assert meta["PatientID"] == ds.PatientID
        for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                    "TransferSyntaxUID", "BodyPartExamined", "PresentationIntentType"):
            assert key in meta


def test_importing_io_does_not_import_tensorflow() -> None:
    code = (
        "import sys, imaging_tl, imaging_tl.io; "
        "from imaging_tl import read_scan; "
        "from pydicom.data import get_testdata_file as g; "
        "read_scan(g('CT_small.dcm', download=False)); "
        "print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["emri_small.dcm", "693_UNCI.dcm"])
def test_bits_above_bits_stored_are_ignored(tmp_path: Path, name: str) -> None:
    """High bits (overlays, garbage) above BitsStored must not reach the pixels."""
    ds = pydicom.dcmread(_file(name))
    raw = np.frombuffer(ds.PixelData, dtype=np.uint16).copy()
    stored = int(ds.BitsStored)
    raw[::7] |= np.uint16(1 << 15)  # set an unused bit on every 7th pixel
    if ds.PixelRepresentation == 1:
        raw[1::7] &= np.uint16((1 << stored) - 1)  # negative values not sign-extended
    ds.PixelData = raw.tobytes()
    path = tmp_path / name
    ds.save_as(path)
    expected = pydicom.dcmread(path).pixel_array  # pydicom masks / sign-extends
    lo, hi = (-(1 << (stored - 1)), (1 << (stored - 1)) - 1) if ds.PixelRepresentation else (
        0, (1 << stored) - 1)
    assert expected.min() >= lo and expected.max() <= hi
    scan = read_scan(path)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    np.testing.assert_array_equal(scan.pixels, expected * slope + intercept)


def test_float_pixel_data(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_file("MR_small.dcm"))
    values = np.linspace(-1.5, 2.5, 64 * 64, dtype=np.float32).reshape(64, 64)
    del ds.PixelData
    for kw in ("BitsStored", "HighBit", "PixelRepresentation", "SmallestImagePixelValue",
               "LargestImagePixelValue"):
        if kw in ds:
            delattr(ds, kw)
    ds.BitsAllocated = 32
    ds.FloatPixelData = values.tobytes()
    path = tmp_path / "float.dcm"
    ds.save_as(path)
    scan = read_scan(path)
    np.testing.assert_array_equal(scan.pixels, values)
    assert scan.meta["value_range"] is None
    assert scan.provenance[-1] == "modality_lut: none (float pixel data)"


@pytest.mark.parametrize(
    "name",
    ["CT_small.dcm", "OT-PAL-8-face.dcm", "OBXXXX1A_2frame.dcm", "RG3_J2KR.dcm",
     "eCT_Supplemental.dcm", "zipMR.gz", "vlut_04.dcm", "SC_ybr_full_uncompressed.dcm"],
)
def test_read_header_agrees_with_read_scan(name: str) -> None:
    from imaging_tl.io import read_header

    header = read_header(_file(name))
    meta = read_scan(_file(name)).meta
    assert header.keys() == meta.keys()
    for key in meta:
        if key == "voi_luts":
            assert len(header[key]) == len(meta[key])
        else:
            assert header[key] == meta[key], key


def test_read_header_refuses_what_read_scan_refuses(tmp_path: Path) -> None:
    from imaging_tl.io import CorruptPixelDataError, NoPixelDataError, NotAnImageError, read_header

    with pytest.raises(NoPixelDataError):
        read_header(_file("rtplan.dcm"))
    with pytest.raises(NotAnImageError):
        read_header(_file("README.txt"))
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(Path(_file("CT_small.dcm")).read_bytes()[:1200])  # ends in the header
    with pytest.raises(CorruptPixelDataError, match="truncated"):
        read_header(cut)
