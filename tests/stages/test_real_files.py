"""Stages on real DICOM files from pydicom / pydicom-data, and the docstring examples."""

from __future__ import annotations

import doctest
import importlib
import warnings

import numpy as np
import pydicom
import pytest

from imaging_tl import ScanReadError, read_scan
from imaging_tl.stages import CropForeground, Pipeline, Resize, ToRGB, Window


def test_crop_foreground_removes_collimation_of_a_real_radiograph(pydicom_data_dir):
    # RG3: a lower-leg CR, MONOCHROME1, with unexposed (white once inverted) side bands
    scan = Window.from_header()(read_scan(pydicom_data_dir / "RG3_UNCR.dcm"))
    img = scan.pixels
    assert img.shape == (1760, 1760)
    assert img[:, :40].min() == 1.0 and img[:, -40:].min() == 1.0  # flat white bands
    out = CropForeground()(scan)
    top, bottom, left, right = CropForeground().box(img)
    assert (top, bottom) == (0, 1760)  # the anatomy runs the full height
    assert 300 < left < 500 and 1250 < right < 1450
    assert out.pixels.shape == (1760, right - left)
    assert out.pixels[:, 0].std() > 0.02 and out.pixels[:, -1].std() > 0.02
    assert out.meta["Columns"] == right - left


def test_typical_pipeline_on_a_real_ct(pydicom_data_dir):
    scan = read_scan(pydicom_data_dir / "693_UNCR.dcm")
    out = Pipeline([Window(preset="soft_tissue"), Resize(224), ToRGB()])(scan)
    assert out.pixels.shape == (224, 224, 3) and out.pixels.dtype == np.float32
    assert 0.0 <= out.pixels.min() and out.pixels.max() <= 1.0
    assert out.pixels.std() > 0.1  # a real image, not a flat one


def test_pipeline_on_a_real_multi_frame_file(pydicom_data_dir):
    scan = read_scan(pydicom_data_dir / "emri_small.dcm")  # 10-frame MR, no window
    assert scan.pixels.shape == (10, 64, 64)
    out = Pipeline([Window.from_header(), Resize(32), ToRGB()])(scan)
    assert out.pixels.shape == (10, 32, 32, 3) and out.pixels.dtype == np.float32
    for f in (0, 9):  # each frame gets its own percentile window
        np.testing.assert_array_equal(
            out.pixels[f], ToRGB()(Resize(32)(Window.percentile()(scan.pixels[f])))
        )
    window_step = out.provenance[-3]
    assert "frames=10 per_frame=differs" in window_step and "no header window" in window_step
    assert out.provenance[-2] == "resize: size=32 frames=10"


@pytest.mark.parametrize(
    "module", ["__init__", "base", "window", "geometry", "intensity", "channels", "normalize"]
)
def test_docstring_examples(module):
    mod = importlib.import_module(f"imaging_tl.stages.{module}".removesuffix(".__init__"))
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_augment_docstring_examples():
    mod = importlib.import_module("imaging_tl.augment")
    result = doctest.testmod(mod)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.slow
def test_every_windowed_file_agrees_with_pydicom(pydicom_test_dir, pydicom_data_dir, pydicom_voi):
    """All real files that carry a window or VOI LUT: every window index vs pydicom."""
    checked = 0
    for path in sorted([*pydicom_test_dir.rglob("*"), *pydicom_data_dir.rglob("*")]):
        if not path.is_file():
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path)
                if ds.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2"):
                    continue
                if "WindowCenter" not in ds and "VOILUTSequence" not in ds:
                    continue
                if int(ds.get("NumberOfFrames") or 1) > 1:
                    continue
                scan = read_scan(path)
                ds.pixel_array  # noqa: B018  (decode once so both sides see the same pixels)
        except (ScanReadError, Exception):  # broken test files: the reader's tests cover them
            continue
        n = (
            len(ds.VOILUTSequence)
            if "VOILUTSequence" in ds
            else (ds["WindowCenter"].VM if "WindowCenter" in ds else 1)
        )
        for index in range(n):
            try:
                expected = pydicom_voi(ds, index)
            except (ValueError, IndexError):
                continue
            if ds.PhotometricInterpretation == "MONOCHROME1":
                expected = 1.0 - expected
            out = Window.from_header(index)(scan)
            np.testing.assert_allclose(out.pixels, expected, atol=5e-6, err_msg=str(path.name))
            checked += 1
    print(f"{checked} file/window pairs agree")
    assert checked >= 30
