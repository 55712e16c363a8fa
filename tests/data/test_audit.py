"""The leakage audit catches planted leaks of each kind, and runs on a user's split file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from imaging_tl.data import LeakageError, LeakageWarning, audit_splits, from_folder, split_table
from imaging_tl.data.audit import content_hash, dhash, hamming


@pytest.fixture(scope="module")
def clean_split(dicom_set: Path) -> pd.DataFrame:
    df = from_folder(dicom_set, frames="middle")
    return split_table(df, val=0.0, test=0.34, seed=0)


def test_clean_split_passes_all_checks(clean_split: pd.DataFrame) -> None:
    report = audit_splits(clean_split)
    assert report.ok
    assert report.checked == ["group", "path", "SOPInstanceUID", "pixels", "near_duplicates"]
    assert not report.near_duplicates


def test_patient_leak_fails_without_naming_the_patient(clean_split: pd.DataFrame) -> None:
    df = clean_split.copy()
    i = df.index[df["split"] == "test"][0]
    j = df.index[df["split"] == "train"][0]
    df.loc[i, "group"] = df.loc[j, "group"]
    with pytest.raises(LeakageError) as err:
        audit_splits(df, pixels=False, near_duplicates=False)
    msg = str(err.value)
    assert "patient/group pid:" in msg and df.loc[i, "path"] in msg
    assert "NOR0" not in msg.replace(df.loc[i, "path"], "").replace(df.loc[j, "path"], "")


def test_sop_instance_uid_leak(tmp_path: Path, make_dicom) -> None:
    sop = pydicom.uid.generate_uid()
    a = make_dicom(tmp_path / "a.dcm", make_dicom.smooth(1), patient="A", sop=sop)
    b = make_dicom(tmp_path / "b.dcm", make_dicom.smooth(2), patient="B", sop=sop)
    df = pd.DataFrame({"path": [str(a), str(b)], "group": ["A", "B"], "split": ["train", "val"]})
    report = audit_splits(df, pixels=False, near_duplicates=False, raise_on_leak=False)
    assert not report.ok and report.leaks[0].startswith(f"SOPInstanceUID {sop} in 2 splits")
    assert "group#" not in report.leaks[0]


def test_pixel_identical_image_under_new_identifiers(tmp_path: Path, make_dicom) -> None:
    px = make_dicom.smooth(7)
    a = make_dicom(tmp_path / "a.dcm", px, patient="A")
    b = make_dicom(tmp_path / "b.dcm", px, patient="B")  # new SOP, new patient
    c = make_dicom(tmp_path / "c.dcm", make_dicom.smooth(8), patient="C")
    df = pd.DataFrame({"path": [str(a), str(b), str(c)], "group": ["A", "B", "C"],
                       "split": ["train", "test", "test"]})
    with pytest.raises(LeakageError, match="pixel-identical image .* in 2 splits") as err:
        audit_splits(df, workers=1)
    assert not err.value.report.near_duplicates  # exact leaks are not repeated as near ones


def test_same_file_in_two_splits(clean_split: pd.DataFrame) -> None:
    train_row = clean_split[clean_split["split"] == "train"].iloc[[0]]
    df = pd.concat([clean_split, train_row.assign(split="test")], ignore_index=True)
    df.loc[len(df) - 1, "group"] = "someone-else"
    report = audit_splits(df, pixels=False, near_duplicates=False, raise_on_leak=False)
    assert any(x.startswith("file ") for x in report.leaks)


def test_near_duplicate_warns_but_does_not_fail(tmp_path: Path, make_dicom) -> None:
    px = make_dicom.smooth(11)
    rng = np.random.default_rng(0)
    brighter = (px + 30 + rng.normal(0, 3, px.shape)).astype(np.int16)  # re-exposed copy
    a = make_dicom(tmp_path / "a.dcm", px, patient="A")
    b = make_dicom(tmp_path / "b.dcm", brighter, patient="B")
    df = pd.DataFrame({"path": [str(a), str(b)], "group": ["A", "B"], "split": ["train", "test"]})
    with pytest.warns(LeakageWarning, match="near-duplicate"):
        report = audit_splits(df, workers=1)
    assert report.ok and len(report.near_duplicates) == 1


def test_audit_a_users_split_file(tmp_path: Path, clean_split: pd.DataFrame) -> None:
    own = tmp_path / "my_splits.csv"
    rows = clean_split[["path", "group", "split"]].copy()
    rows["path"] = [Path(p).as_posix() for p in rows["path"]]
    rows.loc[rows.index[-1], "group"] = rows.loc[rows.index[0], "group"]
    rows.loc[rows.index[-1], "split"] = "holdout"
    rows.to_csv(own, index=False)
    with pytest.raises(LeakageError, match="patient/group"):
        audit_splits(own, pixels=False, near_duplicates=False)


def test_hashes(make_dicom) -> None:
    img = make_dicom.smooth(3).astype(np.float32)
    assert content_hash(img) == content_hash(img.copy())
    assert content_hash(img) != content_hash(img + 1)
    assert hamming(dhash(img), dhash(img * 2 - 100)) == 0
    assert hamming(dhash(img), dhash(make_dicom.smooth(4).astype(np.float32))) > 60


def test_data_index_keeps_no_raw_identifier_and_finds_cross_task_overlap():
    import pandas as pd
    from pydicom.data import get_testdata_file

    from imaging_tl.data.audit import INDEX_COLUMNS, data_index, source_overlap

    ct = get_testdata_file("CT_small.dcm", download=False)
    src = pd.DataFrame({"path": [ct, "/nope/b.png", "/nope/c.png"],
                        "split": ["train", "val", "test"], "group": ["pid:x", "P2", "P3"],
                        "content_hash": ["h1", "h2", "h3"]})
    index = data_index(src)
    assert tuple(index.columns) == INDEX_COLUMNS
    text = index.to_csv()
    assert "1CT1" not in text and "P2" not in text and "/nope" not in text
    from imaging_tl.io.census import pseudonymize_patient_id

    # the header's PatientID (1CT1), pseudonymised with this machine's key
    assert index["patient"][0] == pseudonymize_patient_id("1CT1")
    assert index["sop"][0].startswith("sop:")
    tgt = pd.DataFrame({"path": ["/t/1.png", "/t/2.png", "/t/3.png", "/t/4.png"],
                        "split": ["test", "val", "train", "test"],
                        "group": ["P2", "Q1", "P2", "P3"],
                        "content_hash": ["z", "h1", "z", "z"]})
    o = source_overlap(index, data_index(tgt))
    # P2 was the source's val patient (seen); P3 its test patient (not seen); the target's
    # train rows never count; h1 is a pixel-identical copy of a source training image
    assert (o.patients, o.files) == (1, 1)
    assert o.by_kind == {"patient": 1, "SOPInstanceUID": 0, "pixels": 1}
    assert "1 patient(s) and 1 file(s)" in o.format() and not o.ok
    assert source_overlap(index, data_index(tgt.iloc[[2]])).ok
