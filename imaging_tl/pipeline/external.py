"""External validation with recalibration on the new site: ``evaluate RUN --data EXT
--recalibrate FRACTION``.

A model's threshold and confidence rarely carry over to another hospital's scanners. With
``--recalibrate f`` a patient-grouped, label-stratified share ``f`` of the external
patients (:func:`imaging_tl.data.splits.iterative_group_stratify`, the run's seed) plays
the part the validation split played in the run: the temperature is fitted there and the
threshold re-picked there with the run's operating-point method (a fixed threshold stays
fixed). Both the run's own threshold ("before") and the recalibrated model ("after") are
then evaluated on the remaining patients only, so neither is measured on what it was
fitted on. The run's ``evaluate.patient_level`` and bootstrap settings apply to both.
Thresholds are on the model's own probabilities (temperature scaling keeps the ranking).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imaging_tl.data.splits import iterative_group_stratify
from imaging_tl.pipeline.inputs import InputError

__all__ = ["recalibrate_external", "recalibration_summary"]


def recalibrate_external(y: np.ndarray, s: np.ndarray, groups: np.ndarray, *, task: str,
                         fraction: float, options: dict[str, Any],
                         class_names: list[str]) -> dict[str, Any]:
    """Fit temperature and threshold on a share of the external patients; evaluate the
    rest before and after.

    Parameters
    ----------
    y, s, groups : numpy.ndarray
        External labels (binary 0/1), probabilities of the positive class and patient keys.
    task : str
        Must be ``"binary"`` (a threshold is re-picked).
    fraction : float
        Share of the patients to recalibrate on, in (0, 1).
    options : dict
        The run's :func:`imaging_tl.pipeline.output_steps.evaluation_options` with its
        ``threshold`` (the run's own); ``seed`` also draws the patients.
    class_names : list of str

    Returns
    -------
    dict
        ``fraction``, ``fit`` and ``evaluated`` (images and patients of each part),
        ``temperature``, ``threshold_before``, ``threshold_after``, ``ece_before``,
        ``ece_after`` and the two evaluations, ``before`` and ``after``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(rng.integers(0, 2, 100), 2); g = np.repeat(np.arange(100), 2)
    >>> s = 1 / (1 + np.exp(-4 * (y - 0.5 + rng.normal(0, 0.6, 200))))  # over-confident
    >>> out = recalibrate_external(y, s, g, task="binary", fraction=0.4, class_names=["n", "p"],
    ...     options={"operating_point": "youden", "threshold": 0.5, "n_bootstraps": 0,
    ...              "seed": 0, "temperature_scaling": False, "aggregate": None})
    >>> out["ece_after"] < out["ece_before"], out["temperature"] > 1
    (True, True)
    """
    from imaging_tl.evaluate import evaluate

    if task != "binary":
        raise InputError(f"--recalibrate: binary tasks only (this model's task is {task})")
    if not 0 < fraction < 1:
        raise InputError(f"--recalibrate: the fraction must be between 0 and 1, got {fraction}")
    part = iterative_group_stratify(np.stack([1 - y, y], axis=1), groups,
                                    [fraction, 1 - fraction], seed=int(options.get("seed", 0)))
    fit, rest = part == 0, part == 1
    for name, m in (("recalibration", fit), ("evaluation", rest)):
        if len(np.unique(y[m])) < 2:
            raise InputError(f"--recalibrate {fraction}: the {name} share of the external "
                             f"patients ({len(np.unique(groups[m]))} patients) does not hold "
                             "both classes; use more data or another fraction")
    common = {k: v for k, v in options.items()
              if k not in ("operating_point", "threshold", "temperature_scaling")}
    before = evaluate(y[rest], s[rest], task="binary", groups=groups[rest],
                      class_names=class_names, operating_point="fixed",
                      threshold=float(options["threshold"]), **common)
    method = options.get("operating_point", "youden")
    after = evaluate(y[rest], s[rest], task="binary", groups=groups[rest],
                     val_true=y[fit], val_score=s[fit], val_groups=groups[fit],
                     class_names=class_names, operating_point=method,
                     threshold=float(options["threshold"]), temperature_scaling=True,
                     **common)
    cal = after["calibration"]
    return {
        "fraction": fraction,
        "fit": {"images": int(fit.sum()), "patients": int(len(np.unique(groups[fit])))},
        "evaluated": {"images": int(rest.sum()), "patients": int(len(np.unique(groups[rest])))},
        "temperature": cal["temperature"],
        "threshold_before": before["operating_point"]["threshold"],
        "threshold_after": after["operating_point"]["threshold"],
        "ece_before": before["calibration"]["ece"], "ece_after": cal["ece_calibrated"],
        "before": before, "after": after,
    }


def recalibration_summary(r: dict[str, Any]) -> str:
    """One line for the console: patients used, threshold and ECE before -> after.

    Examples
    --------
    >>> recalibration_summary({"fit": {"patients": 12}, "evaluated": {"patients": 30},
    ...     "threshold_before": 0.5, "threshold_after": 0.31, "ece_before": 0.2,
    ...     "ece_after": 0.05})
    'recalibrated on 12 patients, evaluated on 30: threshold 0.500 -> 0.310, ECE 0.200 -> 0.050'
    """
    return (f"recalibrated on {r['fit']['patients']} patients, evaluated on "
            f"{r['evaluated']['patients']}: threshold {r['threshold_before']:.3f} -> "
            f"{r['threshold_after']:.3f}, ECE {r['ece_before']:.3f} -> {r['ece_after']:.3f}")
