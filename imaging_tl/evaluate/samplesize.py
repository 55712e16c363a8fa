"""Small-sample honesty: how many cases a figure rests on, and saying so beside it.

A split with fewer than :data:`MIN_POSITIVES` positive or :data:`MIN_NEGATIVES` negative
cases, or fewer than :data:`MIN_PATIENTS` patients, gets a caution beside its metric (the
console and the report). A bootstrap interval whose two ends coincide at the printed
precision, or that could not be formed at all, is written as :data:`NO_INTERVAL` instead
of ``1.000-1.000``: a resample of four test images cannot tell us how uncertain an AUC is.

Cases are the rows a metric is computed on: images, or patients with
``evaluate.patient_level``. A multi-class split counts each class against the rest, a
multi-label split each label on the rows where it is known.

Examples
--------
>>> c = split_counts([0, 1, 1, 0], "binary", groups=["a", "b", "c", "c"],
...                  class_names=["normal", "nodule"])
>>> c["images"], c["patients"], c["classes"]["nodule"]
(4, 3, {'positives': 2, 'negatives': 2})
>>> format_estimate({"value": 1.0, "ci": [1.0, 1.0]})
'1.000 (too few cases for an interval)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["MIN_NEGATIVES", "MIN_PATIENTS", "MIN_POSITIVES", "NO_INTERVAL", "format_ci",
           "format_estimate", "small_sample_notes", "split_counts"]

#: below these counts (strictly fewer) a split's figures carry a caution
MIN_POSITIVES = 10
MIN_NEGATIVES = 10
MIN_PATIENTS = 20
#: what an interval that cannot be formed, or whose ends coincide, is printed as
NO_INTERVAL = "too few cases for an interval"


def split_counts(
    y: Any, task: str, *, groups: Any = None, class_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The cases a split's metrics rest on: rows, patients, positives and negatives.

    Parameters
    ----------
    y : array_like
        Labels in the conventions of :mod:`imaging_tl.evaluate` (binary 0/1, multiclass
        class index, multilabel ``(n, L)`` with -1 or NaN for missing).
    task : {"binary", "multiclass", "multilabel"}
    groups : array_like, optional
        Patient key per row; None when each row is a patient (patient-level evaluation)
        or no key is known (``patients`` is then None).
    class_names : sequence of str, optional
        Binary: ``[negative, positive]``; multiclass: the classes; multilabel: the labels.

    Returns
    -------
    dict
        ``images`` (rows), ``patients`` (or None), ``classes``: per counted class (the
        positive class of a binary task) ``{"positives": n, "negatives": n}``.

    Examples
    --------
    >>> split_counts([[1, 0], [0, -1], [1, 1]], "multilabel", class_names=["a", "b"])["classes"]
    {'a': {'positives': 2, 'negatives': 1}, 'b': {'positives': 1, 'negatives': 1}}
    """
    arr = np.asarray(y, dtype=float)
    n = int(arr.shape[0]) if arr.ndim else 0
    patients = None if groups is None else int(len(np.unique(np.asarray(groups).astype(str))))
    classes: dict[str, dict[str, int]] = {}
    if task == "binary":
        name = str(class_names[-1]) if class_names else "positive"
        pos = int(np.sum(arr == 1))
        classes[name] = {"positives": pos, "negatives": n - pos}
    elif task == "multiclass":
        names = list(class_names) if class_names else [str(i) for i in
                                                         range(int(np.nanmax(arr)) + 1)]
        for i, c in enumerate(names):
            pos = int(np.sum(arr == i))
            classes[str(c)] = {"positives": pos, "negatives": n - pos}
    else:
        arr = arr.reshape(n, -1)
        names = list(class_names) if class_names else [str(i) for i in range(arr.shape[1])]
        for j, c in enumerate(names):
            col = arr[:, j]
            classes[str(c)] = {"positives": int(np.sum(col == 1)),
                               "negatives": int(np.sum(col == 0))}
    return {"images": n, "patients": patients, "classes": classes}


def small_sample_notes(counts: Mapping[str, Any] | None, split: str = "test",
                       unit: str = "images") -> list[str]:
    """The cautions a split's counts call for, one line each (empty when none).

    Parameters
    ----------
    counts : dict
        :func:`split_counts` of the split (None: no caution).
    split : str
        The split's name, as the caution says it.
    unit : str
        What a case is (``images``, or ``patients`` for patient-level evaluation).

    Examples
    --------
    >>> small_sample_notes({"images": 4, "patients": 4,
    ...                     "classes": {"nodule": {"positives": 2, "negatives": 2}}})
    ['test split: 2 positive and 2 negative images for nodule (fewer than 10 each)', 'test split: 4 patients (fewer than 20)']
    >>> small_sample_notes({"images": 60, "patients": 20,
    ...                     "classes": {"nodule": {"positives": 10, "negatives": 50}}})
    []
    """  # noqa: E501
    if not counts:
        return []
    notes = []
    for name, c in (counts.get("classes") or {}).items():
        pos, neg = int(c["positives"]), int(c["negatives"])
        few_pos, few_neg = pos < MIN_POSITIVES, neg < MIN_NEGATIVES
        if few_pos and few_neg:
            notes.append(f"{split} split: {pos} positive and {neg} negative {unit} for "
                         f"{name} (fewer than {MIN_POSITIVES} each)")
        elif few_pos:
            notes.append(f"{split} split: {pos} positive {unit} for {name} (fewer than "
                         f"{MIN_POSITIVES})")
        elif few_neg:
            notes.append(f"{split} split: {neg} negative {unit} for {name} (fewer than "
                         f"{MIN_NEGATIVES})")
    patients = counts.get("patients")
    if patients is not None and patients < MIN_PATIENTS:
        notes.append(f"{split} split: {patients} patients (fewer than {MIN_PATIENTS})")
    return notes


def format_ci(ci: Sequence[Any] | None, *, digits: int = 3, sep: str = "-") -> str:
    """An interval as ``lo-hi``, or :data:`NO_INTERVAL` when it is missing or its ends
    coincide at ``digits`` decimals.

    Examples
    --------
    >>> format_ci([0.8123, 0.95]), format_ci([0.9166, 0.9171]), format_ci(None)
    ('0.812-0.950', 'too few cases for an interval', 'too few cases for an interval')
    """
    lo, hi = (list(ci) + [None, None])[:2] if ci is not None else (None, None)
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return NO_INTERVAL
    a, b = f"{float(lo):.{digits}f}", f"{float(hi):.{digits}f}"
    return NO_INTERVAL if a == b else f"{a}{sep}{b}"


def format_estimate(est: Mapping[str, Any] | None, *, confidence: float = 0.95,
                    bootstrapped: bool = True, digits: int = 3) -> str:
    """A metric with its interval: ``0.900 (95% CI 0.712-1.000)``.

    Parameters
    ----------
    est : dict
        ``{"value": v, "ci": [lo, hi]}`` as :func:`imaging_tl.evaluate.evaluate` writes.
    confidence : float
        The interval's coverage (its label).
    bootstrapped : bool
        Whether intervals were asked for (``bootstrap: 0`` asks for none: then no
        interval is mentioned).
    digits : int
        Decimals.

    Examples
    --------
    >>> format_estimate({"value": 0.9, "ci": [0.712, 1.0]})
    '0.900 (95% CI 0.712-1.000)'
    >>> format_estimate({"value": 0.917, "ci": [0.917, 0.917]})
    '0.917 (too few cases for an interval)'
    >>> format_estimate({"value": 0.9, "ci": [None, None]}, bootstrapped=False)
    '0.900'
    """
    if not est or est.get("value") is None:
        return "n/a"
    value = f"{float(est['value']):.{digits}f}"
    ci = est.get("ci")
    if not bootstrapped and (ci is None or None in list(ci)):
        return value
    text = format_ci(ci, digits=digits)
    if text == NO_INTERVAL:
        return f"{value} ({NO_INTERVAL})"
    return f"{value} ({round(100 * confidence):d}% CI {text})"
