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


def _lesion_slices() -> dict[str, set[int]]:
    labels = pd.read_csv(SERIES / "series_labels.csv", dtype=str, keep_default_na=False)
    return {f: {int(k) for k in s.split(";")} if s else set()
            for f, s in zip(labels.folder, labels.lesion_slices, strict=True)}


def test_slice_labels_keyed_by_file_or_by_series_give_each_slice_its_label(tmp_path):
    lesion = _lesion_slices()
    per_series = from_series(SERIES, csv=SERIES / "series_labels.csv")
    by_file = from_series(SERIES, slice_labels=SERIES / "slice_labels.csv", positive="lesion")
    assert by_file.attrs["slice_labelled"] == 12 and by_file.attrs["series_report"] == []
    for path, slice_no, label in zip(by_file["path"], by_file["slice"], by_file["label"],
                                     strict=True):
        assert (label == "lesion") == (slice_no in lesion[Path(path).parent.name])
    # the derived series label is the series CSV's label (positive when any slice is)
    assert by_file["series_label"].tolist() == per_series["label"].tolist()
    assert set(per_series["series_label"]) == {"lesion", "normal"}
    rows = pd.read_csv(SERIES / "slice_labels.csv")
    for columns in (["series_uid", "instance_number", "label"], ["series_uid", "slice", "label"]):
        rows[columns].to_csv(tmp_path / "s.csv", index=False)
        other = from_series(SERIES, slice_labels=tmp_path / "s.csv")  # positive inferred
        assert other["label"].tolist() == by_file["label"].tolist()
    both = from_series(SERIES, csv=SERIES / "series_labels.csv",
                       slice_labels=SERIES / "slice_labels.csv")
    assert both["label"].tolist() == by_file["label"].tolist()


def test_bad_slice_labels_are_named_and_only_their_series_left_out(tmp_path):
    rows = pd.read_csv(SERIES / "slice_labels.csv")
    series = pd.read_csv(SERIES / "series_labels.csv")
    partial = rows.drop(index=3)  # series 1 (SYNCT0001) loses one slice's row
    extra = pd.DataFrame([{"path": "SYNCT0099/im001.dcm", "label": "normal"}])
    partial = pd.concat([partial, extra], ignore_index=True)
    partial["path"] = [str(SERIES / p) for p in partial["path"]]  # the CSV lies elsewhere
    partial.to_csv(tmp_path / "s.csv", index=False)
    shutil.copy(SERIES / "series_labels.csv", tmp_path / "series.csv")
    series.loc[1, "label"] = "normal"  # SYNCT0002 holds a lesion slice: they disagree
    series.to_csv(tmp_path / "series.csv", index=False)
    df = from_series(SERIES, csv=tmp_path / "series.csv", slice_labels=tmp_path / "s.csv")
    report = "\n".join(df.attrs["series_report"])
    assert df["series"].nunique() == 10
    assert "SYNCT0001/im001.dcm: 7 of 8 slices have a row in s.csv" in report
    assert "series label 'normal' but its slice labels make it 'lesion'" in report
    assert f"1 slice label row(s) match no slice of a readable series, ignored: rows " \
           f"{len(partial) + 1}" in report and "SYNCT0099" in report
    assert series.series_uid[0] not in report
    dup = pd.concat([rows, rows.iloc[[5]]]).assign(label=lambda t: t.label.astype(str))
    dup.iloc[2, dup.columns.get_loc("label")] = ""
    dup.to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(DatasetError) as err:
        from_series(SERIES, slice_labels=tmp_path / "dup.csv")
    assert "row 4: empty label 'label'" in str(err.value)
    assert f"row {len(dup) + 1}: the same slice as row 7" in str(err.value)
    rows.assign(label=[("a", "b", "c")[i % 3] for i in range(len(rows))]).to_csv(
        tmp_path / "three.csv", index=False)
    with pytest.raises(DatasetError, match="slice labels are for binary tasks"):
        from_series(SERIES, slice_labels=tmp_path / "three.csv")
    rows[["series_uid", "label"]].to_csv(tmp_path / "nokey.csv", index=False)
    with pytest.raises(DatasetError, match="key the rows by file"):
        from_series(SERIES, slice_labels=tmp_path / "nokey.csv")


def test_sampling_around_positive_keeps_positives_their_margin_and_a_seeded_rest():
    from imaging_tl.data.series import sample_around_positive

    df = split_table(from_series(SERIES, slice_labels=SERIES / "slice_labels.csv"),
                     val=0.2, test=0.2, seed=0)
    out = sample_around_positive(df, "lesion", margin=1, rest=0.2, seed=0)
    assert out.equals(sample_around_positive(df, "lesion", margin=1, rest=0.2, seed=0))
    assert not out.equals(sample_around_positive(df, "lesion", margin=1, rest=0.2, seed=1))
    assert out[out.split != "train"].reset_index(drop=True).equals(
        df[df.split != "train"].reset_index(drop=True))
    for key, rows in df[df.split == "train"].groupby("series"):
        kept = set(out[out.series == key]["slice"])
        hits = set(rows[rows.label == "lesion"]["slice"])
        near = {s for s in rows["slice"] if any(abs(s - h) <= 1 for h in hits)}
        assert near <= kept and len(kept - near) == -(-2 * (8 - len(near)) // 10)
    assert out[out.split == "train"]["series"].nunique() == \
        df[df.split == "train"]["series"].nunique()


def test_slice_config_keys_are_checked(tmp_path):
    base = {"unit": "series", "folder": str(SERIES)}
    cfg = load_config({"data": {**base, "slice_labels": str(SERIES / "slice_labels.csv"),
                                "slice_sampling": "around_positive", "slice_margin": 1}})
    assert cfg.data.slice_rest == 0.1
    with pytest.raises(ConfigError) as err:
        load_config({"data": {**base, "csv": str(SERIES / "series_labels.csv"),
                              "label_column": "label", "slice_sampling": "around_positive",
                              "slice_step": 2}})
    assert "data.slice_sampling: around_positive needs slice labels" in str(err.value)
    assert "data.slice_step: only with data.slice_sampling every_k" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config({"data": {**base, "slice_labels": str(SERIES / "series_labels.csv"),
                              "slice_rest": 0.5}, "task": {"type": "multiclass"}})
    text = str(err.value)
    assert "data.slice_labels: for binary tasks" in text
    assert "data.slice_labels: series_labels.csv needs a 'path' column" in text
    assert "data.slice_rest: only with data.slice_sampling around_positive" in text
    with pytest.raises(ConfigError, match="data.slice_labels: only with data.unit series"):
        load_config({"data": {"folder": str(SERIES), "slice_labels": "x.csv"}})
