"""The decode plan: reduced-resolution decoding of JPEG 2000 and baseline JPEG, its
agreement with the full decode after the whole pipeline, its fallbacks and its place in the
cache namespace."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit, SecondaryCaptureImageStorage

from imaging_tl.data.cache import ArrayCache
from imaging_tl.data.prepare import decode_plan, prepare
from imaging_tl.io import read_scan
from imaging_tl.io.decode_plan import (
    DecodeTarget,
    agreement,
    choose_reduction,
    decode_j2k_reduced,
    j2k_header,
)
from imaging_tl.stages import (
    CenterCrop,
    PadToSquare,
    Pipeline,
    Resize,
    ToRGB,
    Window,
    decode_target,
)

PIPE = Pipeline([Window.from_header(), Resize(224), ToRGB()])
TARGET = decode_target(PIPE)


def _file(name: str) -> str:
    return get_testdata_file(name, download=False)


def _frame(name: str) -> tuple[pydicom.Dataset, bytes]:
    ds = pydicom.dcmread(_file(name))
    return ds, next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))


def _dicom(path, arr: np.ndarray, codec: str, **j2k) -> str:
    """A grey DICOM whose pixel data is ``arr`` encoded by Pillow (J2K or baseline JPEG)."""
    buf = io.BytesIO()
    if codec == "jpeg":
        Image.fromarray(arr.astype(np.uint8)).save(buf, "JPEG", quality=90)
    else:
        Image.fromarray(arr.astype(np.uint16)).save(buf, "JPEG2000", no_jp2=True,
                                                    irreversible=False, **j2k)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit if codec == "jpeg" else JPEG2000Lossless
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "OT", "DECODE1"
    ds.Rows, ds.Columns = arr.shape
    bits = 8 if codec == "jpeg" else 16
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = bits - 1, 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelSpacing = [0.2, 0.2]
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def _radiograph() -> np.ndarray:
    return pydicom.dcmread(_file("RG3_J2KR.dcm")).pixel_array  # 1760 x 1760, 10 bits


def test_codestream_header_gives_levels_precision_and_sign():
    h = j2k_header(_frame("RG1_J2KR.dcm")[1])
    assert (h.rows, h.cols, h.components, h.precision, h.signed, h.levels) == \
        (1955, 1841, 1, 15, False, 5)
    assert j2k_header(b"not a codestream") is None


@pytest.mark.parametrize("name", ["MR2_J2KR.dcm", "JPEG2000.dcm", "693_J2KR.dcm"])
def test_pillow_values_match_pydicom_at_full_resolution(name):
    # The reduced path undoes Pillow's 16-bit scaling and sign offset: exact at level 0.
    ds, data = _frame(name)
    arr, level, failed = decode_j2k_reduced(data, j2k_header(data), 0)
    assert (level, failed) == (0, [])
    np.testing.assert_array_equal(arr, ds.pixel_array.astype(np.int32))


def test_needed_size_and_level_choice():
    assert DecodeTarget((224, 224)).needed(2000, 1000) == (224, 112)
    assert DecodeTarget((224, 224), "stretch").needed(2000, 1000) == (224, 224)
    assert choose_reduction(2000, 2000, (224, 224), levels=1) == 1
    assert choose_reduction(2000, 2000, (224, 224), oversample=2.0) == 2
    assert choose_reduction(300, 300, (224, 224)) == 0


def test_decode_target_only_for_pixelwise_stages_before_the_resize():
    assert decode_target(PIPE) == DecodeTarget((224, 224))
    assert decode_target([PadToSquare(), Resize(128, mode="stretch")]) == \
        DecodeTarget((128, 128), "stretch", True)
    assert decode_target([CenterCrop(512), Resize(224)]) is None
    assert decode_target([Window.from_header(), ToRGB()]) is None


@pytest.mark.parametrize("name", ["RG1_J2KR.dcm", "RG1_J2KI.dcm", "RG3_J2KR.dcm",
                                  "RG3_J2KI.dcm"])
def test_agreement_with_full_decode_after_the_pipeline(name):
    """pydicom's and pydicom-data's compressed files large enough to be reduced for 224
    (the others, e.g. MR2_J2KR at 1024 px, are decoded in full: see the next tests)."""
    full = read_scan(_file(name))
    auto = read_scan(_file(name), target=TARGET)
    step = [s for s in auto.provenance if s.startswith("decode:")]
    assert step and step[0].startswith("decode: reduced"), auto.provenance
    assert auto.pixels.shape[0] < full.pixels.shape[0]
    # Rows/Columns and PixelSpacing follow the reduced pixels
    scale = full.meta["Rows"] / auto.meta["Rows"]
    assert auto.meta["Rows"] == auto.pixels.shape[0]
    if full.meta["PixelSpacing"]:
        assert auto.meta["PixelSpacing"][0] == pytest.approx(full.meta["PixelSpacing"][0] * scale)
    a = agreement(PIPE(full).pixels, PIPE(auto).pixels)
    assert a["ok"], a


def test_jpeg_baseline_dicom_and_jpeg_file_agree(tmp_path):
    rg = _radiograph()
    u8 = (255.0 * rg / rg.max()).astype(np.uint8)
    dcm = _dicom(tmp_path / "rg.dcm", u8, "jpeg")
    jpg = tmp_path / "rg.jpg"
    Image.fromarray(u8).save(jpg, quality=90)
    pipe = Pipeline([Window.from_header(), Resize(224)])
    for path in (dcm, str(jpg)):
        full, auto = read_scan(path), read_scan(path, target=TARGET)
        assert any(s.startswith("decode: reduced 1/2 (JPEG DCT") for s in auto.provenance)
        a = agreement(pipe(full).pixels, pipe(auto).pixels)
        assert a["ok"], (path, a)


def test_failed_reduced_decode_falls_back_to_full(tmp_path):
    # Pillow refuses every reduction of this tiled codestream; pydicom decodes it in full.
    arr = np.random.default_rng(0).integers(0, 4000, (1000, 1000)).astype(np.uint16)
    path = _dicom(tmp_path / "tiled.dcm", arr, "j2k", tile_size=(333, 333))
    pipe = Pipeline([Window.from_header(), Resize(100)])  # 1/2 would do for 1000 px
    scan = read_scan(path, target=decode_target(pipe))
    assert "decode: full (reduced JPEG 2000 decode failed at 1/2)" in scan.provenance
    np.testing.assert_array_equal(scan.pixels, read_scan(path).pixels)
    assert scan.meta["Rows"] == 1000
    table = pd.DataFrame({"path": [path]})
    stats = prepare(table, pipe, cache=tmp_path / "c", executor="serial").stats
    assert (stats["decode_reduced"], stats["decode_fallback"], stats["quarantined"]) == (0, 1, 0)


def test_files_the_plan_does_not_apply_to_are_unchanged():
    for name in ("CT_small.dcm", "693_J2KR.dcm", "RG1_UNCR.dcm", "MR2_J2KR.dcm"):
        full, auto = read_scan(_file(name)), read_scan(_file(name), target=TARGET)
        assert auto.provenance == full.provenance
        np.testing.assert_array_equal(auto.pixels, full.pixels)


def test_prepare_auto_and_full_never_share_cache_entries(tmp_path):
    rg = _radiograph()  # 1760 px: decoded at 1/2 for 224
    path = _dicom(tmp_path / "a.dcm", rg, "j2k")
    table = pd.DataFrame({"path": [path]})
    cache = ArrayCache(tmp_path / "cache")
    auto = prepare(table, PIPE, cache=cache, executor="serial", decode="auto")
    full = prepare(table, PIPE, cache=cache, executor="serial", decode="full")
    assert auto.namespace != full.namespace
    assert (auto.stats["decode_reduced"], full.stats["decode_reduced"]) == (1, 0)
    assert full.stats["decoded"] == 1  # not a hit on auto's entry
    assert agreement(full.load(0), auto.load(0))["ok"]
    # a pipeline the plan cannot reduce keeps one namespace for both modes
    crop = Pipeline([CenterCrop(256), Resize(224)])
    assert decode_plan(crop, "auto") is None
    a2 = prepare(table, crop, cache=cache, executor="serial", decode="auto")
    f2 = prepare(table, crop, cache=cache, executor="serial", decode="full")
    assert a2.namespace == f2.namespace and f2.stats["hits"] == 1
    with pytest.raises(ValueError, match="decode="):
        decode_plan(PIPE, "fast")
