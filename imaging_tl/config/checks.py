"""Cross-field checks of a configuration: what one key's validation alone cannot see
(a CSV's columns, a backbone's freeze points, stage parameters, the operating point).

Each check returns its problems as lines; :func:`cross_checks` runs every check on the
sections that validated, so all errors come at once. No TensorFlow.

Examples
--------
>>> from imaging_tl.config.schema import ModelConfig
>>> cross_checks({"model": ModelConfig(backbone="efficientnet_lite9")})[0][:60]
"model.backbone: unknown backbone 'efficientnet_lite9' (did y"
"""

from __future__ import annotations

import csv
import difflib
import importlib.util
from pathlib import Path
from typing import Any

from imaging_tl.config.schema import (
    DataConfig,
    EvaluateConfig,
    Freeze,
    ModelConfig,
    MonitorConfig,
    PhaseConfig,
    PretrainModelConfig,
    SplitConfig,
    TaskConfig,
    ViewsConfig,
)

__all__ = ["cross_checks", "pretrain_checks"]


def _csv_columns(path: str) -> list[str] | None:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return None


def _check_series_data(d: DataConfig) -> list[str]:
    """``data.unit: series``: the files under data.folder, labels from data.csv or folders."""
    errors: list[str] = []
    if d.folder is None:
        errors.append("data.folder: required with data.unit series (the folder holding the "
                      "DICOM series; data.csv, if given, labels them by SeriesInstanceUID)")
    elif not Path(d.folder).is_dir():
        errors.append(f"data.folder: folder {d.folder!r} does not exist")
    if d.label_columns:
        errors.append("data.label_columns: not supported with data.unit series (one label "
                      "per series); use data.label_column")
    errors += _check_slice_data(d)
    if d.csv is None and d.slice_labels is not None:
        return errors
    if d.csv is None:
        for key, value in (("data.label_column", d.label_column),
                           ("data.series_column", d.series_column),
                           ("data.group_column", d.group_column)):
            if value:
                errors.append(f"{key}: needs data.csv (labels per series); without it the "
                              "class folders are the labels")
        return errors
    cols = _csv_columns(d.csv) if Path(d.csv).is_file() else None
    if cols is None:
        errors.append(f"data.csv: {d.csv!r} does not exist or is not a CSV text file")
        return errors
    if not d.label_column:
        errors.append("data.label_column: required with data.csv (the column holding each "
                      "series' label)")
    series_names = ("series_uid", "SeriesInstanceUID", "series_instance_uid", "series")
    if d.series_column is None and not any(c in cols for c in series_names):
        errors.append(f"data.series_column: {Path(d.csv).name} has none of "
                      f"{', '.join(series_names)}; name its column of SeriesInstanceUIDs")
    for key, col in (("data.series_column", d.series_column),
                     ("data.label_column", d.label_column),
                     ("data.group_column", d.group_column)):
        if col is not None and col not in cols:
            close = difflib.get_close_matches(col, cols, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(f"{key}: {col!r} is not a column of {Path(d.csv).name}{hint}; "
                          f"columns: {', '.join(cols)}")
    return errors


def _check_slice_data(d: DataConfig) -> list[str]:
    """``data.slice_labels`` (its file and key columns) and the training slice sampling."""
    errors: list[str] = []
    sampling = d.slice_sampling or ("every_k" if d.slice_step > 1 else "all")
    if d.slice_step != 1 and sampling != "every_k":
        errors.append(f"data.slice_step: only with data.slice_sampling every_k (it is "
                      f"{sampling!r})")
    if sampling == "around_positive" and d.slice_labels is None:
        errors.append("data.slice_sampling: around_positive needs slice labels "
                      "(data.slice_labels: a CSV giving each slice its label)")
    if sampling != "around_positive":
        errors += [f"data.{key}: only with data.slice_sampling around_positive"
                   for key, default in (("slice_margin", 2), ("slice_rest", 0.1))
                   if getattr(d, key) != default]
    if d.slice_labels is None:
        return errors
    cols = _csv_columns(d.slice_labels) if Path(d.slice_labels).is_file() else None
    if cols is None:
        return errors + [f"data.slice_labels: {d.slice_labels!r} does not exist or is not a "
                         "CSV text file"]
    names = ("series_uid", "SeriesInstanceUID", "series_instance_uid", "series")
    series = d.series_column or next((c for c in names if c in cols), None)
    by_slice = series in cols and any(c in cols for c in ("instance_number",
                                                           "InstanceNumber", "slice"))
    if d.path_column not in cols and not by_slice:
        errors.append(f"data.slice_labels: {Path(d.slice_labels).name} needs a "
                      f"{d.path_column!r} column (data.path_column) or a series column and "
                      f"an instance_number (or slice) column; columns: {', '.join(cols)}")
    label = d.label_column or "label"
    if label not in cols:
        errors.append(f"data.label_column: {label!r} is not a column of "
                      f"{Path(d.slice_labels).name}; columns: {', '.join(cols)}")
    return errors


def _check_data_unit(d: DataConfig, task: TaskConfig | None) -> list[str]:
    """The data keys, as ``data.unit`` reads them."""
    if d.unit == "series":
        ttype = task.type if task is not None else None
        multi = ttype in ("multiclass", "multilabel")
        refuse = [f"data.slice_labels: for binary tasks (a series' label is derived from its "
                  f"slices'), not task.type {ttype}"] if multi and d.slice_labels else []
        return refuse + _check_series_data(d)
    extra = [f"data.{key}: only with data.unit series" for key in (
        "series_column", "slice_labels", "slice_sampling") if getattr(d, key) is not None]
    extra += [f"data.{key}: only with data.unit series" for key, default in (
        ("slice_step", 1), ("slice_margin", 2), ("slice_rest", 0.1))
        if getattr(d, key) != default]
    return extra + _check_data(d, task)


def _check_data(d: DataConfig, task: TaskConfig | None) -> list[str]:
    errors: list[str] = []
    if (d.csv is None) == (d.folder is None):
        errors.append("data: give exactly one of data.csv (a manifest) or data.folder "
                      "(one sub-folder per class)")
    if d.csv is not None:
        if not Path(d.csv).is_file():
            errors.append(f"data.csv: file {d.csv!r} does not exist")
        else:
            cols = _csv_columns(d.csv)
            if cols is None:
                errors.append(f"data.csv: {d.csv!r} cannot be read as a CSV text file")
            else:
                wanted = [("data.path_column", d.path_column),
                          ("data.label_column", d.label_column),
                          ("data.group_column", d.group_column)]
                wanted += [(f"data.label_columns.{i}", c)
                           for i, c in enumerate(d.label_columns or [])]
                for key, col in wanted:
                    if col is not None and col not in cols:
                        close = difflib.get_close_matches(col, cols, n=1)
                        hint = f" (did you mean {close[0]!r}?)" if close else ""
                        errors.append(f"{key}: {col!r} is not a column of {Path(d.csv).name}"
                                      f"{hint}; columns: {', '.join(cols)}")
    if d.folder is not None and not Path(d.folder).is_dir():
        errors.append(f"data.folder: folder {d.folder!r} does not exist")
    if d.folder is not None and (d.label_column or d.label_columns):
        errors.append("data.label_column: not used with data.folder (the sub-folder names are "
                      "the labels); remove it or use data.csv")
    if d.label_column and d.label_columns:
        errors.append("data: give data.label_column or data.label_columns, not both")
    ttype = task.type if task is not None else None
    if d.label_columns is not None and len(d.label_columns) == 0:
        errors.append("data.label_columns: empty list; name the 0/1 label columns")
    if ttype == "multilabel" and not d.label_columns:
        errors.append("data.label_columns: a multilabel task needs the list of 0/1 label "
                      "columns of data.csv")
    if ttype in ("binary", "multiclass") and d.label_columns:
        errors.append(f"data.label_columns: only for task.type multilabel (task.type is "
                      f"{ttype!r}); use data.label_column")
    if d.csv is not None and not d.label_column and not d.label_columns:
        errors.append("data.label_column: required with data.csv (the column holding the "
                      "label), or data.label_columns for a multilabel task")
    return errors


def _check_task(t: TaskConfig) -> list[str]:
    errors = []
    if t.classes is not None and len(set(t.classes)) != len(t.classes):
        errors.append(f"task.classes: duplicate names in {t.classes}")
    if t.type == "binary" and t.classes is not None and len(t.classes) != 2:
        errors.append(f"task.classes: a binary task has exactly 2 classes (negative first, "
                      f"positive second), got {t.classes}")
    if t.positive is not None and t.classes is not None and t.positive not in t.classes:
        errors.append(f"task.positive: {t.positive!r} is not one of task.classes {t.classes}")
    if t.positive is not None and t.type in ("multiclass", "multilabel"):
        errors.append(f"task.positive: only for binary tasks (task.type is {t.type!r})")
    return errors


def _check_split(s: SplitConfig) -> list[str]:
    errors = []
    if s.method == "kfold" and s.fold is not None and s.fold >= s.folds:
        errors.append(f"split.fold: {s.fold} must be below split.folds ({s.folds})")
    if s.method == "holdout" and s.val + s.test > 0.6:
        errors.append(f"split: val + test = {s.val + s.test:g} leaves too little to train on "
                      "(keep it at most 0.6)")
    if s.file is not None and not Path(s.file).is_file():
        errors.append(f"split.file: file {s.file!r} does not exist")
    return errors


def _check_freeze(value: Freeze, spec: Any, where: str) -> list[str]:
    if isinstance(value, bool):
        return [f"{where}: {value!r} is not a freeze setting; use 'all', 'none', a freeze "
                "point or a fraction in [0, 1]"]
    if isinstance(value, float | int):
        return [] if 0 <= value <= 1 else [f"{where}: fraction {value} must be in [0, 1]"]
    allowed = ["all", "none", *spec.freeze_points]
    if value in allowed:
        return []
    close = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return [f"{where}: {value!r} is not a freeze point of {spec.name}{hint}; "
            f"choose one of {', '.join(allowed)} or a fraction in [0, 1]"]


def _check_model(m: ModelConfig, phases: list[PhaseConfig] | None) -> list[str]:
    from imaging_tl.models.registry import get_spec, list_backbones
    from imaging_tl.stages.normalize import list_schemes

    unknown = _unknown_backbone(m.backbone, list_backbones())
    if unknown:
        return unknown
    spec = get_spec(m.backbone)
    errors = _check_freeze(m.freeze, spec, "model.freeze")
    for i, phase in enumerate(phases or []):
        if phase.freeze is not None:
            errors += _check_freeze(phase.freeze, spec, f"train.phases.{i}.freeze")
    errors += _check_source(m)
    if m.normalization is not None and m.normalization != spec.normalization:
        known = "" if m.normalization in list_schemes() else " (not a known scheme)"
        errors.append(
            f"model.normalization: {m.normalization!r}{known} is not the input normalisation "
            f"of {spec.name}, which was trained with {spec.normalization!r}; the model applies "
            "it itself, so remove the key")
    return errors


def _check_source(m: ModelConfig) -> list[str]:
    """``model.source``: imagenet, none, a weights file, or a finished run / model of this
    package with the configuration's backbone (hashes are checked when the run starts)."""
    from imaging_tl.models.source import SourceError, resolve_source

    try:
        src = resolve_source(m.source, backbone=m.backbone, verify=False)
    except SourceError as exc:
        return [str(exc)]
    if m.keep_source_hidden and not src.is_model:
        return [f"model.keep_source_hidden: needs model.source to be a run or model of "
                f"imaging_tl (it is {m.source!r})"]
    return []


def _check_phases(phases: list[PhaseConfig]) -> list[str]:
    errors = []
    names = [p.name for p in phases]
    for n in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"train.phases: phase name {n!r} is used twice; give each phase its "
                      "own name")
    for i, p in enumerate(phases):
        if p.warmup_epochs >= p.epochs and p.warmup_epochs:
            errors.append(f"train.phases.{i}.warmup_epochs: {p.warmup_epochs} must be below "
                          f"its epochs ({p.epochs})")
    return errors


def _check_stack(stack: Any, i: int, n_stages: int, channels: int) -> list[str]:
    """``stack``: last, and as many channels as the backbone takes (3)."""
    errors = []
    if i != n_stages - 1:
        errors.append(f"preprocessing.{i}: stack must be the last stage (the stages before "
                      "it run on each slice; its channels are the model's input)")
    total = channels * len(stack.offsets)
    if total != 3:
        errors.append(f"preprocessing.{i}: stack gives {len(stack.offsets)} offset(s) x "
                      f"{channels} channel(s) = {total} channels; the backbone takes 3 (three "
                      "slices of one window, or one slice of three windows)")
    return errors


def _check_series_use(data: DataConfig, stages: list[dict[str, Any]] | None,
                      evaluate: EvaluateConfig | None) -> list[str]:
    """Keys that only make sense with (or without) ``data.unit: series``."""
    errors = []
    if data.unit == "series" and evaluate is not None and evaluate.patient_level != "none":
        errors.append("evaluate.patient_level: not with data.unit series, which is evaluated "
                      "per series (evaluate.series_aggregate)")
    if data.unit != "series" and any(s.get("name") == "stack" for s in stages or []):
        errors.append("preprocessing: stack needs data.unit series (its channels are "
                      "neighbouring slices of a series)")
    return errors


def _check_stages(stages: list[dict[str, Any]],
                  model: ModelConfig | PretrainModelConfig | None) -> list[str]:
    from imaging_tl.stages import MultiWindow, Resize, stage_from_config

    errors = []
    resize_sizes = []
    channels = 1  # per slice, before a stack stage
    for i, stage in enumerate(stages):
        try:
            built = stage_from_config(stage)
        except (ValueError, TypeError, KeyError) as exc:
            errors.append(f"preprocessing.{i}: {exc}")
            continue
        if built.name == "normalize":
            errors.append(
                f"preprocessing.{i}: remove 'normalize': the model applies its backbone's "
                "input normalisation itself (its input is RGB in [0, 1])")
        if isinstance(built, Resize):
            resize_sizes.append((i, tuple(built.size)))
        if isinstance(built, MultiWindow) and len(built.windows) not in (1, 3):
            errors.append(f"preprocessing.{i}: multi_window gives {len(built.windows)} "
                          "channels; the backbone takes 3 (or 1, replicated): use 3 windows")
        if isinstance(built, MultiWindow):
            channels = len(built.windows)
        if built.name == "stack":
            errors += _check_stack(built, i, len(stages), channels)
    if model is not None and model.input_size is not None and resize_sizes:
        i, size = resize_sizes[-1]
        if size != (model.input_size, model.input_size):
            errors.append(f"preprocessing.{i}: resize to {list(size)} but model.input_size is "
                          f"{model.input_size}; make them agree (or drop one of them)")
    if resize_sizes and resize_sizes[-1][1][0] != resize_sizes[-1][1][1]:
        i, size = resize_sizes[-1]
        errors.append(f"preprocessing.{i}: the last resize must be square (the model input "
                      f"is square), got {list(size)}")
    return errors


def _check_subgroups(e: EvaluateConfig, data: DataConfig | None,
                     task: TaskConfig | None) -> list[str]:
    """Each ``evaluate.subgroups`` name: a census attribute or a column of ``data.csv``."""
    from imaging_tl.io.subgroup_tags import SUBGROUP_ATTRIBUTES

    errors = []
    if e.subgroups and task is not None and task.type in ("multiclass", "multilabel"):
        errors.append(f"evaluate.subgroups: binary tasks only (task.type is {task.type})")
    cols = _csv_columns(data.csv) if data is not None and data.csv else None
    for i, name in enumerate(e.subgroups):
        if name in SUBGROUP_ATTRIBUTES or (cols is not None and name in cols):
            continue
        known = list(SUBGROUP_ATTRIBUTES) + list(cols or [])
        close = difflib.get_close_matches(name, known, n=1)
        errors.append(f"evaluate.subgroups.{i}: {name!r} is neither a header attribute "
                      f"({', '.join(SUBGROUP_ATTRIBUTES)}) nor a column of data.csv"
                      + (f" (did you mean {close[0]!r}?)" if close else ""))
    if len(set(e.subgroups)) < len(e.subgroups):
        errors.append("evaluate.subgroups: a name is listed twice")
    return errors


def _check_evaluate(e: EvaluateConfig) -> list[str]:
    op = e.operating_point
    if op.method in ("sensitivity", "fixed") and op.value is None:
        what = "target sensitivity" if op.method == "sensitivity" else "threshold"
        return [f"evaluate.operating_point.value: required for method {op.method!r} "
                f"(the {what}, in [0, 1])"]
    if op.method == "youden" and op.value is not None:
        return ["evaluate.operating_point.value: not used with method 'youden'; remove it or "
                "choose method 'sensitivity' or 'fixed'"]
    return []


def cross_checks(parts: dict[str, Any]) -> list[str]:
    """Checks that need more than one key or another part's registry; skip failed sections."""
    errors: list[str] = []
    data, task, split = parts.get("data"), parts.get("task"), parts.get("split")
    model, train = parts.get("model"), parts.get("train")
    if data is not None:
        errors += _check_data_unit(data, task)
    if task is not None:
        errors += _check_task(task)
    if split is not None:
        errors += _check_split(split)
    if model is not None:
        errors += _check_model(model, train.phases if train is not None else None)
    if train is not None and train.phases:
        errors += _check_phases(train.phases)
    if parts.get("preprocessing") is not None:
        errors += _check_stages(parts["preprocessing"], model)
    if data is not None:
        errors += _check_series_use(data, parts.get("preprocessing"), parts.get("evaluate"))
    if parts.get("evaluate") is not None:
        errors += _check_evaluate(parts["evaluate"])
        errors += _check_subgroups(parts["evaluate"], data, task)
        if split is not None and split.method == "kfold" and split.fold is None \
                and split.file is None and parts["evaluate"].tta:
            errors.append("evaluate.tta: not with cross-validation over every fold (the "
                          "TTA threshold would be chosen on images the fold ensemble "
                          "trained on); set evaluate.tta: 0 (the ensemble's spread is the "
                          "uncertainty) or train one fold with split.fold")
    tracking = parts.get("tracking")
    if tracking is not None and tracking.mlflow and importlib.util.find_spec("mlflow") is None:
        errors.append("tracking.mlflow: MLflow is not installed; install it with pip install "
                      "'imaging-tl[mlflow]' (the light client mlflow-skinny), or remove the key")
    aug = parts.get("augment")
    if aug is not None:
        try:
            from imaging_tl.augment import Augmenter

            Augmenter(aug.preset, hflip=aug.hflip, transforms=aug.transforms, seed=0)
        except (ValueError, TypeError) as exc:
            errors.append(f"augment: {exc}")
    return errors



def _check_pretrain_data(d: DataConfig) -> list[str]:
    errors = []
    if (d.csv is None) == (d.folder is None):
        errors.append("data: give exactly one of data.csv (a table or census of the images) "
                      "or data.folder (searched recursively)")
    labelled = [k for k in ("label_column", "label_columns") if getattr(d, k) is not None]
    errors += [f"data.{k}: pretraining reads no labels; remove the key (a labelled set for "
               "the linear probe goes under monitor.csv)" for k in labelled]
    if d.csv is not None:
        cols = _csv_columns(d.csv) if Path(d.csv).is_file() else None
        if cols is None:
            errors.append(f"data.csv: {d.csv!r} does not exist or is not a CSV text file")
        else:
            errors += [f"data.{key}: column {col!r} is not in {d.csv} (columns: "
                       f"{', '.join(cols)})" for key, col in
                       (("path_column", d.path_column), ("group_column", d.group_column))
                       if col is not None and col not in cols]
    elif d.folder is not None and not Path(d.folder).is_dir():
        errors.append(f"data.folder: {d.folder!r} is not a folder")
    return errors


def _check_pretrain_model(m: PretrainModelConfig) -> list[str]:
    from imaging_tl.models.registry import list_backbones

    return _unknown_backbone(m.backbone, list_backbones())


def _unknown_backbone(name: str, names: list[str]) -> list[str]:
    """The error for a backbone name not in the registry (with a close match), or none."""
    if name in names:
        return []
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return [f"model.backbone: unknown backbone {name!r}{hint}; choose one of {', '.join(names)}"]


def _check_views(v: ViewsConfig) -> list[str]:
    errors = []
    lo, hi = v.crop_scale
    if not 0 < lo <= hi <= 1:
        errors.append(f"views.crop_scale: {[lo, hi]} must be two shares with 0 < low <= high "
                      "<= 1 (the crop's area as a share of the image)")
    if not 30 <= v.gamma[0] <= v.gamma[1] <= 300:
        errors.append(f"views.gamma: {list(v.gamma)} must be [low, high] percent with "
                      "30 <= low <= high <= 300 (100 = no change)")
    return errors


def _check_monitor(m: MonitorConfig) -> list[str]:
    if m.csv is None:
        return []
    cols = _csv_columns(m.csv) if Path(m.csv).is_file() else None
    if cols is None:
        return [f"monitor.csv: {m.csv!r} does not exist or is not a CSV text file"]
    return [f"monitor.{key}: column {col!r} is not in {m.csv} (columns: {', '.join(cols)})"
            for key, col in (("path_column", m.path_column), ("label_column", m.label_column),
                             ("group_column", m.group_column))
            if col is not None and col not in cols]


def pretrain_checks(parts: dict[str, Any]) -> list[str]:
    """The cross-key checks of a pretraining configuration (sections that validated).

    Examples
    --------
    >>> from imaging_tl.config.schema import DataConfig
    >>> pretrain_checks({"data": DataConfig(folder="x", label_column="label")})[0][:50]
    'data.label_column: pretraining reads no labels; re'
    """
    errors: list[str] = []
    checks = (("data", _check_pretrain_data), ("model", _check_pretrain_model),
              ("views", _check_views), ("monitor", _check_monitor))
    for key, check in checks:
        if parts.get(key) is not None:
            errors += check(parts[key])
    if parts.get("preprocessing") is not None:
        errors += _check_stages(parts["preprocessing"], parts.get("model"))
    return errors
