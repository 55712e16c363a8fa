"""Labels of a dataset table: which columns, which task, the model's targets, class weights.

Single-label tables have one ``label`` column of class names (binary or multi-class);
multi-label tables have several columns of 1 (positive), 0 (negative) and ``MISSING`` (-1,
unknown: blank in the CSV, or uncertain under the U-Ignore policy) named in
``df.attrs["label_columns"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl.data.errors import DatasetError

__all__ = ["MISSING", "NEGATIVE_NAMES", "UNCERTAIN_POLICIES", "class_weights", "encode_labels",
           "label_columns", "map_class_names", "merge_label_states", "order_classes",
           "parse_multilabel", "resolve_uncertain", "sample_weights", "task_of"]


def label_columns(df: pd.DataFrame) -> list[str]:
    """The label columns of a dataset table.

    Parameters
    ----------
    df : pandas.DataFrame
        A table from :func:`~imaging_tl.data.table.from_folder`,
        :func:`~imaging_tl.data.table.from_csv` or
        :func:`~imaging_tl.data.table.from_dicom_headers`.

    Returns
    -------
    list of str
        ``df.attrs["label_columns"]`` when set, else ``["label"]`` when that column exists,
        else ``[]`` (unlabelled).

    Examples
    --------
    >>> import pandas as pd
    >>> label_columns(pd.DataFrame({"path": ["a"], "label": ["x"]}))
    ['label']
    """
    cols = df.attrs.get("label_columns")
    if cols:
        return list(cols)
    return ["label"] if "label" in df.columns else []


def task_of(df: pd.DataFrame) -> str:
    """``"multilabel"``, ``"binary"``, ``"multiclass"`` or ``"unlabelled"`` for a table.

    Examples
    --------
    >>> import pandas as pd
    >>> task_of(pd.DataFrame({"path": ["a", "b"], "label": ["x", "y"]}))
    'binary'
    """
    cols = label_columns(df)
    if not cols:
        return "unlabelled"
    if cols != ["label"]:
        return "multilabel"
    return "binary" if df["label"].nunique() <= 2 else "multiclass"


#: Class names read as the negative class ("no finding"); it goes first, the positive second.
NEGATIVE_NAMES = frozenset({"normal", "negative", "healthy", "no", "none", "0", "false",
                            "absent", "no_finding", "no finding", "benign", "control"})


def order_classes(labels: Any) -> list[str]:
    """Class names in model order when no ``task.classes`` says otherwise: sorted, a name
    that reads as "no finding" (:data:`NEGATIVE_NAMES`) first, so a binary task's positive
    class is the last.

    Examples
    --------
    >>> order_classes(["nodule", "normal", "nodule"])
    ['normal', 'nodule']
    """
    names = sorted({str(c) for c in labels})
    return sorted(names, key=lambda c: (c.strip().lower() not in NEGATIVE_NAMES, c))


def encode_labels(
    df: pd.DataFrame, classes: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str], str]:
    """Labels as the model's targets: ``(y, class_names, task)``.

    - binary: float32 ``(N,)``, 1 for ``classes[1]`` (the positive class; default: the
      second in sorted order);
    - multiclass: int32 ``(N,)`` indices into ``classes`` (sparse targets);
    - multilabel: float32 ``(N, L)`` 0/1 and ``MISSING`` (-1) for a missing label (the
      masked loss and the metrics skip it); ``classes`` are the label columns.

    Parameters
    ----------
    df : pandas.DataFrame
        A labelled table.
    classes : sequence of str, optional
        Class order (default: sorted). Must cover every label.

    Examples
    --------
    >>> import pandas as pd
    >>> y, names, task = encode_labels(pd.DataFrame({"label": ["no", "yes", "no"]}))
    >>> y.tolist(), names, task
    ([0.0, 1.0, 0.0], ['no', 'yes'], 'binary')
    """
    cols = label_columns(df)
    if not cols:
        raise DatasetError(["the table has no label column"], df.attrs.get("source"))
    if cols != ["label"]:
        return df[cols].to_numpy(np.float32), list(cols), "multilabel"
    labels = df["label"].astype(str)
    names = list(classes) if classes is not None else sorted(labels.unique())
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise DatasetError([f"label {u!r} not in classes {names}" for u in unknown],
                           df.attrs.get("source"))
    idx = pd.Categorical(labels, categories=names).codes
    if len(names) == 2:
        return idx.astype(np.float32), names, "binary"
    return idx.astype(np.int32), names, "multiclass"


def _class_indices(y: np.ndarray, task: str) -> np.ndarray:
    """Class index per sample: sparse labels as they are, one-hot rows by their argmax."""
    return y.argmax(-1) if (task == "multiclass" and y.ndim == 2) else y.reshape(-1)


def class_weights(
    y: np.ndarray, task: str, class_weight: str | dict[Any, float] | None
) -> dict[int, float] | None:
    """Weight per class index, as Keras' ``class_weight`` takes it.

    Parameters
    ----------
    y : numpy.ndarray
        Targets from :func:`encode_labels` (multi-class may also be one-hot rows).
    task : {"binary", "multiclass", "multilabel"}
        Multi-label tasks have no class weights: weight the positives in the loss.
    class_weight : "balanced", dict or None
        ``"balanced"``: ``n / (k * count)`` per class present (scikit-learn's
        ``compute_class_weight``); a dict: its values per class index; None: no weights.

    Returns
    -------
    dict of int to float, or None

    Examples
    --------
    >>> class_weights(np.array([0, 0, 0, 1.0]), "binary", "balanced")
    {0: 0.6666666666666666, 1: 2.0}
    >>> class_weights(np.array([0, 1]), "binary", {1: 3})
    {1: 3.0}
    """
    if class_weight is None:
        return None
    if task == "multilabel":
        raise ValueError("class_weight is not supported for multilabel tasks "
                         "(weight the positives in the loss instead)")
    labels = _class_indices(y, task).astype(int)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight={class_weight!r}: expected 'balanced' or a dict")
        from sklearn.utils.class_weight import compute_class_weight

        classes = np.unique(labels)
        w = compute_class_weight("balanced", classes=classes, y=labels)
        return {int(c): float(v) for c, v in zip(classes, w, strict=True)}
    return {int(k): float(v) for k, v in dict(class_weight).items()}


def sample_weights(
    y: np.ndarray, task: str, class_weight: str | dict[Any, float] | None
) -> np.ndarray | None:
    """Per-sample weights (float32) from :func:`class_weights`; classes not given weigh 1.

    Examples
    --------
    >>> sample_weights(np.array([0, 0, 0, 1.0]), "binary", "balanced").tolist()
    [0.6666666865348816, 0.6666666865348816, 0.6666666865348816, 2.0]
    """
    cw = class_weights(y, task, class_weight)
    if cw is None:
        return None
    return np.array([cw.get(int(c), 1.0) for c in _class_indices(y, task)], np.float32)


# --- multi-label cells: positive, negative, missing (blank), uncertain -------------------

MISSING = -1
"""The value of a missing label in a table's label column and in the model's targets
(the masked loss and the metrics skip it)."""

UNCERTAIN_POLICIES = ("ignore", "zeros", "ones")
"""CheXpert's policies for uncertain labels: U-Ignore (masked like a missing label),
U-Zeros (read as negative), U-Ones (read as positive)."""

_UNCERTAIN = -2  # a cell state while parsing; never stored in a table
_CELL_STATES = {
    "1": 1, "1.0": 1, "true": 1, "yes": 1,
    "0": 0, "0.0": 0, "false": 0, "no": 0,
    "": MISSING, "nan": MISSING, "na": MISSING, "n/a": MISSING,
    "-1": _UNCERTAIN, "-1.0": _UNCERTAIN, "u": _UNCERTAIN, "uncertain": _UNCERTAIN,
}
_RESERVED = ("path", "frame", "label", "group", "group_key", "split", "fold")


def _cell_states(df: pd.DataFrame, col: str, problems: list[str]) -> np.ndarray:
    """The state of every cell of one CSV label column; unreadable cells go to ``problems``."""
    raw = df[col].astype(str)
    states = raw.str.strip().str.lower().map(_CELL_STATES)
    for i in np.flatnonzero(states.isna().to_numpy()):
        problems.append(
            f"row {i + 2}, column {col!r}: {raw.iloc[i]!r} is not 0/1 (nor true/false, "
            "yes/no), blank (missing) or -1/u/uncertain (uncertain)")
    return states.fillna(MISSING).to_numpy(np.int8)


def merge_label_states(states: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Merge the columns that one label is read from into one state per row.

    Positive when any column is positive; else uncertain when any is uncertain; else
    negative when any is negative (blank columns are ignored); else missing (all blank).
    States: 1 positive, 0 negative, ``MISSING`` (-1) blank, -2 uncertain.

    Returns
    -------
    (merged, conflicting) : tuple of numpy.ndarray
        The merged states (int8) and, per row, whether the columns disagreed (one
        positive, another negative).

    Examples
    --------
    >>> a = np.array([1, 0, -1, -1, 0], np.int8); b = np.array([0, -1, -1, -2, -2], np.int8)
    >>> merged, conflicting = merge_label_states([a, b])
    >>> merged.tolist(), conflicting.tolist()
    ([1, 0, -1, -2, -2], [True, False, False, False, False])
    """
    m = np.stack([np.asarray(s, np.int8) for s in states], axis=1)
    positive, negative = (m == 1).any(axis=1), (m == 0).any(axis=1)
    merged = np.where(positive, 1, np.where((m == _UNCERTAIN).any(axis=1), _UNCERTAIN,
                                            np.where(negative, 0, MISSING)))
    return merged.astype(np.int8), positive & negative


def resolve_uncertain(states: np.ndarray, policy: str) -> np.ndarray:
    """Labels (1, 0 or ``MISSING``) from cell states under an uncertain-label policy.

    Examples
    --------
    >>> s = np.array([1, 0, -1, -2], np.int8)
    >>> [resolve_uncertain(s, p).tolist() for p in ("ignore", "zeros", "ones")]
    [[1, 0, -1, -1], [1, 0, -1, 0], [1, 0, -1, 1]]
    """
    if policy not in UNCERTAIN_POLICIES:
        raise ValueError(f"uncertain={policy!r}: expected one of {UNCERTAIN_POLICIES}")
    value = {"ignore": MISSING, "zeros": 0, "ones": 1}[policy]
    return np.where(states == _UNCERTAIN, value, states).astype(np.int8)


def _canonical_sources(cols: Sequence[str], label_map: Mapping[str, str] | None
                       ) -> dict[str, list[str]]:
    """Canonical label name -> the CSV columns read into it, in the order of ``cols``."""
    out: dict[str, list[str]] = {}
    for c in cols:
        out.setdefault(str((label_map or {}).get(c, c)), []).append(c)
    return out


def _collisions(df: pd.DataFrame, sources: Mapping[str, list[str]]) -> list[str]:
    """Canonical names that would overwrite a column the table keeps."""
    read = {c for cs in sources.values() for c in cs}
    problems = []
    for name, cols in sources.items():
        if name in _RESERVED or (name in df.columns and name not in read):
            problems.append(f"label_map: {cols} -> {name!r} collides with the column "
                            f"{name!r}; pick another name (or list that column in "
                            "data.label_columns to merge it)")
    return problems


def parse_multilabel(
    df: pd.DataFrame, cols: Sequence[str], *, uncertain: str | None = None,
    label_map: Mapping[str, str] | None = None, source: str | None = None,
) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """Read multi-label CSV columns into label columns of 1, 0 and ``MISSING`` (-1).

    Cells (case and surrounding spaces ignored): ``1``/``1.0``/``true``/``yes`` positive,
    ``0``/``0.0``/``false``/``no`` negative, blank (or ``nan``, ``na``, ``n/a``)
    missing, ``-1``/``-1.0``/``u``/``uncertain`` uncertain. Anything else is an error
    naming the row and the column. Columns that ``label_map`` sends to one name are merged
    (:func:`merge_label_states`); then ``uncertain`` resolves the uncertain cells
    (:func:`resolve_uncertain`).

    Parameters
    ----------
    df : pandas.DataFrame
        The CSV as text (every cell a str).
    cols : sequence of str
        The CSV columns holding labels.
    uncertain : {"ignore", "zeros", "ones"}, optional
        The policy for uncertain cells. None: uncertain cells are an error (the choice
        changes what the model learns, so it is never made silently).
    label_map : mapping of str to str, optional
        CSV column -> canonical label name; columns it does not name keep their name,
        names it has that the CSV lacks are ignored (one map serves several datasets).
    source : str, optional
        The file, named in errors.

    Returns
    -------
    (table, labels, summary)
        ``df`` with the source columns replaced by int8 canonical label columns; the label
        names; and the per-label counts (JSON-ready): ``positive``, ``negative``,
        ``uncertain``, ``blank`` (cells after merging, before the policy), ``missing``
        (masked in training and evaluation), ``conflicting`` (merged columns disagreeing)
        and ``columns`` (the CSV columns read).

    Raises
    ------
    DatasetError
        Every unreadable cell; uncertain cells without a policy; a name collision.

    Examples
    --------
    >>> df = pd.DataFrame({"path": ["a", "b", "c"], "Effusion": ["1", "", "-1"],
    ...                    "Pleural Effusion": ["0", "0", ""]})
    >>> t, names, summary = parse_multilabel(
    ...     df, ["Effusion", "Pleural Effusion"], uncertain="ignore",
    ...     label_map={"Effusion": "effusion", "Pleural Effusion": "effusion"})
    >>> names, t["effusion"].tolist(), summary["labels"]["effusion"]["missing"]
    (['effusion'], [1, 0, -1], 1)
    """
    if uncertain is not None and uncertain not in UNCERTAIN_POLICIES:
        raise ValueError(f"uncertain={uncertain!r}: expected one of {UNCERTAIN_POLICIES}")
    sources = _canonical_sources(cols, label_map)
    problems = _collisions(df, sources)
    states = {c: _cell_states(df, c, problems) for c in dict.fromkeys(cols)}
    if problems:
        raise DatasetError(problems, source=source)
    out = df.drop(columns=list(states))
    summary: dict[str, Any] = {"uncertain_policy": uncertain,
                               "label_map": dict(label_map) if label_map else None,
                               "labels": {}}
    for name, cs in sources.items():
        merged, conflicting = merge_label_states([states[c] for c in cs])
        n_uncertain = int((merged == _UNCERTAIN).sum())
        if n_uncertain and uncertain is None:
            problems.append(f"label {name!r} (columns {cs}): {n_uncertain} uncertain cell(s) "
                            "(-1, u or uncertain); choose task.uncertain: ignore | zeros | "
                            "ones")
            continue
        values = resolve_uncertain(merged, uncertain or "ignore")
        out[name] = values
        summary["labels"][name] = {
            "columns": list(cs), "positive": int((merged == 1).sum()),
            "negative": int((merged == 0).sum()), "uncertain": n_uncertain,
            "blank": int((merged == MISSING).sum()), "missing": int((values == MISSING).sum()),
            "conflicting": int(conflicting.sum())}
    if problems:
        raise DatasetError(problems, source=source)
    return out, list(sources), summary


def map_class_names(labels: pd.Series, label_map: Mapping[str, str] | None) -> pd.Series:
    """Class names harmonised by ``label_map`` (values it does not name are kept).

    Examples
    --------
    >>> s = pd.Series(["Effusion", "Pleural Effusion", "normal"])
    >>> m = {"Effusion": "pleural_effusion", "Pleural Effusion": "pleural_effusion"}
    >>> map_class_names(s, m).tolist()
    ['pleural_effusion', 'pleural_effusion', 'normal']
    """
    if not label_map:
        return labels
    return labels.map(lambda v: label_map.get(v, v) if isinstance(v, str) else v)
