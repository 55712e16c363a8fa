"""Colour inputs: real RGB secondary captures and ultrasound from pydicom's test files, and
grey-content RGB JPEGs written here, through the default (minimal-config) preprocessing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from imaging_tl.config import load_config
from imaging_tl.io import read_scan
from imaging_tl.io.census import census_row
from imaging_tl.stages import Color, Pipeline, Window

COLOUR_DICOM = ["SC_rgb.dcm", "SC_rgb_rle.dcm", "US1_UNCR.dcm", "color-px.dcm"]


def _dcm(name):
    return get_testdata_file(name, download=False)


def _grey_jpeg(path, seed=0, size=(72, 96)):
    rng = np.random.default_rng(seed)
    g = (np.linspace(0, 255, size[0] * size[1]).reshape(size)
         + rng.normal(0, 10, size)).clip(0, 255).astype(np.uint8)
    Image.fromarray(np.stack([g, g, g], -1)).save(path, quality=85)
    return str(path)


def _colour_jpeg(path, seed=0, size=(72, 96)):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    rgb[..., 0] = 220  # a strong red cast: true colour
    Image.fromarray(rgb).save(path, quality=90)
    return str(path)


@pytest.fixture(scope="module")
def default_pipe():
    cfg = load_config({"data": {"folder": "."}, "model": {"input_size": 64}})
    assert cfg.preprocessing[0] == {"name": "color", "policy": "auto"}
    return Pipeline.from_config(cfg.preprocessing)


@pytest.mark.parametrize("name", COLOUR_DICOM)
def test_real_colour_dicom_stays_colour_through_the_default_pipeline(default_pipe, name):
    scan = read_scan(_dcm(name))
    out = default_pipe(scan)
    assert out.pixels.shape == (64, 64, 3) and out.pixels.dtype == np.float32
    assert 0.0 <= out.pixels.min() and out.pixels.max() <= 1.0
    # still colour (the channels differ), and the decision is in the provenance
    assert np.abs(out.pixels[..., 0] - out.pixels[..., 1]).max() > 0.1
    assert "color: policy=auto as=rgb" in out.provenance
    assert any(p.startswith("window: skipped") for p in out.provenance)


def test_colour_scaling_keeps_the_hue():
    px = read_scan(_dcm("SC_rgb.dcm")).pixels
    out = Color("rgb")(px)
    ratio_in = px[..., 0] / np.maximum(px.sum(-1), 1)
    ratio_out = out[..., 0] / np.maximum(out.sum(-1), 1e-6)
    bright = px.sum(-1) > 30
    np.testing.assert_allclose(ratio_out[bright], ratio_in[bright], atol=1e-5)


def test_grey_content_rgb_jpeg_becomes_grey_once(default_pipe, tmp_path):
    scan = read_scan(_grey_jpeg(tmp_path / "g.jpg"))
    assert scan.pixels.shape[-1] == 3
    out = default_pipe(scan)
    assert out.pixels.shape == (64, 64, 3)
    assert np.array_equal(out.pixels[..., 0], out.pixels[..., 2])  # grey, replicated
    assert "color: policy=auto as=grey channels=agree" in out.provenance
    assert out.provenance[out.provenance.index(
        "color: policy=auto as=grey channels=agree") + 1].startswith("window: mode=header")
    assert census_row(tmp_path / "g.jpg")["colour"] == "grey_in_rgb"


def test_policies(tmp_path):
    colour = read_scan(_colour_jpeg(tmp_path / "c.jpg")).pixels
    grey = read_scan(_grey_jpeg(tmp_path / "g.jpg")).pixels
    assert Color("auto")(colour).shape[-1] == 3 and Color("auto")(grey).ndim == 2
    assert Color("grey")(colour).ndim == 2
    assert Color("rgb")(grey).shape[-1] == 3
    mr = read_scan(_dcm("MR_small.dcm")).pixels
    for policy in ("auto", "grey", "rgb"):  # grey images pass unchanged
        assert np.array_equal(Color(policy)(mr), mr)
    with pytest.raises(ValueError, match="policy='gray' is not allowed"):
        Color("gray")


def test_colour_key_of_the_config(tmp_path):
    own = {"data": {"folder": ".", "color": "grey"},
           "preprocessing": [{"name": "window", "mode": "header"}]}
    assert load_config(own).preprocessing[0] == {"name": "color", "policy": "grey"}
    own["data"].pop("color")  # a list of one's own is left as written
    assert load_config(own).preprocessing[0]["name"] == "window"
    again = load_config(load_config({"data": {"folder": "."}}).to_dict())
    assert [s["name"] for s in again.preprocessing].count("color") == 1


def test_census_flags_colour_and_burned_in():
    us = census_row(_dcm("US1_UNCR.dcm"))
    sc = census_row(_dcm("SC_rgb.dcm"))
    ct = census_row(_dcm("CT_small.dcm"))
    assert (us["colour"], us["burned_in"]) == ("rgb", "likely")
    assert sc["burned_in"] == "likely"
    assert (ct["colour"], ct["burned_in"]) == ("grey", "no")


def test_mixed_folder_is_reported_by_the_census(tmp_path):
    from imaging_tl.io.census import run_census

    _grey_jpeg(tmp_path / "a.jpg")
    _colour_jpeg(tmp_path / "b.jpg")
    (tmp_path / "c.dcm").write_bytes(open(_dcm("US1_UNCR.dcm"), "rb").read())
    text = run_census(tmp_path, tmp_path / "census.csv", progress=False).format()
    assert "mixed colour (grey / grey_in_rgb / rgb): grey_in_rgb (1), rgb (2)" in text
    assert "1 file(s) may carry burned-in text" in text


def test_a_grey_only_pipeline_on_colour_stops_with_the_reason(tmp_path):
    from imaging_tl.data import prepare
    from imaging_tl.data.prepare import quarantine_verdict

    files = [_colour_jpeg(tmp_path / f"c{i}.jpg", seed=i) for i in range(3)]
    table = pd.DataFrame({"path": files, "label": ["a", "b", "a"], "group": ["1", "2", "3"]})
    prepared = prepare(table, Pipeline([Window(mode="header")]), cache=tmp_path / "cache",
                       workers=1, executor="serial", audit=False)
    assert quarantine_verdict(prepared) == (
        "3 of 3 files quarantined: colour images reached a grey-only stage; set data.color "
        "or add to_grey")


def test_augmentation_keeps_grey_grey_and_colour_hue():
    from imaging_tl.augment import Augmenter

    aug = Augmenter("light", seed=1)
    grey = np.repeat(np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32, 1), 3, -1)
    for _ in range(5):
        g = aug(grey)
        assert np.array_equal(g[..., 0], g[..., 1])
    colour = np.zeros((32, 32, 3), np.float32)
    colour[..., 0] = 0.8
    colour[..., 2] = 0.2
    out = aug(colour)
    assert out[..., 0].mean() > out[..., 1].mean() + 0.3  # still red, not grey
