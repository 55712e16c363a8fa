"""Dataset tables from a folder, a CSV manifest and DICOM headers; validation."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from imaging_tl.data import (
    DatasetError,
    encode_labels,
    from_csv,
    from_dicom_headers,
    from_folder,
    task_of,
    validate,
)


def test_folder_finds_classes_extensionless_dicom_and_expands_frames(dicom_set: Path) -> None:
    df = from_folder(dicom_set)
    assert sorted(df["label"].unique()) == ["abnormal", "normal"]
    # 24 written files + rtdose's 15 frames; the extension-less DICOM files are found.
    assert len(df) == 24 + 15
    assert any(Path(p).suffix == "" for p in df["path"])
    rt = df[df["path"].str.endswith("rtdose.dcm")]
    assert rt["frame"].tolist() == list(range(15))
    assert df.loc[~df["path"].str.endswith("rtdose.dcm"), "frame"].isna().all()
    # Group = PatientID digest: 2 images per patient, no raw identifier in the table.
    ours = df[~df["path"].str.endswith("rtdose.dcm")]
    assert (ours.groupby("group").size() == 2).all()
    assert (ours["group_key"] == "PatientID").all()
    text = df.drop(columns="path").astype(str)
    assert not text.apply(lambda c: c.str.contains("NOR0")).any().any()
    assert df.attrs["label_columns"] == ["label"]


def test_folder_middle_frame(dicom_set: Path) -> None:
    df = from_folder(dicom_set, frames="middle")
    assert df.loc[df["path"].str.endswith("rtdose.dcm"), "frame"].tolist() == [7]


def test_folder_and_csv_of_the_same_files_give_the_same_table(
    dicom_set: Path, tmp_path: Path
) -> None:
    folder = from_folder(dicom_set, frames="all")
    files = folder.drop_duplicates("path")
    # A manifest in another folder with relative paths, rows in another order.
    manifest = tmp_path / "m" / "labels.csv"
    manifest.parent.mkdir()
    rel = [os.path.relpath(p, manifest.parent) for p in files["path"]]
    assert all(r.startswith("..") for r in rel)
    pd.DataFrame({"path": rel, "label": files["label"]}).iloc[::-1].to_csv(manifest, index=False)
    csv = from_csv(manifest)
    # Groups are per patient (same PatientIDs), except rtdose whose group falls back on headers.
    key = ["path", "frame"]
    a = folder.sort_values(key).reset_index(drop=True)
    b = csv.sort_values(key).reset_index(drop=True)[a.columns]
    pd.testing.assert_frame_equal(a.drop(columns="group"), b.drop(columns="group"))
    same = a["group_key"] != "file"
    assert (a.loc[same, "group"] == b.loc[same, "group"]).all()


def test_csv_multilabel_groups_and_relative_paths(dicom_set: Path, tmp_path: Path) -> None:
    files = sorted(str(p) for p in dicom_set.rglob("*_0.dcm"))
    manifest = tmp_path / "labels.csv"
    pd.DataFrame({
        "path": files,
        "patient_id": [Path(f).parent.name for f in files],
        "nodule": [i % 2 for i in range(len(files))],
        "effusion": ["true" if i % 3 == 0 else "0" for i in range(len(files))],
    }).to_csv(manifest, index=False)
    df = from_csv(manifest, label_columns=["nodule", "effusion"])
    assert df.attrs["label_columns"] == ["nodule", "effusion"]
    assert task_of(df) == "multilabel"
    assert set(df["group_key"]) == {"patient_id"}
    y, names, task = encode_labels(df)
    assert y.shape == (len(files), 2) and names == ["nodule", "effusion"]
    assert y[:, 1].sum() == sum(i % 3 == 0 for i in range(len(files)))


def test_csv_lists_every_missing_file_and_bad_label(tmp_path: Path, dicom_set: Path) -> None:
    real = str(next(dicom_set.rglob("*.dcm")))
    manifest = tmp_path / "labels.csv"
    pd.DataFrame({"path": ["gone1.dcm", real, "gone2.dcm", real],
                  "patient_id": ["a", "b", "c", "b"],
                  "label": ["x", "", "y", "x"]}).to_csv(manifest, index=False)
    with pytest.raises(DatasetError) as err:
        from_csv(manifest)
    msg = str(err.value)
    assert "gone1.dcm: file not found" in msg and "gone2.dcm: file not found" in msg
    assert "empty label" in msg and "duplicate row" in msg
    assert str(manifest) in msg


def test_csv_bad_multilabel_value_and_missing_column(tmp_path: Path) -> None:
    manifest = tmp_path / "labels.csv"
    pd.DataFrame({"path": ["a.png"], "nodule": ["maybe"]}).to_csv(manifest, index=False)
    with pytest.raises(DatasetError, match="not 0/1"):
        from_csv(manifest, label_columns=["nodule"])
    with pytest.raises(DatasetError, match="column 'effusion' not found"):
        from_csv(manifest, label_columns=["effusion"])


def test_validate_unknown_labels() -> None:
    df = pd.DataFrame({"path": [__file__, __file__ + "x"], "label": ["a", "zz"],
                       "group": ["p", "q"]})
    with pytest.raises(DatasetError) as err:
        validate(df, classes=["a", "b"])
    assert "unknown label 'zz'" in str(err.value) and "file not found" in str(err.value)


def test_dicom_headers_group_and_label_map(dicom_set: Path, pydicom_test_dir: Path) -> None:
    df = from_dicom_headers(dicom_set, label_field="PatientID",
                            label_map=lambda v: "nor" if v.startswith("NOR") else None,
                            unmapped="drop")
    assert set(df["label"]) == {"nor"} and len(df) == 12
    with pytest.raises(DatasetError, match="PatientID gives no label"):
        from_dicom_headers(dicom_set, label_field="PatientID", label_map={"NOR000": "x"})
    # No PatientID -> StudyInstanceUID -> the file.
    df = from_dicom_headers([pydicom_test_dir / "CT_small.dcm"])
    assert df["group_key"].iloc[0] in ("PatientID", "StudyInstanceUID", "file")


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        from_folder(tmp_path / "nope")
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "empty_class" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="no image files"):
        from_folder(tmp_path)
