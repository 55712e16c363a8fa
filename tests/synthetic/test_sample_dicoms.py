"""The committed demo set: complete, small, labelled, synthetic, and regenerable."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from imaging_tl import read_scan
from imaging_tl.synthetic import LABEL_COLUMNS, SYNTHETIC_COMMENT
from imaging_tl.synthetic.__main__ import main

ROOT = Path(__file__).resolve().parents[2] / "sample_dicoms"
SERIES = ROOT / "ct_series"  # the CT series set, tested in test_series.py


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    return pd.read_csv(ROOT / "labels.csv")


def test_demo_set_is_complete_and_small(labels):
    assert list(labels.columns) == LABEL_COLUMNS
    assert len(labels) >= 150 and labels.patient_id.nunique() >= 24
    every = [p for p in ROOT.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in every) < 12 * 1024 * 1024  # CT series included
    files = [p for p in every if SERIES not in p.parents]
    assert sum(p.stat().st_size for p in files) < 10 * 1024 * 1024
    listed = {ROOT / p for p in labels.path}
    assert listed == {p for p in files if p.suffix in (".dcm", ".png")}
    assert all(
        Path(p).parts[0] == pid for p, pid in zip(labels.path, labels.patient_id, strict=True)
    )
    # A usable binary task, and the other findings for multi-label work.
    assert 0.3 < (labels.label == "nodule").mean() < 0.7
    assert labels.consolidation.sum() > 10 and labels.effusion.sum() > 10


def test_every_demo_file_reads_and_says_it_is_synthetic(labels):
    kinds = set()
    for p in labels.path:
        scan = read_scan(ROOT / p)
        assert scan.pixels.shape == (224, 224)
        if p.endswith(".dcm"):
            ds = pydicom.dcmread(ROOT / p, stop_before_pixels=True)
            assert str(ds.PatientName).startswith("SYNTHETIC^")
            assert ds.ImageComments == SYNTHETIC_COMMENT and ds.BurnedInAnnotation in ("YES", "NO")
            kinds.add((ds.Modality, ds.PhotometricInterpretation))
            kinds.add(ds.file_meta.TransferSyntaxUID.name)
        else:
            kinds.add(("png", scan.meta["BitsStored"]))
    assert {("CR", "MONOCHROME1"), ("CR", "MONOCHROME2"), ("DX", "MONOCHROME2")} <= kinds
    assert {("png", 8), ("png", 16), "RLE Lossless", "Explicit VR Little Endian"} <= kinds


def test_readme_gives_the_exact_command():
    text = (ROOT / "README.md").read_text()
    assert "SYNTHETIC" in text
    assert "python -m imaging_tl.synthetic --preset demo --out sample_dicoms" in text


@pytest.mark.slow
def test_demo_set_regenerates_bit_for_bit(tmp_path):
    out = tmp_path / "sample_dicoms"
    assert main(["--preset", "demo", "--out", str(out)]) == 0
    files = sorted(str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                   if p.is_file() and SERIES not in p.parents)
    assert files == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(ROOT, out, files, shallow=False)
    assert not mismatch and not errors
