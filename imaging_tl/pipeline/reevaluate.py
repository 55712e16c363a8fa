"""Evaluating a finished run again: on its own test split, or on an external labelled set.

The run's own evaluation settings hold: its threshold (chosen on its validation split),
patient-level aggregation (``evaluate.patient_level``), a series run's aggregation per
series (``evaluate.series_aggregate``, :mod:`imaging_tl.pipeline.series_scores`), calibration
(``evaluate.calibration``: the temperature is fitted on the run's validation split again)
and bootstrap count. External data get an internal-vs-external page and, with
``recalibrate``, a temperature and threshold fitted on a share of the new site's patients
(:mod:`imaging_tl.pipeline.external`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl._atomic import read_csv, readable_text
from imaging_tl.config import RunConfig, load_config
from imaging_tl.data import DatasetError, from_csv, from_folder
from imaging_tl.pipeline.external import recalibrate_external
from imaging_tl.pipeline.inputs import InputError, census_table, label_targets
from imaging_tl.pipeline.output_steps import evaluation_options
from imaging_tl.pipeline.predict import predict_files
from imaging_tl.pipeline.provenance import write_plain_json
from imaging_tl.pipeline.series_scores import series_split_scores
from imaging_tl.pipeline.subgroups import subgroup_attributes
from imaging_tl.report.external import write_external_report

__all__ = ["reevaluate"]


def reevaluate(run_dir: str | os.PathLike, *, data: str | os.PathLike | None = None,
               label_column: str = "label", out: str | os.PathLike | None = None,
               n_bootstraps: int | None = None,
               recalibrate: float | None = None) -> dict[str, Any]:
    """Evaluate a trained run again: on its test split, or on a new labelled set.

    Parameters
    ----------
    run_dir : path
        A finished run directory.
    data : path, optional
        External validation: a CSV (``path`` + ``label_column``) or a folder per class.
        The run's threshold is kept (chosen on its own validation split).
    label_column : str
        Label column of a CSV.
    out : path, optional
        Where to write the metrics (default ``<run_dir>/evaluation-<name>.json``).
    n_bootstraps : int, optional
        Default: the run's setting.
    recalibrate : float, optional
        With ``data``: fit temperature and threshold on this share of the external
        patients and evaluate the rest before and after
        (:func:`imaging_tl.pipeline.external.recalibrate_external`; binary tasks).

    With ``data``, ``<run_dir>/external-<name>.html`` shows the run's test figures beside
    the external ones (ROC curves overlaid, the recalibration, and the subgroup tables of
    both when the run has ``evaluate.subgroups``); its path is ``"page"``.

    Returns
    -------
    dict
        The metrics (as ``metrics.json``), with ``"evaluated_on"``, ``"n_unreadable"``,
        ``"unreadable"`` (each left-out file's ``path`` and ``reason``) and the ``"written"``
        path.

    Examples
    --------
    >>> reevaluate("runs/demo-20260101-120000", data="external/labels.csv")  # doctest: +SKIP
    """
    from imaging_tl.evaluate import evaluate

    run_dir = Path(run_dir)
    cfg, splits = _load_run(run_dir)
    series = cfg.data.unit == "series"
    if series and data is not None:
        raise InputError(f"{run_dir}: --data: external validation of a data.unit series run "
                         "is not supported yet; evaluate its own test split (no --data)")
    contract = json.loads((run_dir / "contract.json").read_text())
    classes, task = contract["label_names"], contract["task"]
    if data is None:
        table, name = splits[splits["split"] == "test"].copy(), "test"
    else:
        table, name = _external_table(Path(data), cfg, task, classes, label_column)
    if recalibrate is not None and data is None:
        raise InputError("--recalibrate needs --data (external validation data)")
    kw = evaluation_options(cfg) | {
        "operating_point": "fixed", "threshold": float(contract.get("threshold", 0.5))}
    if series:  # per series, aggregated as the run did; CIs resample patients
        y, s, groups, units, bad = series_split_scores(run_dir / "model.keras", table, task,
                                                       classes)
        rows = table
        kw |= {"aggregate": cfg.evaluate.series_aggregate, "units": units}
    else:
        y, s, groups, bad, rows = _labelled_scores(run_dir, table, task, classes)
    if n_bootstraps is not None:
        kw["n_bootstraps"] = int(n_bootstraps)
    if kw["temperature_scaling"]:
        # the temperature is fitted on the run's validation split, as in the run itself
        # (a cross-validated run: on its pooled out-of-fold predictions)
        val_rows = splits[splits["split"] == "val"].copy()
        if series:
            vy, vs, vg, vu, _ = series_split_scores(run_dir / "model.keras", val_rows, task,
                                                    classes)
            kw["val_units"] = vu
        else:
            vy, vs, vg = _oof_scores(run_dir / "oof_predictions.csv", task, classes) \
                if (run_dir / "oof_predictions.csv").is_file() else _labelled_scores(
                    run_dir, val_rows, task, classes)[:3]
        kw |= {"val_true": vy, "val_score": vs, "val_groups": vg}
    metrics = evaluate(y, s, task=task, groups=groups, class_names=classes, **kw)
    metrics["evaluated_on"] = str(data) if data is not None else "test split of the run"
    metrics["n_unreadable"] = len(bad)
    metrics["unreadable"] = bad
    if data is not None:
        _external_extras(metrics, cfg, run_dir, Path(data), rows, y, s, groups, task,
                         classes, kw, recalibrate)
    target = Path(out) if out is not None else run_dir / f"evaluation-{name}.json"
    write_plain_json(target, metrics)
    metrics["written"] = str(target)
    if data is not None:
        internal = json.loads((run_dir / "metrics.json").read_text()) \
            if (run_dir / "metrics.json").is_file() else {}
        metrics["page"] = str(write_external_report(
            run_dir / f"external-{name}.html", internal, metrics,
            title=f"{run_dir.name}: external validation on {name}"))
    return metrics


def _external_extras(metrics: dict[str, Any], cfg: RunConfig, run_dir: Path, data: Path,
                     rows: pd.DataFrame, y: np.ndarray, s: np.ndarray, groups: np.ndarray,
                     task: str, classes: list[str], kw: dict[str, Any],
                     recalibrate: float | None) -> None:
    """The recalibration and the subgroups of an external evaluation, into ``metrics``."""
    if recalibrate is not None:
        metrics["recalibration"] = recalibrate_external(
            y, s, groups, task=task, fraction=float(recalibrate),
            options={**{k: v for k, v in kw.items() if not k.startswith("val_")},
                     "operating_point": evaluation_options(cfg)["operating_point"]},
            class_names=classes)
    names = list(cfg.evaluate.subgroups)
    if not names or task != "binary":
        return
    from imaging_tl.evaluate import subgroup_metrics

    root = data if data.is_dir() else data.parent
    try:
        attrs = subgroup_attributes(names, rows, census_table(rows, root), root)
    except InputError as exc:
        metrics["subgroups"] = {"skipped": str(exc)}
        return
    metrics["subgroups"] = subgroup_metrics(
        y, s, attrs, threshold=float(kw["threshold"]), groups=groups,
        n_bootstraps=int(kw["n_bootstraps"]), seed=int(kw["seed"]))


def _load_run(run_dir: Path) -> tuple[RunConfig, pd.DataFrame]:
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "model.keras").is_file():
        raise InputError(f"{run_dir}: not a finished run directory (needs config.yaml and "
                         "model.keras)")
    cfg = load_config(run_dir / "config.yaml")
    return cfg, read_csv(run_dir / "splits.csv", dtype={"group": str, "split": str})


def _external_table(dp: Path, cfg: RunConfig, task: str, classes: list[str],
                    label_column: str) -> tuple[pd.DataFrame, str]:
    """The external table, its labels read as the run read its own (columns, uncertain
    policy, label map)."""
    label_map = cfg.task.label_map
    try:
        if dp.is_dir():
            return from_folder(dp, frames="middle", label_map=label_map), dp.name
        multilabel = task == "multilabel"
        table = from_csv(
            dp, label_column=None if multilabel else label_column,
            label_columns=(cfg.data.label_columns or classes) if multilabel else None,
            uncertain=cfg.task.uncertain if multilabel else None, label_map=label_map,
            frames="middle")
    except DatasetError as exc:
        raise InputError(str(exc)) from None
    return table, dp.stem


def _labelled_scores(run_dir: Path, table: pd.DataFrame, task: str,
                     classes: list[str]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, str]],
                                pd.DataFrame]:
    """Labels, model scores and patient keys of the readable files of ``table``, the
    unreadable ones (``path``, ``reason``) and the readable rows."""
    pred = predict_files(run_dir / "model.keras", list(dict.fromkeys(table["path"])))
    pred = pred.set_index("path")
    ok = table["path"].map(pred["status"]) == "ok"
    bad = [{"path": readable_text(str(p)), "reason": str(pred.at[p, "reason"])}
           for p in dict.fromkeys(table.loc[~ok, "path"])]
    table = table[ok].reset_index(drop=True)
    if table.empty:
        raise InputError("no readable labelled file to evaluate")
    probs = pred.loc[table["path"], [f"prob_{c}" for c in classes]].to_numpy(np.float32)
    groups = table["group"].astype(str).to_numpy()
    if task == "multilabel":
        return table[classes].to_numpy(np.float32), probs, groups, bad, table
    y = label_targets(table["label"], classes, task)
    return y, probs[:, 1] if task == "binary" else probs, groups, bad, table


def _oof_scores(path: Path, task: str, classes: list[str]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, probabilities and patient keys of a cross-validated run's
    ``oof_predictions.csv`` (each image predicted by the member that did not train on it)."""
    oof = read_csv(path, dtype={"group": str, "label": str})
    probs = oof[[f"prob_{c}" for c in classes]].to_numpy(np.float32)
    groups = oof["group"].astype(str).to_numpy()
    if task == "multilabel":
        return oof[[f"label_{c}" for c in classes]].to_numpy(np.float32), probs, groups
    if task == "binary":
        return (oof["label"] == classes[1]).to_numpy(np.float32), probs[:, 1], groups
    index = {c: i for i, c in enumerate(classes)}
    return oof["label"].map(index).to_numpy(), probs, groups
