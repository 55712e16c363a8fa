"""The evaluation of a test split: threshold and temperature fitted on validation, every
metric with its bootstrap CI, calibration, as one JSON-ready dict."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from imaging_tl.evaluate.aggregation import Aggregation, aggregate_by_group
from imaging_tl.evaluate.calibration import apply_temperature, fit_temperature, reliability_data
from imaging_tl.evaluate.inputs import Task, as_arrays, check_task, finite
from imaging_tl.evaluate.metrics import binary_metrics, multiclass_metrics, multilabel_metrics
from imaging_tl.evaluate.metrics_view import Metrics
from imaging_tl.evaluate.samplesize import small_sample_notes, split_counts
from imaging_tl.evaluate.thresholds import choose_threshold

__all__ = ["evaluate"]


def evaluate(
    y_true: Any, y_score: Any, *, task: Task = "binary", groups: Any = None,
    val_true: Any = None, val_score: Any = None, val_groups: Any = None,
    class_names: Sequence[str] | None = None, operating_point: str = "youden",
    target_sensitivity: float = 0.9, threshold: float = 0.5,
    aggregate: Aggregation | None = None, temperature_scaling: bool = False,
    n_bootstraps: int = 1000, confidence: float = 0.95, n_bins: int = 10, seed: int = 0,
    top_k: int = 3, units: Any = None, val_units: Any = None,
) -> dict[str, Any]:
    """Evaluate test predictions; choices (threshold, temperature) are fitted on validation.

    Parameters
    ----------
    y_true, y_score : array_like
        Test labels and probabilities (see the conventions of :mod:`imaging_tl.evaluate`).
    task : {"binary", "multiclass", "multilabel"}
    groups : array_like, optional
        Patient key per test image: CIs resample patients; needed for ``aggregate``.
    val_true, val_score, val_groups : array_like, optional
        Validation split. The operating point and the temperature are chosen here and
        applied unchanged to test. Without it a data-driven operating point (or the
        temperature) would be fitted on test, which is optimistic: that raises.
    class_names : sequence of str, optional
        Class (multiclass) or label (multilabel) names; binary: ``[negative, positive]``.
    operating_point : {"youden", "sensitivity", "fixed"}
        How the binary threshold is chosen, see :func:`choose_threshold`.
    target_sensitivity, threshold : float
        Parameters of the ``sensitivity`` and ``fixed`` operating points.
    aggregate : {"max", "mean", "top_k_mean", "noisy_or"}, optional
        Evaluate per patient (or per ``units``): aggregate each one's rows first
        (:func:`~imaging_tl.evaluate.aggregation.aggregate_by_group`; ``top_k`` for
        ``top_k_mean``).
    units, val_units : array_like, optional
        With ``aggregate``: the unit of each row (e.g. its series) to aggregate by, instead
        of its patient; the CIs then resample the units' patients (``groups``), and
        ``level`` is ``"series"``.
    temperature_scaling : bool
        Fit a temperature on validation and report the test calibration after scaling
        (``calibration.temperature``, ``ece_calibrated``, ``reliability_calibrated``).
        Discrimination metrics and the threshold stay on the model's own probabilities.
    n_bootstraps, confidence, seed : int, float, int
        Bootstrap resamples for the CIs (0: no CIs), their coverage, the bootstrap seed.
    n_bins : int
        Bins of the reliability diagram.

    Returns
    -------
    dict
        JSON-serialisable: ``task``, ``level`` ("image" or "patient"), ``bootstrap``
        (how the CIs were made), task metrics (see :func:`binary_metrics`,
        :func:`multiclass_metrics`, :func:`multilabel_metrics`), ``operating_point`` for
        binary tasks, ``calibration`` (ECE, reliability bins, temperature),
        ``sample_size`` (:func:`split_counts` of ``test`` and ``validation``) and
        ``small_sample`` (the cautions they call for, see :func:`small_sample_notes`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200); s = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    >>> m = evaluate(y[100:], s[100:], val_true=y[:100], val_score=s[:100], n_bootstraps=200)
    >>> m["operating_point"]["chosen_on"], len(m["roc_auc"]["ci"])
    ('validation', 2)
    """
    check_task(task)
    y, s = as_arrays(y_true, y_score, task)
    val = None
    if val_true is not None and val_score is not None:
        val = as_arrays(val_true, val_score, task, name="val_true")
    n_images = len(y)
    val_patients = _n_groups(val_groups) if val is not None else None
    level = "image" if aggregate is None else "patient" if units is None else "series"
    if aggregate is not None:
        y, s, val, groups, val_groups = _per_unit(
            y, s, val, (groups, val_groups), (units, val_units), task, aggregate, top_k)
        if level == "series":
            val_patients = _n_groups(val_groups) if val is not None else None
    out: dict[str, Any] = {
        "task": task,
        "level": level,
        "n_images": n_images,
        "n_patients": len(y) if level == "patient" else _n_groups(groups),
        "bootstrap": _bootstrap_info(n_bootstraps, confidence, seed,
                                     patients=groups is not None or aggregate is not None),
        "calibration": _calibration(y, s, val, task, n_bins, temperature_scaling),
    }
    if task == "binary":
        out["operating_point"] = _operating_point(y, s, val, operating_point,
                                                  target_sensitivity, threshold)
    out.update(_sample_size(y, val, task, class_names, out["n_patients"], val_patients,
                            out["level"]))
    if level == "series":
        out["n_series"] = len(y)
    common = {"groups": groups, "n_bootstraps": n_bootstraps, "confidence": confidence,
              "seed": seed}
    out.update(_task_metrics(y, s, task, class_names, out.get("operating_point"), common))
    return Metrics(out)  # a dict that shows itself in a notebook


def _sample_size(
    y: np.ndarray, val: tuple[np.ndarray, np.ndarray] | None, task: Task,
    class_names: Sequence[str] | None, n_patients: int | None, val_patients: int | None,
    level: str,
) -> dict[str, Any]:
    """The ``sample_size`` of test and validation and the ``small_sample`` cautions."""
    sizes: dict[str, Any] = {}
    for name, labels, patients in (("test", y, n_patients),
                                   ("validation", val[0] if val else None, val_patients)):
        if labels is None:
            continue
        counts = split_counts(labels, task, class_names=class_names)
        # patient level: every row is a patient
        counts["patients"] = len(labels) if level == "patient" else patients
        sizes[name] = counts
    unit = {"patient": "patients", "series": "series"}.get(level, "images")
    notes = [n for name, c in sizes.items() for n in small_sample_notes(c, name, unit)]
    return {"sample_size": sizes, "small_sample": notes}


def _per_unit(
    y: np.ndarray, s: np.ndarray, val: tuple[np.ndarray, np.ndarray] | None,
    groups: tuple[Any, Any], units: tuple[Any, Any], task: Task, how: Aggregation, top_k: int,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None, Any, Any]:
    """Test (and validation) rows aggregated to one row per patient, or per unit (series).

    Returns the aggregated ``y, s, val`` and the patient of each aggregated row for the
    bootstrap (None at patient level: every row is a patient already).
    """
    by_unit = units[0] is not None
    keys = units if by_unit else groups
    if keys[0] is None or (val is not None and keys[1] is None):
        raise ValueError("aggregate= needs groups (and val_groups with validation data)"
                         if not by_unit else "units= needs val_units with validation data")
    y, s, k = aggregate_by_group(y, s, keys[0], task=task, how=how, top_k=top_k)
    patients = _patient_of(k, keys[0], groups[0]) if by_unit else None
    val_patients = None
    if val is not None:
        vy, vs, vk = aggregate_by_group(*val, keys[1], task=task, how=how, top_k=top_k)
        val = (vy, vs)
        val_patients = _patient_of(vk, keys[1], groups[1]) if by_unit else None
    return y, s, val, patients, val_patients


def _patient_of(keys: np.ndarray, units: Any, groups: Any) -> np.ndarray | None:
    """The patient (group) of each aggregated unit key; None without groups."""
    if groups is None:
        return None
    first = dict(zip(np.asarray(units).astype(str), np.asarray(groups).astype(str),
                     strict=True))
    return np.array([first[k] for k in keys])


def _bootstrap_info(
    n_bootstraps: int, confidence: float, seed: int, *, patients: bool
) -> dict[str, Any]:
    """How the CIs were made (the ``bootstrap`` section)."""
    return {"n_bootstraps": n_bootstraps, "confidence": confidence, "method": "percentile",
            "resampling": "patient" if patients else "image", "seed": seed}


def _n_groups(groups: Any) -> int | None:
    return len(np.unique(np.asarray(groups).astype(str))) if groups is not None else None


def _task_metrics(
    y: np.ndarray, s: np.ndarray, task: Task, class_names: Sequence[str] | None,
    operating_point: dict[str, Any] | None, common: dict[str, Any],
) -> dict[str, Any]:
    """The task's metric set (binary: at the chosen threshold), with ``class_names``."""
    if task == "binary":
        assert operating_point is not None
        names = list(class_names) if class_names else ["negative", "positive"]
        return {"class_names": names,
                **binary_metrics(y, s, operating_point["threshold"], **common)}
    if task == "multiclass":
        return multiclass_metrics(y, s, class_names=class_names, **common)
    out = multilabel_metrics(y, s, label_names=class_names, **common)
    out["class_names"] = out["label_names"]
    return out


def _calibration(
    y: np.ndarray, s: np.ndarray, val: tuple[np.ndarray, np.ndarray] | None, task: Task,
    n_bins: int, temperature_scaling: bool,
) -> dict[str, Any]:
    """The calibration section: ECE and reliability bins, and after temperature scaling."""
    calibration: dict[str, Any] = {
        "n_bins": n_bins,
        "ece": reliability_data(y, s, task=task, n_bins=n_bins)["ece"],
        "reliability": reliability_data(y, s, task=task, n_bins=n_bins),
        "temperature": None,
    }
    if temperature_scaling:
        if val is None:
            raise ValueError("temperature_scaling=True needs validation data (val_true/score)")
        # Only the calibration section sees the scaled probabilities: the AUCs and the
        # threshold stay on the model's own outputs, which is what a saved model's
        # contract threshold is applied to (and multiclass OvR AUCs would shift with T).
        t = fit_temperature(*val, task=task)
        scaled = reliability_data(y, apply_temperature(s, t, task=task), task=task,
                                  n_bins=n_bins)
        calibration.update(temperature=t, ece_calibrated=scaled["ece"],
                           reliability_calibrated=scaled)
    return calibration


def _operating_point(
    y: np.ndarray, s: np.ndarray, val: tuple[np.ndarray, np.ndarray] | None, method: str,
    target_sensitivity: float, threshold: float,
) -> dict[str, Any]:
    """The binary threshold, chosen on validation (or fixed), and how it did there."""
    if method != "fixed" and val is None:
        raise ValueError(
            f"operating_point={method!r} must be chosen on validation data: "
            "pass val_true/val_score, or use operating_point='fixed'"
        )
    vy, vs = val if val is not None else (y, s)
    thr = choose_threshold(vy, vs, method, target_sensitivity=target_sensitivity,
                           threshold=threshold)
    point: dict[str, Any] = {
        "method": method,
        "threshold": thr,
        "chosen_on": "validation" if method != "fixed" else "fixed",
        "target_sensitivity": target_sensitivity if method == "sensitivity" else None,
    }
    if val is not None:
        vpred = vs >= thr
        point["validation_sensitivity"] = finite(
            np.mean(vpred[vy == 1]) if (vy == 1).any() else math.nan)
        point["validation_specificity"] = finite(
            np.mean(~vpred[vy == 0]) if (vy == 0).any() else math.nan)
    return point
