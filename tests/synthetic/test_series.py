"""Synthetic CT series: geometry tags, a lesion across a few slices, the committed set."""

from __future__ import annotations

import filecmp
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from imaging_tl import read_scan
from imaging_tl.io.series import scan_series
from imaging_tl.synthetic import SYNTHETIC_COMMENT, DicomIdentity, synthetic_uid
from imaging_tl.synthetic.__main__ import main
from imaging_tl.synthetic.series import make_ct_series, write_ct_series

SERIES = Path(__file__).resolve().parents[2] / "sample_dicoms" / "ct_series"


def _ident(n: int = 1) -> DicomIdentity:
    study = synthetic_uid("test", n)
    return DicomIdentity(n, study, synthetic_uid(study, "s"), synthetic_uid(study, "i"),
                         "20240101", "080000")


@pytest.mark.parametrize("region", ["chest", "head"])
def test_a_positive_series_holds_its_lesion_on_a_few_neighbouring_slices(region):
    pos = make_ct_series(5, region=region, n_slices=10, size=48, lesion=True)
    neg = make_ct_series(5, region=region, n_slices=10, size=48)
    k = pos.lesion_slices
    assert 2 <= len(k) <= 7 and k == list(range(k[0], k[-1] + 1)) and neg.lesion_slices == []
    centre, _, _ = pos.params["lesion"]["centre"]
    diff = pos.hu - neg.hu  # same anatomy and noise: only the lesion differs
    changed = [i for i in range(10) if np.abs(diff[i]).max() > 1.0]
    assert changed == k and centre in k
    assert pos.label == "lesion" and neg.label == "normal"


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="region"):
        make_ct_series(0, region="knee")
    with pytest.raises(ValueError, match="n_slices"):
        make_ct_series(0, n_slices=1)


def test_oblique_files_shuffled_and_renamed_come_back_in_geometric_order(tmp_path):
    series = make_ct_series(2, n_slices=7, size=24, lesion=True)
    files = write_ct_series(tmp_path / "w", series, _ident(), tilt_deg=22.0)
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    row, col = np.array(ds.ImageOrientationPatient[:3]), np.array(ds.ImageOrientationPatient[3:])
    assert abs(np.degrees(np.arctan2(col[2], col[1])) - 22.0) < 1e-4  # oblique indeed
    assert float(ds.SliceThickness) == 5.0 and len(ds.PixelSpacing) == 2
    assert ds.ImageComments == SYNTHETIC_COMMENT
    normal = np.cross(row, col)
    names = random.Random(3).sample(range(100, 200), len(files))  # names tell nothing
    moved = []
    for f, n in zip(files, names, strict=True):
        moved.append(tmp_path / f"x{n}.dcm")
        shutil.move(f, moved[-1])
    geometric = sorted(moved, key=lambda f: float(np.dot(np.asarray(
        pydicom.dcmread(f).ImagePositionPatient, float), normal)))
    (one,), failed = scan_series(random.Random(4).sample(moved, len(moved)))
    assert not failed and one.order_by == "position" and not one.flagged
    assert [s.path for s in one.slices] == [str(f) for f in geometric]
    assert [s.instance_number for s in one.slices] == list(range(1, 8))
    assert one.spacing == pytest.approx(5.0)
    pixels = np.stack([read_scan(s.path).pixels for s in one.slices])
    assert np.abs(pixels - np.rint(np.clip(series.hu, -1024, 3071))).max() == 0


def test_a_missing_slice_and_a_duplicated_one_are_reported(tmp_path):
    series = make_ct_series(4, n_slices=8, size=16)
    gap = write_ct_series(tmp_path / "gap", series, _ident(1))
    gap[3].unlink()
    dup = write_ct_series(tmp_path / "dup", series, _ident(2))
    copy = pydicom.dcmread(dup[5])
    copy.SOPInstanceUID = copy.file_meta.MediaStorageSOPInstanceUID = synthetic_uid("copy")
    copy.save_as(tmp_path / "dup" / "again.dcm")
    found, _ = scan_series(sorted(tmp_path.rglob("*.dcm")))
    messages = {Path(s.slices[0].path).parent.name: s.message() for s in found}
    assert "spacing not uniform" in messages["gap"] and "about 1 missing" in messages["gap"]
    assert "duplicated positions: 1 slice(s)" in messages["dup"]
    assert messages["dup"].startswith("series of 9 slice(s) starting at ")


def test_the_committed_series_are_small_geometric_labelled_and_regenerate(tmp_path):
    labels = pd.read_csv(SERIES / "series_labels.csv")
    assert len(labels) == 12 and (labels.label == "lesion").sum() == 6
    assert (labels.tilt_deg > 0).sum() == 3
    found, failed = scan_series(sorted(SERIES.rglob("*.dcm")))
    assert not failed and len(found) == 12 and not any(s.flagged for s in found)
    assert {s.uid for s in found} == set(labels.series_uid)
    assert "python -m imaging_tl.synthetic --preset ct_series --out sample_dicoms/ct_series" \
        in (SERIES / "README.md").read_text()
    out = tmp_path / "ct_series"
    assert main(["--preset", "ct_series", "--out", str(out)]) == 0
    files = sorted(str(p.relative_to(SERIES)) for p in SERIES.rglob("*")
                   if p.is_file() and p.name != "README.md")
    assert files == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    _, mismatch, errors = filecmp.cmpfiles(SERIES, out, files, shallow=False)
    assert not mismatch and not errors
