"""Census of a folder mixing good, broken, non-DICOM and raster files."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import skimage.io
from pydicom.data import get_testdata_file

from imaging_tl.cli import main
from imaging_tl.io.census import COLUMNS, run_census

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _file(name: str) -> Path:
    return Path(get_testdata_file(name, download=False))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("census")
    sub = root / "patient_a" / "study"
    sub.mkdir(parents=True)
    shutil.copy(_file("CT_small.dcm"), sub / "ct.dcm")
    shutil.copy(_file("CT_small.dcm"), root / "ct_copy")  # duplicate SOPInstanceUID, no suffix
    shutil.copy(_file("MR_small.dcm"), root / "mr.dcm")
    with open(_file("MR_small.dcm"), "rb") as src, gzip.open(root / "mr2.dcm.gz", "wb") as dst:
        ds = pydicom.dcmread(src)
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.PresentationIntentType = "FOR PROCESSING"
        ds.save_as(dst)
    ds = pydicom.dcmread(_file("JPEG2000.dcm"))  # compressed, decoder installed
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.save_as(root / "nm_j2k.dcm")
    shutil.copy(_file("RG3_UNCI.dcm"), root / "cr_mono1.dcm")
    ds = pydicom.dcmread(_file("emri_small.dcm"))
    del ds.PatientID
    ds.save_as(root / "mr_multiframe_no_pid.dcm")
    shutil.copy(_file("MR_truncated.dcm"), root / "truncated.dcm")
    shutil.copy(_file("JPEG-lossy.dcm"), root / "corrupt_jpeg.dcm")  # only --decode sees it
    shutil.copy(_file("rtplan.dcm"), root / "rtplan.dcm")
    (root / "notes.txt").write_text("reading list\n")
    (root / ".hidden").write_text("skipped")
    skimage.io.imsave(root / "x16.png", np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000,
                      check_contrast=False)
    skimage.io.imsave(root / "photo.jpg", np.full((8, 8, 3), 128, np.uint8))
    return root


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {r["path"]: r for r in csv.DictReader(f)}


def test_census_rows(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "census.csv"
    result = run_census(folder, out, progress=False)
    rows = _rows(out)
    assert list(next(csv.reader(open(out)))) == list(COLUMNS)
    assert len(rows) == 13 and ".hidden" not in rows
    ok = {p for p, r in rows.items() if r["status"] == "ok"}
    assert ok == {
        "patient_a/study/ct.dcm", "ct_copy", "mr.dcm", "mr2.dcm.gz", "nm_j2k.dcm",
        "cr_mono1.dcm", "mr_multiframe_no_pid.dcm", "corrupt_jpeg.dcm", "x16.png",
        "photo.jpg",
    }
    assert rows["truncated.dcm"]["error"] == "CorruptPixelDataError"
    assert "truncated" in rows["truncated.dcm"]["reason"]
    assert rows["rtplan.dcm"]["error"] == "NoPixelDataError"
    assert rows["rtplan.dcm"]["status"] == rows["notes.txt"]["status"] == "not_image"
    assert rows["truncated.dcm"]["status"] == "error"
    assert rows["rtplan.dcm"]["Modality"] == "RTPLAN"  # header fields kept on failure
    assert rows["notes.txt"]["error"] == "NotAnImageError"
    assert rows["mr2.dcm.gz"]["gzipped"] == "True"
    assert rows["nm_j2k.dcm"]["decoder"] == "available"
    assert rows["nm_j2k.dcm"]["transfer_syntax"] == "JPEG 2000 Image Compression"
    assert rows["cr_mono1.dcm"]["invert"] == "True"
    assert json.loads(rows["cr_mono1.dcm"]["windows"]) == [
        {"center": 550.0, "width": 1024.0, "explanation": None}
    ]
    assert rows["x16.png"]["BitsStored"] == "16" and rows["x16.png"]["format"] == "png"
    assert rows["mr_multiframe_no_pid.dcm"]["NumberOfFrames"] == "10"
    assert rows["patient_a/study/ct.dcm"]["decoded"] == "False"
    assert len(result.rows) == 13


def test_census_never_writes_patient_names(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "census.csv"
    run_census(folder, out, progress=False)
    text = out.read_text()
    for path in folder.rglob("*.dcm"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        for kw in ("PatientName", "PatientBirthDate"):
            value = str(ds.get(kw) or "")
            if value:
                assert value not in text, kw
    assert "PatientName" not in text and "BirthDate" not in text


def test_lint_summary(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    summary = run_census(folder, None, progress=True).format()  # not a terminal: no bar
    assert capsys.readouterr().err == ""
    assert "13 files" in summary
    assert "mixed photometric interpretations: MONOCHROME1 (1), MONOCHROME2 (8), RGB (1)" in summary
    assert "mixed bit depths (BitsStored): 8 (1), 10 (1), 12 (2), 16 (6)" in summary
    assert "mixed modalities: CR (1), CT (2), MR (3), NM (2)" in summary
    assert "FOR PROCESSING (1) mixed with FOR PRESENTATION (1)" in summary
    assert "missing PatientID: 1 DICOM file(s) (e.g. mr_multiframe_no_pid.dcm)" in summary
    assert "duplicate SOPInstanceUID: 1 UID(s) shared by 2 files" in summary
    assert "multi-frame files: 1" in summary
    assert "files that failed: 1" in summary
    assert ("other files, not read as scans: 2 (DICOM without pixel data 1, not images 1; "
            "e.g. notes.txt, rtplan.dcm)") in summary
    assert "truncated.dcm: the pixel data is truncated" in summary
    # identifiers stay out of the printed summary
    ds = pydicom.dcmread(_file("CT_small.dcm"), stop_before_pixels=True)
    assert ds.PatientID not in summary and ds.SOPInstanceUID not in summary


def test_decode_finds_corrupt_compressed_data(folder: Path) -> None:
    rows = {r["path"]: r for r in run_census(folder, None, progress=False, decode=True).rows}
    assert rows["corrupt_jpeg.dcm"]["error"] == "CorruptPixelDataError"
    assert rows["mr.dcm"]["status"] == "ok" and rows["mr.dcm"]["decoded"] is True


def test_cli(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.csv"
    assert main(["census", str(folder), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"Census of {folder}: 13 files -> {out}")
    assert len(_rows(out)) == 13
    assert main(["census", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_patient_id_pseudonymised_unless_kept(folder: Path, tmp_path: Path) -> None:
    from imaging_tl.io.census import pseudonymize_patient_id

    real = pydicom.dcmread(_file("CT_small.dcm"), stop_before_pixels=True).PatientID
    out = tmp_path / "c.csv"
    run_census(folder, out, progress=False)
    rows = _rows(out)
    assert real not in out.read_text()
    pseudonym = rows["ct_copy"]["PatientID"]
    assert pseudonym == pseudonymize_patient_id(real) and pseudonym.startswith("pid:")
    assert rows["patient_a/study/ct.dcm"]["PatientID"] == pseudonym  # still groups
    assert rows["mr_multiframe_no_pid.dcm"]["PatientID"] == ""
    assert main(["census", str(folder), "--out", str(out), "--quiet", "--keep-patient-id"]) == 0
    assert _rows(out)["ct_copy"]["PatientID"] == real
