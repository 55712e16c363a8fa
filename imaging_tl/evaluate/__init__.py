"""Metrics a radiologist can trust: AUCs with bootstrap CIs, operating points, calibration.

Plain functions over numpy arrays; the result of :func:`evaluate` is a plain dict that
``json.dumps`` writes as ``metrics.json`` (NaN becomes ``null``). Point estimates come from
scikit-learn's metric functions. The bootstrap computes the same quantities on weighted
copies of the data (a resample is a vector of counts per image), fully vectorised: 1000
resamples through ``roc_auc_score`` cost seconds per metric, the weighted form milliseconds
(``benchmarks/bootstrap.py``). Tests pin the weighted forms to scikit-learn at unit weights.

Conventions
-----------
- binary: ``y_true`` 0/1, ``y_score`` the positive-class probability, shape ``(n,)``.
- multiclass: ``y_true`` class index, ``y_score`` probabilities ``(n, C)``.
- multilabel: ``y_true`` ``(n, L)`` with 1, 0 and -1 or NaN for a missing label (ignored),
  ``y_score`` ``(n, L)`` sigmoid probabilities.
- ``groups``: one key per image (e.g. PatientID). When given, the bootstrap resamples
  groups, not images, because images of one patient are not independent.

The modules: :mod:`~imaging_tl.evaluate.inputs` (these conventions, checked),
:mod:`~imaging_tl.evaluate.bootstrap` (resamples, percentile CIs),
:mod:`~imaging_tl.evaluate.curves` (weighted ROC AUC / AP and threshold rates),
:mod:`~imaging_tl.evaluate.metrics` (the metric set of each task),
:mod:`~imaging_tl.evaluate.thresholds` (operating points),
:mod:`~imaging_tl.evaluate.calibration` (reliability, ECE, temperature scaling),
:mod:`~imaging_tl.evaluate.aggregation` (patient level),
:mod:`~imaging_tl.evaluate.samplesize` (small-sample cautions, printing an interval),
:mod:`~imaging_tl.evaluate.subgroups` (figures per sex, age band, scanner, site, ...),
:mod:`~imaging_tl.evaluate.referral` (figures on the cases kept as uncertain ones are referred),
:mod:`~imaging_tl.evaluate.crossval` (per-fold and pooled out-of-fold figures),
:mod:`~imaging_tl.evaluate.evaluation` (:func:`evaluate`) and
:mod:`~imaging_tl.evaluate.predictions` (:func:`evaluate_predictions`).

This package does not import TensorFlow.

Examples
--------
>>> from imaging_tl.evaluate import binary_metrics
>>> binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.5, n_bootstraps=0)["roc_auc"]
{'value': 0.75, 'ci': [None, None]}
"""

from imaging_tl.evaluate.aggregation import aggregate_by_group
from imaging_tl.evaluate.bootstrap import (
    bootstrap_weights,
    estimate,
    percentile_ci,
    weight_blocks,
)
from imaging_tl.evaluate.calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability_data,
)
from imaging_tl.evaluate.crossval import crossval_metrics
from imaging_tl.evaluate.curves import weighted_average_precision, weighted_roc_auc
from imaging_tl.evaluate.evaluation import evaluate
from imaging_tl.evaluate.inputs import TASKS, Task
from imaging_tl.evaluate.metrics import binary_metrics, multiclass_metrics, multilabel_metrics
from imaging_tl.evaluate.metrics_view import Metrics
from imaging_tl.evaluate.predictions import evaluate_predictions
from imaging_tl.evaluate.referral import referral_curve
from imaging_tl.evaluate.samplesize import (
    NO_INTERVAL,
    format_ci,
    format_estimate,
    small_sample_notes,
    split_counts,
)
from imaging_tl.evaluate.subgroups import subgroup_metrics
from imaging_tl.evaluate.thresholds import OPERATING_POINTS, choose_threshold

__all__ = [
    "NO_INTERVAL",
    "Metrics",
    "OPERATING_POINTS",
    "TASKS",
    "Task",
    "aggregate_by_group",
    "apply_temperature",
    "binary_metrics",
    "bootstrap_weights",
    "choose_threshold",
    "crossval_metrics",
    "estimate",
    "evaluate",
    "evaluate_predictions",
    "expected_calibration_error",
    "fit_temperature",
    "format_ci",
    "format_estimate",
    "multiclass_metrics",
    "multilabel_metrics",
    "percentile_ci",
    "referral_curve",
    "reliability_data",
    "small_sample_notes",
    "split_counts",
    "subgroup_metrics",
    "weight_blocks",
    "weighted_average_precision",
    "weighted_roc_auc",
]
