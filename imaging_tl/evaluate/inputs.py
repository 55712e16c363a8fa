"""The input conventions of the evaluation: tasks, label/score arrays, names, JSON floats."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = ["TASKS", "Task", "as_arrays", "check_task", "column_names", "finite"]

Task = Literal["binary", "multiclass", "multilabel"]
TASKS = ("binary", "multiclass", "multilabel")


def finite(x: float) -> float | None:
    """A float for JSON: NaN and infinity become None.

    Examples
    --------
    >>> finite(0.5), finite(float("nan"))
    (0.5, None)
    """
    x = float(x)
    return x if math.isfinite(x) else None


def check_task(task: str) -> None:
    """Raise ``ValueError`` unless ``task`` is one of :data:`TASKS`.

    Examples
    --------
    >>> check_task("binary")
    >>> check_task("regression")
    Traceback (most recent call last):
    ...
    ValueError: task='regression': expected one of binary, multiclass, multilabel
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r}: expected one of {', '.join(TASKS)}")


def as_arrays(
    y_true: Any, y_score: Any, task: str, name: str = "y_true"
) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and scores; return int labels and float scores in the conventions.

    Parameters
    ----------
    y_true, y_score : array_like
        Labels and scores of one task (see :mod:`imaging_tl.evaluate`).
    task : {"binary", "multiclass", "multilabel"}
    name : str
        How error messages call the labels.

    Returns
    -------
    (y, s) : tuple of numpy.ndarray
        int64 labels (multilabel: -1 for missing) and float64 scores; a binary two-column
        or ``(n, 1)`` score becomes ``(n,)``.

    Examples
    --------
    >>> y, s = as_arrays([0, 1], [[0.8, 0.2], [0.3, 0.7]], "binary")
    >>> y.tolist(), s.tolist()
    ([0, 1], [0.2, 0.7])
    """
    check_task(task)
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=np.float64)
    if len(y) != len(s):
        raise ValueError(f"{name} has {len(y)} rows but the scores have {len(s)}")
    if len(y) == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinity")
    if task == "binary":
        return _binary_arrays(y, s, name)
    if task == "multiclass":
        return _multiclass_arrays(y, s, name)
    return _multilabel_arrays(y, s, name)


def _binary_arrays(y: np.ndarray, s: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    if s.ndim == 2 and s.shape[1] == 2:  # two-column softmax output: keep the positive
        s = s[:, 1]
    elif s.ndim == 2 and s.shape[1] == 1:  # a Keras sigmoid output (n, 1)
        s = s[:, 0]
    if s.ndim != 1:
        raise ValueError(f"binary scores must have shape (n,), got {s.shape}")
    y = y.astype(float).ravel()
    if not np.all(np.isin(y, (0.0, 1.0))):
        raise ValueError(f"binary {name} must be 0 or 1")
    return y.astype(np.int64), s


def _multiclass_arrays(
    y: np.ndarray, s: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"multiclass scores must have shape (n, C>=2), got {s.shape}")
    y = y.astype(float).ravel()
    if not np.all((y == np.round(y)) & (y >= 0) & (y < s.shape[1])):
        raise ValueError(f"multiclass {name} must be class indices 0..{s.shape[1] - 1}")
    return y.astype(np.int64), s


def _multilabel_arrays(
    y: np.ndarray, s: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    y = y.astype(float)
    if y.ndim == 1:
        y = y[:, None]
    if s.ndim == 1:
        s = s[:, None]
    if y.shape != s.shape:
        raise ValueError(f"multilabel {name} has shape {y.shape} but the scores {s.shape}")
    y = np.where(np.isnan(y), -1.0, y)
    if not np.all(np.isin(y, (-1.0, 0.0, 1.0))):
        raise ValueError(f"multilabel {name} must be 1, 0, or -1/NaN for missing")
    return y.astype(np.int64), s


def column_names(names: Sequence[str] | None, c: int, prefix: str = "class") -> list[str]:
    """The names of ``c`` score columns: ``names`` checked, or ``<prefix>_<k>``.

    Examples
    --------
    >>> column_names(None, 2, prefix="label")
    ['label_0', 'label_1']
    """
    if names is None:
        return [f"{prefix}_{k}" for k in range(c)]
    out = [str(x) for x in names]
    if len(out) != c:
        raise ValueError(f"class_names has {len(out)} names but the scores have {c} columns")
    return out
