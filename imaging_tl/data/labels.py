"""Labels of a dataset table: which columns, which task, the model's targets, class weights.

Single-label tables have one ``label`` column of class names (binary or multi-class);
multi-label tables have several 0/1 columns named in ``df.attrs["label_columns"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl.data.errors import DatasetError

__all__ = ["class_weights", "encode_labels", "label_columns", "sample_weights", "task_of"]


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


def encode_labels(
    df: pd.DataFrame, classes: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str], str]:
    """Labels as the model's targets: ``(y, class_names, task)``.

    - binary: float32 ``(N,)``, 1 for ``classes[1]`` (the positive class; default: the
      second in sorted order);
    - multiclass: int32 ``(N,)`` indices into ``classes`` (sparse targets);
    - multilabel: float32 ``(N, L)`` 0/1, ``classes`` are the label columns.

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
