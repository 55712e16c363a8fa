"""Public-style multi-label CSVs: blank (missing) and uncertain cells, the uncertain policy
(CheXpert's U-Ignore / U-Zeros / U-Ones) and ``label_map`` harmonising column names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imaging_tl.data import DatasetError, encode_labels, from_csv, from_folder, split_table
from imaging_tl.data.labels import MISSING, merge_label_states, resolve_uncertain

# effusion: positive, negative, blank, and the four spellings of uncertain
EFFUSION = ["1", "0", "", "-1", "U", " Uncertain ", "-1.0"]
NODULE = ["0", "1.0", "0", "", "true", "no", "1"]


def _csv(tmp_path: Path, columns: dict[str, list[str]], name: str = "labels.csv") -> Path:
    n = len(next(iter(columns.values())))
    for i in range(n):
        (tmp_path / f"im{i}.png").write_bytes(b"")  # the table checks that files exist
    df = pd.DataFrame({"path": [f"im{i}.png" for i in range(n)],
                       "patient_id": [f"p{i}" for i in range(n)], **columns})
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("policy", "effusion"), [
    ("ignore", [1, 0, -1, -1, -1, -1, -1]),
    ("zeros", [1, 0, -1, 0, 0, 0, 0]),
    ("ones", [1, 0, -1, 1, 1, 1, 1]),
])
def test_each_uncertain_policy_gives_the_exact_labels(tmp_path, policy, effusion):
    csv = _csv(tmp_path, {"effusion": EFFUSION, "nodule": NODULE})
    t = from_csv(csv, label_columns=["effusion", "nodule"], uncertain=policy)
    assert t["effusion"].tolist() == effusion
    assert t["nodule"].tolist() == [0, 1, 0, -1, 1, 0, 1]  # blank stays missing
    y, names, task = encode_labels(t)
    assert task == "multilabel" and names == ["effusion", "nodule"] and y.dtype == np.float32
    np.testing.assert_array_equal(y, np.array([effusion, t["nodule"].tolist()], np.float32).T)
    mask = y != MISSING  # what the masked loss and the metrics keep
    assert mask[:, 0].tolist() == [e != -1 for e in effusion]
    s = t.attrs["label_summary"]
    assert s["uncertain_policy"] == policy
    assert s["labels"]["effusion"] == {
        "columns": ["effusion"], "positive": 1, "negative": 1, "uncertain": 4, "blank": 1,
        "missing": 5 if policy == "ignore" else 1, "conflicting": 0}


def test_uncertain_cells_without_a_policy_are_refused_with_counts(tmp_path):
    csv = _csv(tmp_path, {"effusion": EFFUSION, "nodule": NODULE})
    with pytest.raises(DatasetError) as err:
        from_csv(csv, label_columns=["effusion", "nodule"])
    msg = str(err.value)
    assert str(csv) in msg and "label 'effusion'" in msg and "4 uncertain" in msg
    assert "task.uncertain: ignore | zeros | ones" in msg and "nodule" not in msg


def test_blank_cells_alone_need_no_policy(tmp_path):
    csv = _csv(tmp_path, {"nodule": NODULE})
    t = from_csv(csv, label_columns=["nodule"])
    assert t["nodule"].tolist() == [0, 1, 0, MISSING, 1, 0, 1]
    assert t.attrs["label_summary"]["labels"]["nodule"]["missing"] == 1


def test_unreadable_cell_names_file_column_and_row(tmp_path):
    csv = _csv(tmp_path, {"nodule": ["1", "0", "maybe", "2"], "effusion": ["0"] * 4})
    with pytest.raises(DatasetError) as err:
        from_csv(csv, label_columns=["effusion", "nodule"], uncertain="ignore")
    msg = str(err.value)
    assert msg.startswith(str(csv)) and "2 problem(s)" in msg
    assert "row 4, column 'nodule': 'maybe'" in msg and "row 5, column 'nodule': '2'" in msg


def test_label_map_merges_two_columns_into_one_label(tmp_path):
    # rows: conflict (1 vs 0), 0 + blank, blank + blank, 0 + uncertain, 1 + uncertain,
    #       uncertain + blank, 0 + 0
    csv = _csv(tmp_path, {
        "Effusion": ["1", "0", "", "0", "1", "-1", "0"],
        "Pleural Effusion": ["0", "", "", "u", "-1", "", "0"],
        "Nodule": ["0", "1", "0", "0", "1", "0", "0"],
    })
    label_map = {"Effusion": "pleural_effusion", "Pleural Effusion": "pleural_effusion",
                 "Nodule": "nodule", "Mass": "mass"}  # Mass: not in this CSV, ignored
    cols = ["Effusion", "Pleural Effusion", "Nodule"]
    expected = {"ignore": [1, 0, -1, -1, 1, -1, 0], "zeros": [1, 0, -1, 0, 1, 0, 0],
                "ones": [1, 0, -1, 1, 1, 1, 0]}
    for policy, want in expected.items():
        t = from_csv(csv, label_columns=cols, uncertain=policy, label_map=label_map)
        assert t.attrs["label_columns"] == ["pleural_effusion", "nodule"]
        assert t["pleural_effusion"].tolist() == want, policy
        assert not {"Effusion", "Pleural Effusion", "Nodule"} & set(t.columns)
        s = t.attrs["label_summary"]["labels"]["pleural_effusion"]
        assert s["columns"] == ["Effusion", "Pleural Effusion"]
        assert (s["positive"], s["negative"], s["uncertain"], s["blank"]) == (2, 2, 2, 1)
        assert s["conflicting"] == 1  # row 0: one column positive, the other negative
    assert t.attrs["label_summary"]["label_map"] == label_map


def test_merge_and_resolve_are_the_documented_rules():
    a = np.array([1, 1, 0, 0, -1, -2, -2], np.int8)
    b = np.array([0, -2, -1, -2, -1, -1, 0], np.int8)
    merged, conflicting = merge_label_states([a, b])
    assert merged.tolist() == [1, 1, 0, -2, -1, -2, -2]
    assert conflicting.tolist() == [True, False, False, False, False, False, False]
    with pytest.raises(ValueError, match="expected one of"):
        resolve_uncertain(merged, "half")


def test_label_map_name_collision_is_refused(tmp_path):
    csv = _csv(tmp_path, {"Effusion": ["1", "0"], "effusion": ["0", "0"]})
    with pytest.raises(DatasetError, match="collides with the column 'effusion'"):
        from_csv(csv, label_columns=["Effusion"], label_map={"Effusion": "effusion"})
    with pytest.raises(DatasetError, match="collides with the column 'group'"):
        from_csv(csv, label_columns=["Effusion"], label_map={"Effusion": "group"})
    # listing the other column merges the two instead
    t = from_csv(csv, label_columns=["Effusion", "effusion"],
                 label_map={"Effusion": "effusion"})
    assert t["effusion"].tolist() == [1, 0]


def test_single_label_map_and_uncertain_refused(tmp_path):
    csv = _csv(tmp_path, {"finding": ["Effusion", "Pleural Effusion", "normal"]})
    m = {"Effusion": "pleural_effusion", "Pleural Effusion": "pleural_effusion"}
    t = from_csv(csv, label_column="finding", label_map=m)
    assert t["label"].tolist() == ["pleural_effusion", "pleural_effusion", "normal"]
    assert t.attrs["label_summary"]["classes"] == {"normal": 1, "pleural_effusion": 2}
    with pytest.raises(DatasetError, match="applies to multi-label tables"):
        from_csv(csv, label_column="finding", uncertain="ignore")


def test_folder_class_names_through_label_map(tmp_path):
    for cls in ("Effusion", "normal"):
        (tmp_path / cls).mkdir()
        from PIL import Image

        Image.new("L", (8, 8)).save(tmp_path / cls / "a.png")
    t = from_folder(tmp_path, label_map={"Effusion": "pleural_effusion"})
    assert sorted(t["label"]) == ["normal", "pleural_effusion"]


def test_splits_stratify_known_positives_with_missing_labels(tmp_path):
    rng = np.random.default_rng(0)
    n = 60
    a = rng.choice(["1", "0", "", "-1"], n, p=[0.3, 0.3, 0.3, 0.1])
    b = np.where(np.arange(n) % 4 == 0, "1", np.where(np.arange(n) % 3 == 0, "", "0"))
    csv = _csv(tmp_path, {"a": list(a), "b": list(b)})
    t = split_table(from_csv(csv, label_columns=["a", "b"], uncertain="ignore"),
                    val=0.2, test=0.2, seed=0)
    for name in ("a", "b"):
        positives = t[t[name] == 1].groupby("split").size()
        total = int((t[name] == 1).sum())
        # every split holds about its share of the known positives (one patient each)
        assert positives.get("test", 0) == pytest.approx(0.2 * total, abs=1.01)
        assert positives.get("val", 0) == pytest.approx(0.2 * total, abs=1.01)
    assert (t[["a", "b"]] == MISSING).to_numpy().sum() > 0  # missing kept through the split
