"""Window / MultiWindow: hand-checked numbers, PS3.3 edge cases, pydicom agreement."""

from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest

from imaging_tl import read_scan
from imaging_tl.io import Scan
from imaging_tl.stages import MultiWindow, Window, stage_from_config
from imaging_tl.stages.window import PRESETS, apply_voi_lut_table, apply_window

# A CT row in HU: air, lung, fat, water, soft tissue, cortical bone, metal.
HU = np.array([[-1000.0, -600.0, -100.0, 0.0, 40.0, 1000.0, 3000.0]], np.float32)


def test_lung_window_by_hand():
    # LINEAR (PS3.3 C.11.2.1.2): y = ((x - (c - 0.5)) / (w - 1) + 0.5), clipped.
    # lung c=-600, w=1500: x=-1000 -> (-399.5 / 1499) + 0.5 = 0.233489
    out = Window(preset="lung")(HU)
    expected = [(x + 600.5) / 1499 + 0.5 for x in HU[0]]
    expected = np.clip(expected, 0, 1)
    np.testing.assert_allclose(out[0], expected, atol=1e-6)
    assert out[0, 0] == pytest.approx(0.233489, abs=1e-6)
    assert out[0, 1] == pytest.approx(0.500334, abs=1e-6)
    assert out[0, 5] == 1.0  # bone is white in the lung window
    assert out.dtype == np.float32


def test_bone_window_by_hand():
    # bone c=400, w=1800: lower edge 400 - 0.5 - 899.5 = -500, upper edge 1299
    out = Window(preset="bone")(HU)[0]
    assert out[0] == 0.0 and out[1] == 0.0  # air, lung below -500
    assert out[3] == pytest.approx((0 - 399.5) / 1799 + 0.5, abs=1e-6)  # 0.277932
    assert out[3] == pytest.approx(0.277932, abs=1e-6)
    assert out[5] == pytest.approx((1000 - 399.5) / 1799 + 0.5, abs=1e-6)
    assert out[6] == 1.0


def test_explicit_window_matches_preset():
    c, w = PRESETS["mediastinum"]
    np.testing.assert_array_equal(Window(center=c, width=w)(HU), Window(preset="mediastinum")(HU))


@pytest.mark.parametrize(
    ("x", "linear", "exact"),
    [
        # c = 100, w = 10. LINEAR edges: x <= 95 -> 0 (c-0.5-(w-1)/2 = 95), x > 104 -> 1.
        (94.0, 0.0, 0.0),
        (95.0, 0.0, 0.0),  # LINEAR_EXACT: x <= c - w/2 = 95 -> 0
        (96.0, (96 - 99.5) / 9 + 0.5, 0.1),
        (100.0, (100 - 99.5) / 9 + 0.5, 0.5),
        (104.0, 1.0, 0.9),  # LINEAR reaches 1 at 104, LINEAR_EXACT at 105
        (105.0, 1.0, 1.0),
        (106.0, 1.0, 1.0),
    ],
)
def test_linear_vs_linear_exact_at_the_edges(x, linear, exact):
    img = np.array([[x]], np.float32)
    assert Window(center=100, width=10)(img)[0, 0] == pytest.approx(linear, abs=1e-6)
    got = Window(center=100, width=10, function="LINEAR_EXACT")(img)[0, 0]
    assert got == pytest.approx(exact, abs=1e-6)


def test_sigmoid_values():
    # PS3.3 C.11.2.1.3.1: y = 1 / (1 + exp(-4 (x - c) / w)); at c: 0.5; at c + w/2: 1/(1+e^-2)
    img = np.array([[100.0, 105.0, 95.0, 1e6, -1e6]], np.float32)
    out = Window(center=100, width=10, function="SIGMOID")(img)[0]
    assert out[0] == pytest.approx(0.5)
    assert out[1] == pytest.approx(1 / (1 + np.exp(-2)), abs=1e-6)  # 0.880797
    assert out[2] == pytest.approx(1 / (1 + np.exp(2)), abs=1e-6)
    assert out[3] == 1.0 and out[4] == 0.0  # no overflow trouble far outside


def test_width_one_linear_is_a_step():
    # LINEAR with w = 1: x <= c - 0.5 -> 0, else 1
    img = np.array([[9.4, 9.5, 9.6, 10.0]], np.float32)
    np.testing.assert_array_equal(Window(center=10, width=1)(img), [[0, 0, 1, 1]])


def test_monochrome1_inverted_so_dense_is_bright():
    img = np.array([[0.0, 250.0, 1000.0]], np.float32)
    normal = Window(center=500, width=1000, function="LINEAR_EXACT")(img)
    inverted = Window(center=500, width=1000, function="LINEAR_EXACT")(img, {"invert": True})
    np.testing.assert_allclose(normal, [[0.0, 0.25, 1.0]], atol=1e-6)
    np.testing.assert_allclose(inverted, [[1.0, 0.75, 0.0]], atol=1e-6)
    # invert= overrides the header either way
    forced = Window(center=500, width=1000, function="LINEAR_EXACT", invert=False)
    np.testing.assert_allclose(forced(img, {"invert": True}), normal)
    sig = Window(center=500, width=1000, function="SIGMOID")
    np.testing.assert_allclose(sig(img, {"invert": True}), 1 - sig(img), atol=1e-6)


def test_integer_input_accepted():
    stored = np.array([[0, 2048, 4095]], np.uint16)
    out = Window(center=2048, width=4096, function="LINEAR_EXACT")(stored)
    np.testing.assert_allclose(out, [[0.0, 0.5, 4095 / 4096]], atol=1e-6)


def test_from_header_index_explanation_and_function():
    meta = {
        "windows": [
            {"center": 40.0, "width": 400.0, "explanation": "SOFT"},
            {"center": -600.0, "width": 1500.0, "explanation": "LUNG"},
        ],
        "voi_lut_function": "LINEAR_EXACT",
    }
    x = np.array([[-600.0, 40.0]], np.float32)
    np.testing.assert_allclose(Window.from_header()(x, meta), [[0.0, 0.5]], atol=1e-6)
    np.testing.assert_allclose(Window.from_header(1)(x, meta), [[0.5, 0.92666667]], atol=1e-6)
    by_text = Window.from_header(explanation="lung")(x, meta)
    np.testing.assert_array_equal(by_text, Window.from_header(1)(x, meta))
    sig = Window.from_header(function="SIGMOID")(x, meta)
    assert sig[0, 1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"index=2.*offers 2 window"):
        Window.from_header(2)(x, meta)
    with pytest.raises(ValueError, match=r"explanation='BRAIN'.*SOFT"):
        Window.from_header(explanation="BRAIN")(x, meta)


def test_from_header_fallbacks():
    x = np.arange(101, dtype=np.float32).reshape(1, 101)
    out = Window.from_header()(x, {"windows": []})  # default: percentile 0.5 .. 99.5
    assert out.min() == 0.0 and out.max() == 1.0
    w = Window(mode="header", percentiles=[10, 90])
    assert stage_from_config(w.to_config()) == w and w != Window.from_header()
    lo, hi = np.percentile(x, [10, 90])
    np.testing.assert_allclose(w(x, {}), np.clip((x - lo) / (hi - lo), 0, 1), atol=1e-6)
    rng = Window.from_header(fallback="range")(x, {"value_range": [0, 200]})
    assert rng[0, 100] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no window and no VOI LUT"):
        Window.from_header(fallback=None)(x, {})


def test_percentile_mode():
    x = np.arange(1001, dtype=np.float32).reshape(7, 143)
    out = Window.percentile(10, 90)(x)
    assert out.min() == 0.0 and out.max() == 1.0
    lo, hi = np.percentile(x, [10, 90])
    np.testing.assert_allclose(out, np.clip((x - lo) / (hi - lo), 0, 1), atol=1e-6)
    # large images use a sub-grid: close to the exact percentiles
    big = np.random.default_rng(0).normal(500, 100, (1200, 1100)).astype(np.float32)
    lo, hi = np.percentile(big, [0.5, 99.5])
    out = Window.percentile()(big)
    np.testing.assert_allclose(out, np.clip((big - lo) / (hi - lo), 0, 1), atol=0.01)
    # a constant image has nothing to stretch
    assert np.all(Window.percentile()(np.full((4, 4), 7.0, np.float32)) == 0.0)


def test_voi_lut_table_by_hand():
    lut = {"first_mapped": -2, "bits": 8, "data": [0, 51, 255], "explanation": None}
    x = np.array([[-5, -2, -1, 0, 9]], np.int16)
    np.testing.assert_allclose(apply_voi_lut_table(x, lut), [[0, 0, 0.2, 1, 1]], atol=1e-6)
    np.testing.assert_allclose(
        Window.from_header()(x, {"voi_luts": [lut], "invert": True}), [[1, 1, 0.8, 0, 0]]
    )


@pytest.mark.parametrize(
    ("folder", "name", "index"),
    [
        ("test", "MR_small.dcm", 0),
        ("test", "examples_overlay.dcm", 0),
        ("test", "examples_overlay.dcm", 1),  # second of two header windows
        ("data", "693_UNCR.dcm", 0),  # CT with Rescale Intercept -1024
        ("data", "MR2_UNCR.dcm", 0),  # non-integer Rescale Slope
        ("data", "RG3_UNCR.dcm", 0),  # CR, MONOCHROME1
        ("data", "vlut_04.dcm", 0),  # VOI LUT Sequence
    ],
)
def test_agrees_with_pydicom_apply_voi_lut(
    pydicom_test_dir, pydicom_data_dir, pydicom_voi, folder, name, index
):
    path = (pydicom_test_dir if folder == "test" else pydicom_data_dir) / name
    ds = pydicom.dcmread(path)
    expected = pydicom_voi(ds, index)
    scan = read_scan(path)
    out = Window.from_header(index)(scan)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        expected = 1.0 - expected  # the Presentation LUT step pydicom leaves to the caller
        assert scan.meta["invert"] is True
    assert out.pixels.dtype == np.float32
    np.testing.assert_allclose(out.pixels, expected, atol=2e-6)
    assert out.provenance[-1].startswith("window: mode=header")
    assert "source=header" in out.provenance[-1]


@pytest.mark.parametrize("function", ["LINEAR_EXACT", "SIGMOID"])
def test_agrees_with_pydicom_for_other_voi_functions(pydicom_data_dir, pydicom_voi, function):
    # No bundled file declares these functions, so set the tag on a real CT file.
    path = pydicom_data_dir / "693_UNCR.dcm"
    ds = pydicom.dcmread(path)
    ds.VOILUTFunction = function
    expected = pydicom_voi(ds)
    scan = read_scan(path)
    meta = {**scan.meta, "voi_lut_function": function}
    out = Window.from_header()(Scan(scan.pixels, meta))
    np.testing.assert_allclose(out.pixels, expected, atol=2e-6)
    assert f"function={function}" in out.provenance[-1]


def test_explicit_window_agrees_with_pydicom_on_ct(pydicom_data_dir, pydicom_voi):
    path = pydicom_data_dir / "693_UNCR.dcm"
    ds = pydicom.dcmread(path)
    ds2 = copy.deepcopy(ds)
    ds2.WindowCenter, ds2.WindowWidth = -600, 1500
    expected = pydicom_voi(ds2)
    np.testing.assert_allclose(Window(preset="lung")(read_scan(path)).pixels, expected, atol=2e-6)


def test_scan_provenance_and_meta():
    scan = Scan(
        HU.copy(),
        {
            "Modality": "CT",
            "invert": True,
            "windows": [{"center": 40.0, "width": 400.0}],
            "value_range": [-1024.0, 3071.0],
        },
        ["read: test"],
    )
    out = Window(center=40, width=400)(scan)
    assert isinstance(out, Scan)
    assert out.provenance == ["read: test", "window: center=40 width=400 invert=True"]
    assert out.meta["invert"] is False and out.meta["windows"] == []
    assert out.meta["value_range"] == [0.0, 1.0]
    assert scan.meta["invert"] is True  # the input scan is untouched


def test_multi_frame_scan_windows_every_frame():
    frames = np.stack([HU, HU + 100, HU - 100])
    scan = Scan(frames, {"NumberOfFrames": 3}, [])
    out = Window(preset="brain")(scan)
    assert out.pixels.shape == frames.shape
    for f in range(3):
        np.testing.assert_array_equal(out.pixels[f], Window(preset="brain")(frames[f]))


def test_multiwindow_stacks_channels():
    mw = MultiWindow(["brain", "subdural", {"center": 600, "width": 2800}])
    out = mw(HU)
    assert out.shape == (*HU.shape, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 0], Window(preset="brain")(HU))
    np.testing.assert_array_equal(out[..., 1], Window(preset="subdural")(HU))
    np.testing.assert_array_equal(out[..., 2], Window(center=600, width=2800)(HU))
    scan = mw(Scan(HU.copy(), {"SamplesPerPixel": 1}, []))
    assert scan.meta["SamplesPerPixel"] == 3
    assert scan.provenance[-1].startswith("multi_window: windows=")


def test_window_config_round_trip():
    for w in [
        Window(center=40, width=400),
        Window(preset="Soft Tissue"),
        Window(preset="lung", function="SIGMOID", invert=True),
        Window.from_header(1, prefer_lut=False),
        Window.from_header(explanation="LUNG", fallback=None),
        Window.percentile(1, 99),
        Window(mode="range"),
        MultiWindow(["brain", Window.from_header()]),
    ]:
        cfg = w.to_config()
        again = stage_from_config(cfg)
        assert again == w and again.to_config() == cfg
        assert repr(again) == repr(w)
    assert Window(preset="Soft Tissue").to_config() == {"name": "window", "preset": "soft_tissue"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"center": 40, "width": 0}, r"Window: width must be > 0"),
        ({"center": 40, "width": -5}, r"Window: width must be > 0"),
        ({"center": 40, "width": 0.5}, r"width must be >= 1 for function LINEAR"),
        ({"center": 40}, r"needs both center and width"),
        ({"preset": "lugn"}, r"preset='lugn' is unknown \(did you mean 'lung'\?\); allowed: lung"),
        ({"center": 1, "width": 2, "function": "CUBIC"}, r"function='CUBIC'.*LINEAR_EXACT"),
        ({"mode": "auto"}, r"mode='auto' is not allowed.*explicit, preset, header"),
        ({}, r"give center and width, a preset"),
        ({"mode": "percentile", "percentiles": [90, 10]}, r"percentiles must be increasing"),
        ({"preset": "lung", "center": 3}, r"center= does not apply"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Window(**kwargs)


def test_colour_image_refused():
    rgb = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(ValueError, match=r"Window: image must be grey"):
        Window(preset="lung")(rgb)
    with pytest.raises(ValueError, match=r"Window: image must be grey"):
        Window(preset="lung")(Scan(rgb, {"SamplesPerPixel": 3}, []))
    with pytest.raises(ValueError, match=r"MultiWindow: image must be grey"):
        MultiWindow(["lung"])(rgb)


def test_bad_image_dtype_and_shape():
    with pytest.raises(ValueError, match=r"Window: image has unsupported dtype"):
        Window(preset="lung")(np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match=r"Window: image must be H x W"):
        Window(preset="lung")(np.zeros(4, np.float32))


def test_header_window_too_narrow_for_linear():
    with pytest.raises(ValueError, match=r"header window 0 width must be >= 1"):
        Window.from_header()(HU, {"windows": [{"center": 0, "width": 0.5}]})


def test_apply_window_function_directly():
    out = apply_window(np.array([-1000.0, 40.0, 1000.0]), 40, 400, "LINEAR_EXACT")
    np.testing.assert_allclose(out, [0, 0.5, 1])
