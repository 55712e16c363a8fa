"""generate_dataset and the CLI: reproducibility, labels, patient grouping, masks."""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image

from imaging_tl import read_scan
from imaging_tl.synthetic import LABEL_COLUMNS, generate_dataset
from imaging_tl.synthetic.__main__ import main

SMALL = {"n_patients": 4, "images_per_patient": 4, "size": 64, "png_fraction": 0.5}


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> tuple[Path, pd.DataFrame, Path]:
    root = tmp_path_factory.mktemp("set")
    masks = tmp_path_factory.mktemp("masks")
    df = generate_dataset(root, seed=3, mask_dir=masks, **SMALL)  # has DICOM and PNG
    return root, df, masks


def test_same_seed_gives_identical_files(small_set, tmp_path):
    root, _, _ = small_set
    again = tmp_path / "again"
    generate_dataset(again, seed=3, **SMALL)
    files = _files(root)
    assert files == _files(again)
    match, mismatch, errors = filecmp.cmpfiles(root, again, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors
    other = tmp_path / "other"
    generate_dataset(other, seed=6, **SMALL)
    assert not filecmp.cmp(root / "labels.csv", other / "labels.csv", shallow=False)


def test_labels_csv_lists_every_file_with_consistent_labels(small_set):
    root, df, _ = small_set
    labels = pd.read_csv(root / "labels.csv")
    assert list(labels.columns) == LABEL_COLUMNS
    assert len(labels) == 16 and labels.path.is_unique
    on_disk = {str(p) for p in _files(root) if p.suffix in (".dcm", ".png")}
    assert set(labels.path) == on_disk
    assert ((labels.label == "nodule") == (labels.nodule == 1)).all()
    assert set(labels.label) <= {"nodule", "normal"}
    for col in ("nodule", "consolidation", "effusion"):
        assert set(labels[col]) <= {0, 1}
    assert {"dicom", "png"} <= set(df.format)


def test_masks_are_nonempty_exactly_for_positive_labels(small_set):
    root, df, masks = small_set
    for row in df.itertuples():
        stem = Path(row.path).with_suffix("")
        for kind in ("nodule", "consolidation", "effusion"):
            f = masks / f"{stem}_{kind}.png"
            assert f.exists() == bool(getattr(row, kind)), (row.path, kind)
            if f.exists():
                assert (np.asarray(Image.open(f)) > 0).any()


def test_patients_never_mix(small_set):
    root, df, _ = small_set
    # A study belongs to exactly one patient, and every file sits in its patient's folder.
    assert (df.groupby("study_uid").patient_id.nunique() == 1).all()
    assert all(Path(p).parts[0] == pid for p, pid in zip(df.path, df.patient_id, strict=True))
    dicoms = df[df.format == "dicom"]
    assert dicoms.sop_uid.is_unique
    for row in dicoms.itertuples():
        ds = pydicom.dcmread(root / row.path, stop_before_pixels=True)
        assert ds.PatientID == row.patient_id
        assert ds.StudyInstanceUID == row.study_uid
        assert ds.SOPInstanceUID == row.sop_uid
        assert str(ds.PatientName) == "SYNTHETIC^" + row.patient_id[3:]


def test_every_file_reads_through_read_scan(small_set):
    root, df, _ = small_set
    for row in df.itertuples():
        scan = read_scan(root / row.path)
        assert scan.pixels.shape == (64, 64) and scan.pixels.dtype == np.float32
        if row.format == "dicom":
            assert scan.meta["Modality"] == row.modality
            assert scan.meta["PhotometricInterpretation"] == row.photometric
            assert scan.meta["BitsStored"] == row.bits_stored
            assert scan.meta["PixelSpacing"] == [row.pixel_spacing_mm] * 2
            assert scan.meta["windows"]


def test_ct_dataset(tmp_path):
    df = generate_dataset(
        tmp_path,
        n_patients=2,
        images_per_patient=2,
        size=64,
        kind="ct",
        seed=1,
        prevalence={"nodule": 1.0},
        persistence=1.0,
    )
    assert (df.format == "dicom").all() and (df.modality == "CT").all()
    assert (df.nodule == 1).all()
    for p in df.path:
        hu = read_scan(tmp_path / p).pixels
        assert hu.min() < -900 and hu.max() > 300


def test_refuses_to_overwrite_unless_asked(tmp_path):
    generate_dataset(tmp_path, n_patients=1, images_per_patient=1, size=32)
    (tmp_path / "README.md").write_text("keep me")
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_dataset(tmp_path, n_patients=1, images_per_patient=1, size=32)
    generate_dataset(tmp_path, n_patients=2, images_per_patient=1, size=32, overwrite=True)
    assert (tmp_path / "README.md").read_text() == "keep me"
    assert len(pd.read_csv(tmp_path / "labels.csv")) == 2


def test_bad_arguments_name_the_parameter(tmp_path):
    with pytest.raises(ValueError, match="n_patients"):
        generate_dataset(tmp_path, n_patients=0)
    with pytest.raises(ValueError, match="prevalence"):
        generate_dataset(tmp_path, prevalence={"fracture": 0.5})
    with pytest.raises(ValueError, match="transfer_syntaxes"):
        generate_dataset(tmp_path, transfer_syntaxes={"jpeg": 1.0})
    with pytest.raises(ValueError, match="bit_depths"):
        generate_dataset(tmp_path, bit_depths={8: 1.0})
    with pytest.raises(ValueError, match="size"):
        generate_dataset(tmp_path, size=16)
    with pytest.raises(ValueError, match="kind"):
        generate_dataset(tmp_path, kind="mri")


def test_workers_do_not_change_the_output(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate_dataset(a, n_patients=3, images_per_patient=2, size=48, seed=2, workers=1)
    generate_dataset(b, n_patients=3, images_per_patient=2, size=48, seed=2, workers=2)
    files = [str(f) for f in _files(a)]
    assert files == [str(f) for f in _files(b)]
    assert not filecmp.cmpfiles(a, b, files, shallow=False)[1]


def test_cli(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["--preset", "small", "--n-patients", "2", "--size", "48", "--out", str(out)]) == 0
    assert "generated 8 images of 2 patients" in capsys.readouterr().out
    assert main(["--preset", "small", "--out", str(out)]) == 2  # exists, no --overwrite
    assert "overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--preset", "nope", "--out", str(out)])
    assert exc.value.code == 2


def test_cli_writes_one_transfer_syntax_when_asked(tmp_path):
    import pydicom

    out = tmp_path / "plain"
    assert main(["--preset", "small", "--n-patients", "2", "--size", "48", "--png-fraction",
                 "0", "--transfer-syntax", "explicit", "--out", str(out)]) == 0
    files = sorted(out.rglob("*.dcm"))
    assert len(files) == 8
    assert {str(pydicom.dcmread(f, stop_before_pixels=True).file_meta.TransferSyntaxUID)
            for f in files} == {pydicom.uid.ExplicitVRLittleEndian}
