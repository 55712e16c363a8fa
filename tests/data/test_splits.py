"""Patient-level splits: never a shared patient, stratified, seeded, written and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imaging_tl.data import DatasetError, kfold_table, read_splits, split_table, write_splits
from imaging_tl.data.splits import iterative_group_stratify


def random_table(seed: int, n_groups: int, n_classes: int, multilabel: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_groups)
    groups = np.repeat([f"p{g}" for g in range(n_groups)], sizes)
    n = len(groups)
    df = pd.DataFrame({"path": [f"/data/img{i}.dcm" for i in range(n)], "group": groups})
    if multilabel:
        cols = [f"f{j}" for j in range(n_classes)]
        for j, c in enumerate(cols):
            df[c] = (rng.random(n) < 0.2 + 0.15 * j).astype(int)
        df.attrs["label_columns"] = cols
    else:
        # Patient-level labels mostly, with a few mixed patients.
        per_group = rng.integers(0, n_classes, n_groups)
        df["label"] = [f"c{per_group[int(g[1:])]}" for g in groups]
        flip = rng.random(n) < 0.05
        df.loc[flip, "label"] = [f"c{k}" for k in rng.integers(0, n_classes, flip.sum())]
        df.attrs["label_columns"] = ["label"]
    return df


def groups_disjoint(df: pd.DataFrame, col: str) -> bool:
    return bool((df.groupby("group")[col].nunique() == 1).all())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_groups=st.integers(12, 60),
       n_classes=st.integers(2, 4), multilabel=st.booleans(), split_seed=st.integers(0, 99))
def test_grouped_splits_never_share_a_patient(seed, n_groups, n_classes, multilabel, split_seed):
    df = random_table(seed, n_groups, n_classes, multilabel)
    try:
        out = split_table(df, val=0.2, test=0.2, seed=split_seed, audit=False)
    except DatasetError:
        return  # a class in fewer than 3 patients: refused, checked below
    assert groups_disjoint(out, "split")
    assert set(out["split"]) <= {"train", "val", "test"}
    try:
        folds = kfold_table(df, 3, seed=split_seed, audit=False)
    except DatasetError:
        return
    assert groups_disjoint(folds, "fold")


@pytest.mark.parametrize("multilabel", [False, True])
def test_stratification_within_tolerance(multilabel: bool) -> None:
    df = random_table(1, 600, 3, multilabel)
    out = split_table(df, val=0.2, test=0.2, seed=0)
    cols = df.attrs["label_columns"]
    if multilabel:
        overall = df[cols].mean()
        for name, part in out.groupby("split"):
            assert np.abs(part[cols].mean() - overall).max() < 0.03, name
    else:
        overall = df["label"].value_counts(normalize=True)
        for name, part in out.groupby("split"):
            share = part["label"].value_counts(normalize=True).reindex(overall.index)
            assert np.abs(share - overall).max() < 0.03, name
    sizes = out["split"].value_counts(normalize=True)
    assert abs(sizes["test"] - 0.2) < 0.03 and abs(sizes["val"] - 0.2) < 0.04


def test_same_seed_same_split_other_seed_other_split() -> None:
    df = random_table(5, 80, 2, False)
    a = split_table(df, seed=3)["split"]
    assert a.equals(split_table(df, seed=3)["split"])
    assert not a.equals(split_table(df, seed=4)["split"])
    m = random_table(5, 80, 3, True)
    assert kfold_table(m, 4, seed=1)["fold"].equals(kfold_table(m, 4, seed=1)["fold"])


def test_iterative_stratify_keeps_rare_label_in_every_part() -> None:
    rng = np.random.default_rng(0)
    y = np.zeros((300, 2), int)
    y[rng.choice(300, 10, replace=False), 0] = 1  # a rare finding in 10 patients
    y[:, 1] = rng.random(300) < 0.5
    part = iterative_group_stratify(y, [f"p{i}" for i in range(300)], [0.6, 0.2, 0.2], seed=0)
    assert [int(y[part == k, 0].sum()) for k in range(3)] == [6, 2, 2]


def test_class_too_small_for_the_split_is_named() -> None:
    df = pd.DataFrame({"path": [f"/f{i}" for i in range(10)], "group": [f"p{i}" for i in range(10)],
                       "label": ["common"] * 8 + ["rare"] * 2})
    with pytest.raises(DatasetError, match="class 'rare'.*needs at least 3 group"):
        split_table(df)
    with pytest.raises(DatasetError, match="class 'rare'.*5-fold"):
        kfold_table(df, 5)


def test_write_and_read_splits(tmp_path: Path) -> None:
    df = random_table(2, 30, 2, False)
    out = split_table(df, seed=0)
    path = write_splits(out, tmp_path / "run" / "splits.csv")
    back = read_splits(path)
    assert {"path", "split", "group", "label"} <= set(back.columns)
    assert back["split"].tolist() == out["split"].tolist()
    # raw group values are written as keyed pseudonyms (issue 22 class 9)
    from imaging_tl.io.pseudonyms import pseudonymize

    assert back["group"].tolist() == pseudonymize(out["group"].astype(str))


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 10_000), n_groups=st.integers(6, 200),
       n_classes=st.integers(2, 6), multilabel=st.booleans(), k=st.integers(2, 6))
def test_grouped_kfold_never_shares_a_patient_thorough(seed, n_groups, n_classes, multilabel, k):
    df = random_table(seed, n_groups, n_classes, multilabel)
    try:
        folds = kfold_table(df, k, seed=seed)
    except DatasetError:
        return
    assert groups_disjoint(folds, "fold")
    assert set(folds["fold"]) == set(range(k))


@pytest.mark.parametrize("multilabel", [False, True])
def test_the_split_does_not_depend_on_the_pseudonym_key(multilabel: bool) -> None:
    # folder tables hold keyed pseudonyms as groups; another key (another machine) renames
    # every group but must not move any file to another split
    from imaging_tl.io.pseudonyms import pseudonym

    rng = np.random.default_rng(5)
    ids = [f"MRN{i // 2:04d}" for i in range(60)]
    base = {"path": [f"/d/{i:03d}.dcm" for i in range(60)]}
    if multilabel:
        labels = {f"f{j}": rng.integers(0, 2, 60) for j in range(3)}
    else:
        labels = {"label": rng.choice(["a", "b"], 60)}
    parts = []
    for salt in ("site-key-1", "site-key-2"):
        groups = [pseudonym(salt + i, "pid") for i in ids]  # as if under another key
        df = pd.DataFrame({**base, **labels, "group": groups})
        parts.append(split_table(df, val=0.2, test=0.2, seed=3, audit=False)["split"].tolist())
        kf = kfold_table(df, 4, seed=3, audit=False)["fold"].tolist()
        parts.append(kf)
    assert parts[0] == parts[2] and parts[1] == parts[3]
