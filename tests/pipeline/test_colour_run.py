"""A folder of real colour secondary captures (pydicom's SC_rgb.dcm, given new pixels and
identities) and grey-content RGB JPEGs, run end to end with the minimal config: colour kept,
grey made grey, and the secondary captures (burned-in text is common there) absent from the
report's pictures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid


def _secondary_captures(folder, n):
    src = pydicom.dcmread(get_testdata_file("SC_rgb.dcm", download=False))
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        ds = src.copy()
        px = np.zeros((100, 100, 3), np.uint8)
        px[..., 0] = rng.integers(120, 255)
        px[..., 1] = rng.integers(0, 255, (100, 100))
        px[..., 2] = np.linspace(0, 255, 100, dtype=np.uint8)[None, :] // (i + 1)
        ds.PixelData = px.tobytes()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID = f"SC{i:03d}"
        ds.save_as(folder / f"sc{i}.dcm")


def _grey_jpegs(folder, n):
    for i in range(n):
        rng = np.random.default_rng(i)
        g = (rng.normal(128, 30, (90, 90)) + np.linspace(-60, 60, 90)[None, :] * (i % 3))
        g = g.clip(0, 255).astype(np.uint8)
        Image.fromarray(np.stack([g, g, g], -1)).save(folder / f"g{i}.jpg", quality=90)


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    from imaging_tl.pipeline import run

    root = tmp_path_factory.mktemp("colour_data")
    (root / "sc").mkdir()
    (root / "plain").mkdir()
    _secondary_captures(root / "sc", 8)
    _grey_jpegs(root / "plain", 8)
    cfg = {"data": {"folder": str(root)}, "task": {"positive": "sc"},
           "output": str(tmp_path_factory.mktemp("runs")),
           "cache_dir": str(tmp_path_factory.mktemp("cache")), "workers": 1,
           "split": {"val": 0.25, "test": 0.25}, "model": {"input_size": 64},
           "train": {"batch_size": 8, "phases": [{"name": "head", "epochs": 1}]},
           "evaluate": {"bootstrap": 20, "gradcam": 8}}
    return run(cfg, verbose=False)


def test_colour_and_grey_content_files_run_with_the_minimal_config(colour_run):
    rd = colour_run.run_dir
    census = pd.read_csv(rd / "census.csv")
    kinds = dict(zip(census["path"].str.split("/").str[0], census["colour"], strict=False))
    assert kinds == {"sc": "rgb", "plain": "grey_in_rgb"}
    assert set(census.loc[census["path"].str.startswith("sc"), "burned_in"]) == {"likely"}
    contract = json.loads((rd / "contract.json").read_text())
    assert contract["preprocessing"]["stages"][0] == {"name": "color", "policy": "auto"}
    assert contract["domain"]["colour"] == ["rgb"]  # as stored
    run = json.loads((rd / "run.json").read_text())
    assert run["prepare"]["quarantined"] == 0


def test_burned_in_files_are_absent_from_every_picture(colour_run):
    # every positive ("sc") file is a secondary capture: no true-positive or false-negative
    # picture may exist, while the negatives' pictures do (the gallery was made)
    names = [p.name for p in (colour_run.run_dir / "gradcam").glob("*.png")]
    assert names and all(n.startswith(("TN_", "FP_")) for n in names), names
    html = (colour_run.run_dir / "report.html").read_text()
    assert "TP_" not in html and "FN_" not in html


def test_show_burned_in_lets_them_back():
    from imaging_tl.pipeline.output_steps import shown_in_pictures

    rows = pd.DataFrame({"path": [get_testdata_file(f, download=False)
                                  for f in ("US1_UNCR.dcm", "SC_rgb.dcm", "CT_small.dcm")]})
    assert shown_in_pictures(rows, False).tolist() == [False, False, True]
    assert shown_in_pictures(rows, True).all()
