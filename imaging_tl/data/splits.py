"""Patient-level splits: grouped, stratified, seeded, written out as ``splits.csv``.

- single-label tables: scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`
  (train/val/test are carved as one fold of ``round(1 / fraction)`` folds each);
- multi-label and unlabelled tables: iterative stratification (Sechidis et al., 2011) over
  *groups*: the ``iterative-stratification`` package stratifies single samples and cannot keep
  a patient's images together, so the small algorithm is written here with groups as the unit.

Every split is audited (:func:`imaging_tl.data.audit.audit_splits`, header checks) before it
is returned; :mod:`imaging_tl.data.splitfile` writes and reads ``splits.csv``.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl.data.audit import audit_splits
from imaging_tl.data.errors import DatasetError
from imaging_tl.data.labels import label_columns
from imaging_tl.data.splitfile import read_splits, write_splits

__all__ = [
    "SPLIT_NAMES",
    "crossval_table",
    "fold_split",
    "holdout_folds",
    "iterative_group_stratify",
    "kfold_table",
    "read_splits",
    "split_table",
    "write_splits",
]

SPLIT_NAMES = ("train", "val", "test")


def _label_matrix(df: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """N x L 0/1 matrix of the labels (one-hot for single-label tables).

    Multi-label: 1 where the label is positive; a missing label (-1) counts as not
    positive, so stratification spreads the known positives of every label.
    """
    cols = label_columns(df)
    if not cols:
        return np.zeros((len(df), 0), np.int64), []
    if cols == ["label"]:
        classes = sorted(df["label"].astype(str).unique())
        codes = pd.Categorical(df["label"].astype(str), categories=classes).codes
        return np.eye(len(classes), dtype=np.int64)[codes], classes
    return (df[cols].to_numpy(np.int64) == 1).astype(np.int64), cols


def _check_enough(df: pd.DataFrame, parts: int, what: str) -> None:
    """Every class (or positive label) must occur in at least ``parts`` groups."""
    y, names = _label_matrix(df)
    problems = []
    if df["group"].nunique() < parts:
        problems.append(f"only {df['group'].nunique()} group(s) (patients) for {what}")
    for j, name in enumerate(names):
        n_groups = df.loc[y[:, j] > 0, "group"].nunique()
        if n_groups < parts:
            problems.append(
                f"class {name!r}: {int(y[:, j].sum())} sample(s) in {n_groups} group(s), "
                f"needs at least {parts} group(s) for {what}"
            )
    if problems:
        raise DatasetError(problems, source=df.attrs.get("source"))


def iterative_group_stratify(
    y: np.ndarray,
    groups: Sequence[Any] | pd.Series | np.ndarray,
    fractions: Sequence[float],
    seed: int = 0,
) -> np.ndarray:
    """Assign groups to parts so that every label is spread as ``fractions`` say.

    Iterative stratification (Sechidis, Tsoumakas & Vlahavas, 2011) with groups as the unit:
    the rarest label still to place goes first; each group holding it goes to the part that
    still wants most of that label (ties: most samples wanted overall, then random).

    Parameters
    ----------
    y : numpy.ndarray
        ``N x L`` 0/1 label matrix (``L`` may be 0).
    groups : sequence
        Group key per sample (length ``N``).
    fractions : sequence of float
        Wanted share of each part; normalised to sum to 1.
    seed : int
        Seed of the random tie-breaks; same seed, same result.

    Returns
    -------
    numpy.ndarray
        Part index per sample (int, length ``N``); all samples of a group share it.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    >>> part = iterative_group_stratify(y, ["a", "b", "c", "d"], [0.5, 0.5], seed=0)
    >>> sorted(part[:2].tolist()), sorted(part[2:].tolist())  # each class in both halves
    ([0, 1], [0, 1])
    """
    rng = np.random.default_rng(seed)
    codes = group_order(groups)
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    y = np.asarray(y, dtype=np.float64).reshape(len(codes), -1)
    counts = np.zeros((n_groups, y.shape[1]))
    np.add.at(counts, codes, y)
    sizes = np.bincount(codes, minlength=n_groups).astype(np.float64)
    frac = np.asarray(fractions, dtype=np.float64)
    frac = frac / frac.sum()
    want_label = frac[:, None] * counts.sum(0)[None, :]
    want_total = frac * sizes.sum()
    part = np.full(n_groups, -1)
    order = rng.permutation(n_groups)  # random visiting order, fixed by the seed

    def place(g: int) -> None:
        # Highest remaining wish for the current label; ties by total wish, then random.
        key = np.lexsort((rng.random(len(frac)), want_total, want_label[:, label]))
        s = key[-1]
        part[g] = s
        want_label[s] -= counts[g]
        want_total[s] -= sizes[g]

    while True:
        left = order[part[order] < 0]
        if len(left) == 0:
            break
        remaining = counts[left].sum(0)
        if remaining.sum() == 0:
            for g in left:  # groups without any positive label: balance the sizes
                s = int(np.lexsort((rng.random(len(frac)), want_total))[-1])
                part[g] = s
                want_total[s] -= sizes[g]
            break
        nonzero = np.flatnonzero(remaining > 0)
        label = int(nonzero[np.argmin(remaining[nonzero])])
        for g in left[counts[left, label] > 0]:
            place(int(g))
    return part[codes]


def group_order(groups: Iterable[object]) -> np.ndarray:
    """Group codes numbered in order of first appearance in the table.

    The split sees these codes, not the group names: names read from DICOM headers are
    keyed pseudonyms, which differ between machines with different keys, and sorting them
    would make the same seed give another split elsewhere. The table's order (sorted by
    label and path, or the CSV's own) is the same everywhere.

    Examples
    --------
    >>> group_order(["pid:ff", "pid:00", "pid:ff"]).tolist()
    [0, 1, 0]
    """
    codes, _ = pd.factorize(pd.Series([str(g) for g in groups], dtype=object), sort=False)
    return codes


def _sgkf_parts(df: pd.DataFrame, n_splits: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold

    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    fold = np.empty(len(df), dtype=np.int64)
    with warnings.catch_warnings():
        # Too-small classes are reported by _check_enough with a clearer message.
        warnings.simplefilter("ignore", UserWarning)
        for i, (_, test_idx) in enumerate(cv.split(np.zeros(len(df)), df["label"].astype(str),
                                                   group_order(df["group"]))):
            fold[test_idx] = i
    return fold


def holdout_folds(val: float, test: float) -> tuple[int, int]:
    """The fold counts a single-label :func:`split_table` deals patients with.

    The test split is one of ``k_test`` folds of all patients, the validation split one of
    ``k_val`` folds of the rest.

    Examples
    --------
    >>> holdout_folds(0.2, 0.2), holdout_folds(0.15, 0.2)
    ((5, 4), (5, 5))
    """
    k_test = max(2, round(1 / test)) if test > 0 else 1
    k_val = max(2, round((1 - test) / val)) if val > 0 else 1
    return k_test, k_val


def split_table(
    df: pd.DataFrame,
    *,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    audit: bool = True,
) -> pd.DataFrame:
    """Split a table into train / val / test by group (patient), stratified by label.

    Parameters
    ----------
    df : pandas.DataFrame
        A dataset table (see :mod:`imaging_tl.data.table`).
    val, test : float
        Shares of the validation and test parts (0 leaves a part out). For single-label
        tables each share is rounded to ``1 / k`` (one fold of a stratified group k-fold).
    seed : int
        Same seed, same split.
    audit : bool
        Run the leakage audit (groups, SOPInstanceUIDs, paths) on the result.

    Returns
    -------
    pandas.DataFrame
        A copy with a ``split`` column (``"train"``, ``"val"``, ``"test"``).

    Raises
    ------
    DatasetError
        When a class occurs in fewer groups than there are parts.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"path": [f"/f{i}" for i in range(20)],
    ...                    "label": ["a", "b"] * 10, "group": [f"p{i // 2}" for i in range(20)]})
    >>> out = split_table(df, val=0.2, test=0.2, seed=1, audit=False)
    >>> out["split"].value_counts().sort_index().to_dict()
    {'test': 4, 'train': 12, 'val': 4}
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"val={val}, test={test}: each must be in [0, 1) and their sum below 1")
    parts = 1 + (val > 0) + (test > 0)
    _check_enough(df, parts, f"a {parts}-way split")
    out = df.copy()
    split = np.array(["train"] * len(df), dtype=object)
    if label_columns(df) == ["label"]:
        rest = np.ones(len(df), bool)
        if test > 0:
            fold = _sgkf_parts(df, holdout_folds(val, test)[0], seed)
            split[fold == 0] = "test"
            rest = fold != 0
        if val > 0:
            sub = df[rest]
            fold = _sgkf_parts(sub, holdout_folds(val, test)[1], seed + 1)
            idx = np.flatnonzero(rest)
            split[idx[fold == 0]] = "val"
    else:
        y, _ = _label_matrix(df)
        fr = [1 - val - test, val, test]
        names = [n for n, f in zip(SPLIT_NAMES, fr, strict=True) if f > 0]
        part = iterative_group_stratify(y, df["group"].astype(str), [f for f in fr if f > 0], seed)
        split = np.asarray(names, dtype=object)[part]
    out["split"] = split
    out.attrs = {**df.attrs, "seed": seed}
    if audit:
        audit_splits(out, split_column="split", pixels=False, near_duplicates=False)
    return out


def kfold_table(df: pd.DataFrame, k: int = 5, *, seed: int = 0, audit: bool = True) -> pd.DataFrame:
    """Assign each sample a fold ``0..k-1``, grouped by patient and stratified by label.

    Parameters
    ----------
    df : pandas.DataFrame
        A dataset table.
    k : int
        Number of folds (at least 2).
    seed : int
        Same seed, same folds.
    audit : bool
        Run the leakage audit on the folds.

    Returns
    -------
    pandas.DataFrame
        A copy with an integer ``fold`` column.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"path": [f"/f{i}" for i in range(12)],
    ...                    "label": ["a", "b"] * 6, "group": [f"p{i}" for i in range(12)]})
    >>> sorted(kfold_table(df, 3, audit=False)["fold"].value_counts().tolist())
    [4, 4, 4]
    """
    if k < 2:
        raise ValueError(f"k={k}: need at least 2 folds")
    _check_enough(df, k, f"{k}-fold cross-validation")
    out = df.copy()
    if label_columns(df) == ["label"]:
        out["fold"] = _sgkf_parts(df, k, seed)
    else:
        y, _ = _label_matrix(df)
        out["fold"] = iterative_group_stratify(y, df["group"].astype(str), [1.0] * k, seed)
    out.attrs = {**df.attrs, "seed": seed}
    if audit:
        audit_splits(out, split_column="fold", pixels=False, near_duplicates=False)
    return out


def crossval_table(df: pd.DataFrame, k: int = 5, *, test: float = 0.2, seed: int = 0,
                   audit: bool = True) -> pd.DataFrame:
    """A test split outside the folds, and ``k`` folds of the other patients.

    The test split is carved as :func:`split_table` carves it (grouped by patient,
    stratified, one fold of ``round(1 / test)``), the rest is dealt into folds by
    :func:`kfold_table` (seed ``seed + 1``). The seed fixes both.

    Parameters
    ----------
    df : pandas.DataFrame
        A dataset table.
    k : int
        Number of cross-validation folds (at least 2).
    test : float
        Share of the test split (in (0, 1)).
    seed : int
        Same seed, same test split and folds.
    audit : bool
        Run the leakage audit over the test split and the folds.

    Returns
    -------
    pandas.DataFrame
        A copy with an integer ``fold`` column: ``-1`` for the test split, else ``0..k-1``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"path": [f"/f{i}" for i in range(30)],
    ...                    "label": ["a", "b"] * 15, "group": [f"p{i}" for i in range(30)]})
    >>> out = crossval_table(df, 3, test=0.2, audit=False)
    >>> out["fold"].value_counts().sort_index().to_dict()
    {-1: 6, 0: 8, 1: 8, 2: 8}
    """
    if not 0 < test < 1:
        raise ValueError(f"test={test}: must be in (0, 1)")
    held = split_table(df, val=0, test=test, seed=seed, audit=False)
    rest = held["split"] != "test"
    folds = kfold_table(df[rest.to_numpy()], k, seed=seed + 1, audit=False)["fold"]
    out = df.copy()
    fold = np.full(len(df), -1, dtype=np.int64)
    fold[rest.to_numpy()] = folds.to_numpy()
    out["fold"] = fold
    out.attrs = {**df.attrs, "seed": seed}
    if audit:
        audit_splits(out, split_column="fold", pixels=False, near_duplicates=False)
    return out


def fold_split(df: pd.DataFrame, fold: int) -> pd.DataFrame:
    """The train / val / test splits of one fold of a :func:`crossval_table`: the fold is
    the validation split, the other folds train, fold ``-1`` is the test split.

    Examples
    --------
    >>> import pandas as pd
    >>> fold_split(pd.DataFrame({"fold": [-1, 0, 1, 2]}), 1)["split"].tolist()
    ['test', 'train', 'val', 'train']
    """
    out = df.copy()
    f = out["fold"].to_numpy()
    out["split"] = np.where(f < 0, "test", np.where(f == fold, "val", "train"))
    return out
