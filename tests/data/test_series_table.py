"""``data.unit: series``: labels per series (CSV or class folders), slices in order,
flagged and unlabelled series left out with a message, patient-grouped splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from imaging_tl.config import ConfigError, load_config
from imaging_tl.data import DatasetError, split_table
from imaging_tl.data.series import from_series
from imaging_tl.synthetic.series import generate_series_dataset

ROOT = Path(__file__).resolve().parents[2]
SERIES = ROOT / "sample_dicoms" / "ct_series"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """10 tiny series (5 with a lesion) of 4 slices, 16 px."""
    out = tmp_path_factory.mktemp("series")
    generate_series_dataset(out, n_patients=10, n_slices=4, size=16, seed=3)
    return out


def test_the_sample_series_give_one_row_per_slice_in_order_with_the_series_label():
    labels = pd.read_csv(SERIES / "series_labels.csv")
    df = from_series(SERIES, csv=SERIES / "series_labels.csv")
    assert len(df) == 96 and df["series"].nunique() == 12 and df.attrs["series_report"] == []
    assert str(labels.series_uid[0]) not in df.to_csv()  # only pseudonyms of UIDs
    for _, rows in df.groupby("series"):
        assert rows["slice"].tolist() == list(range(8)) and set(rows["n_slices"]) == {8}
        names = [Path(p).name for p in rows["path"]]
        assert names == [f"im{i:03d}.dcm" for i in range(1, 9)]  # the generator's order
        assert rows["label"].nunique() == 1 and rows["group"].nunique() == 1
    folder_label = dict(zip(labels.folder, labels.label, strict=True))
    assert all(folder_label[Path(p).parent.name] == lab
               for p, lab in zip(df["path"], df["label"], strict=True))
    assert set(df["group_key"]) == {"PatientID"} and df["group"].str.startswith("pid:").all()


def test_class_folders_of_series_are_labels_too(small, tmp_path):
    labels = pd.read_csv(small / "series_labels.csv")
    for folder, label in zip(labels.folder, labels.label, strict=True):
        shutil.copytree(small / folder, tmp_path / label / folder)
    df = from_series(tmp_path)
    assert sorted(df.groupby("series")["label"].first().value_counts().tolist()) == [5, 5]
    by_folder = {Path(p).parent.name: lab for p, lab in zip(df["path"], df["label"],
                                                            strict=True)}
    assert by_folder == dict(zip(labels.folder, labels.label, strict=True))
    # a relative folder (as a config gives it) finds the same classes
    import os

    here = os.getcwd()
    os.chdir(tmp_path.parent)
    try:
        assert from_series(tmp_path.name)["label"].tolist() == df["label"].tolist()
    finally:
        os.chdir(here)


def test_flagged_unlabelled_and_unreadable_series_are_left_out_and_said(small, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(small, data)
    labels = pd.read_csv(data / "series_labels.csv")
    (data / labels.folder[0] / "im002.dcm").unlink()  # a gap in series 0
    labels.drop(index=2).to_csv(data / "lab.csv", index=False)  # series 2 has no row
    (data / labels.folder[3] / "im004.dcm").write_bytes(b"\0" * 200 + b"DICM" + b"\1" * 50)
    df = from_series(data, csv=data / "lab.csv")
    report = "\n".join(df.attrs["series_report"])
    assert df["series"].nunique() == 8  # 0 (gap) and 2 (no row) left out; 3 keeps 3 slices
    assert "spacing not uniform" in report and "left out" in report
    assert "no row in lab.csv" in report
    assert "im004.dcm: header unreadable" in report
    assert labels.series_uid[0] not in report  # named by first file, not by UID


def test_a_bad_label_csv_is_refused_with_every_problem(small, tmp_path):
    labels = pd.read_csv(small / "series_labels.csv")
    bad = pd.concat([labels, labels.iloc[[0]]]).assign(label=lambda t: t.label.astype(str))
    bad.iloc[1, bad.columns.get_loc("label")] = ""
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DatasetError) as err:
        from_series(small, csv=tmp_path / "bad.csv")
    assert "row 3: empty label 'label'" in str(err.value)
    assert "row 12: series series_uid listed twice" in str(err.value)
    with pytest.raises(DatasetError, match="data.series_column: 'uid' is not a column"):
        from_series(small, csv=small / "series_labels.csv", series_column="uid")


def test_splits_keep_every_slice_of_a_patient_together(small):
    df = split_table(from_series(small, csv=small / "series_labels.csv"), val=0.2, test=0.2,
                     seed=0)
    assert (df.groupby("series")["split"].nunique() == 1).all()
    assert (df.groupby("group")["split"].nunique() == 1).all()
    assert set(df["split"]) == {"train", "val", "test"}


def test_config_keys_are_checked(small, tmp_path):
    csv = str(small / "series_labels.csv")
    cfg = load_config({"data": {"unit": "series", "folder": str(small), "csv": csv,
                                "label_column": "label"}})
    assert cfg.data.unit == "series" and cfg.data.series_column is None
    with pytest.raises(ConfigError) as err:
        load_config({"data": {"unit": "series", "csv": csv, "label_column": "label",
                              "series_column": "series_id", "label_columns": ["a"]}})
    text = str(err.value)
    assert "data.folder: required with data.unit series" in text
    assert "data.series_column: 'series_id' is not a column of series_labels.csv" in text
    assert "data.label_columns: not supported with data.unit series" in text
    with pytest.raises(ConfigError, match="data.series_column: only with data.unit series"):
        load_config({"data": {"folder": str(small), "series_column": "series_uid"}})
    with pytest.raises(ConfigError, match="data.unit"):
        load_config({"data": {"folder": str(small), "unit": "volume"}})
