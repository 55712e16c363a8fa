"""DICOM and PNG writers: files read back through read_scan with the intended values."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID

from imaging_tl import read_scan
from imaging_tl.stages import Window
from imaging_tl.synthetic import (
    SYNTHETIC_COMMENT,
    DicomIdentity,
    make_ct,
    make_radiograph,
    synthetic_uid,
    write_ct,
    write_png,
    write_radiograph,
)
from imaging_tl.synthetic.dicom_writer import TRANSFER_SYNTAXES, display_to_stored
from imaging_tl.synthetic.png_writer import display_to_png_values

IDENT = DicomIdentity(
    patient_number=12,
    study_uid=synthetic_uid("t", "study"),
    series_uid=synthetic_uid("t", "series"),
    sop_uid=synthetic_uid("t", "sop"),
    study_date="20210304",
    study_time="101500",
)


@pytest.fixture(scope="module")
def radiograph() -> np.ndarray:
    return make_radiograph(4, ["nodule"], size=96).pixels


@pytest.mark.parametrize("syntax", sorted(TRANSFER_SYNTAXES))
@pytest.mark.parametrize(
    ("modality", "photometric", "bits"),
    [
        ("CR", "MONOCHROME1", 10),
        ("CR", "MONOCHROME2", 12),
        ("DX", "MONOCHROME1", 16),
        ("DX", "MONOCHROME2", 14),
    ],
)
def test_radiograph_reads_back_exactly(tmp_path, radiograph, syntax, modality, photometric, bits):
    path = write_radiograph(
        tmp_path / "r.dcm",
        radiograph,
        IDENT,
        modality=modality,
        photometric=photometric,
        bits_stored=bits,
        transfer_syntax=syntax,
        pixel_spacing_mm=1.625,
        extra_windows=2,
    )
    scan = read_scan(path)
    expected = display_to_stored(radiograph, bits_stored=bits, photometric=photometric)
    np.testing.assert_array_equal(scan.pixels, expected.astype(np.float32))
    m = scan.meta
    assert m["Modality"] == modality and m["PhotometricInterpretation"] == photometric
    assert m["invert"] is (photometric == "MONOCHROME1")
    assert m["BitsStored"] == bits and m["PixelSpacing"] == [1.625, 1.625]
    assert m["TransferSyntaxUID"] == TRANSFER_SYNTAXES[syntax]
    assert [w["explanation"] for w in m["windows"]] == ["NORMAL", "SOFT TISSUE", "LUNG"]
    assert m["PatientID"] == "SYN0012" and m["StudyInstanceUID"] == IDENT.study_uid
    assert m["SOPClassUID"] == (
        "1.2.840.10008.5.1.4.1.1.1" if modality == "CR" else "1.2.840.10008.5.1.4.1.1.1.1"
    )
    if modality == "DX":
        assert m["PresentationIntentType"] == "FOR PRESENTATION"


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_header_window_gives_back_the_display_image(tmp_path, radiograph, photometric):
    path = write_radiograph(tmp_path / "r.dcm", radiograph, IDENT, photometric=photometric)
    shown = Window(mode="header")(read_scan(path)).pixels
    # dense = bright after windowing, whichever way the file stores it
    assert np.corrcoef(shown.ravel(), radiograph.ravel())[0, 1] > 0.97


def test_every_file_says_it_is_synthetic(tmp_path, radiograph):
    ds = pydicom.dcmread(write_radiograph(tmp_path / "r.dcm", radiograph, IDENT, modality="DX"))
    assert str(ds.PatientName) == "SYNTHETIC^0012"
    assert ds.ImageComments == SYNTHETIC_COMMENT and ds.BurnedInAnnotation == "NO"
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientBirthDate == ""
    assert ds.PresentationLUTShape == "IDENTITY"
    png = write_png(tmp_path / "r.png", radiograph)
    from PIL import Image

    assert Image.open(png).text["Comment"] == SYNTHETIC_COMMENT


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("syntax", ["explicit", "rle", "jpeg2000"])
def test_ct_reads_back_in_hounsfield_units(tmp_path, signed, syntax):
    hu = make_ct(2, ["nodule"], size=96).pixels
    path = write_ct(
        tmp_path / "ct.dcm", hu, IDENT, signed=signed, transfer_syntax=syntax, pixel_spacing_mm=0.8
    )
    scan = read_scan(path)
    np.testing.assert_array_equal(scan.pixels, np.clip(np.rint(hu), -1024, 3071))
    assert scan.meta["Modality"] == "CT" and scan.meta["PixelRepresentation"] == int(signed)
    assert scan.meta["windows"][1] == {"center": -600.0, "width": 1500.0, "explanation": "LUNG"}
    assert scan.meta["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.2"
    assert scan.meta["PixelSpacing"] == [0.8, 0.8]


@pytest.mark.parametrize("bits", [8, 16])
def test_png_reads_back_at_full_depth(tmp_path, radiograph, bits):
    scan = read_scan(write_png(tmp_path / "r.png", radiograph, bits=bits))
    expected = display_to_png_values(radiograph, bits).astype(np.float32)
    np.testing.assert_array_equal(scan.pixels, expected)
    assert scan.meta["BitsStored"] == bits and scan.meta["format"] == "png"
    if bits == 16:  # not truncated to 8 bits anywhere
        assert len(np.unique(scan.pixels)) > 256


def test_uids_are_valid_and_deterministic():
    a, b = synthetic_uid(1, "study", 3), synthetic_uid(1, "study", 3)
    assert a == b and UID(a).is_valid and a != synthetic_uid(1, "study", 4)


def test_bad_arguments_name_the_parameter(tmp_path, radiograph):
    with pytest.raises(ValueError, match="modality"):
        write_radiograph(tmp_path / "x.dcm", radiograph, IDENT, modality="MR")
    with pytest.raises(ValueError, match="bits_stored"):
        write_radiograph(tmp_path / "x.dcm", radiograph, IDENT, bits_stored=8)
    with pytest.raises(ValueError, match="transfer_syntax"):
        write_radiograph(tmp_path / "x.dcm", radiograph, IDENT, transfer_syntax="jpeg")
    with pytest.raises(ValueError, match="32 x 32"):
        write_radiograph(
            tmp_path / "x.dcm", radiograph[:20, :20], IDENT, transfer_syntax="jpeg2000"
        )
    with pytest.raises(ValueError, match="photometric"):
        write_radiograph(tmp_path / "x.dcm", radiograph, IDENT, photometric="RGB")
    with pytest.raises(ValueError, match="2-D"):
        write_png(tmp_path / "x.png", np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="bits"):
        write_png(tmp_path / "x.png", radiograph, bits=12)
