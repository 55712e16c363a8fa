"""Checks of a run that need only its table: made before TensorFlow is imported and before
the run directory is created, so a wrong label or an unusable split fails in a second.

What is checked: the labels are present and the task's classes exist (``task.positive``
with a suggestion for a label that differs in case or by a small edit), every split has
samples and the training split holds every class, and the colour mix of the files (read
from the headers of a sample of them) suits the preprocessing. No TensorFlow.

Examples
--------
>>> from imaging_tl.config import load_config
>>> cfg = load_config({"data": {"csv": "sample_dicoms/labels.csv", "label_column": "label",
...                             "group_column": "patient_id"}})
>>> notes = early_checks(cfg)
>>> notes[0].startswith("colour:")
True
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl.config import RunConfig
from imaging_tl.data.splits import fold_split
from imaging_tl.pipeline.inputs import (
    InputError,
    is_crossval,
    load_inputs,
    split_of,
    task_and_classes,
)

__all__ = ["colour_mix", "early_checks", "grey_only_before_colour", "need_reason",
           "patients_needed", "split_problems"]

#: files whose headers are read for the colour mix (spread over the table)
COLOUR_SAMPLE = 64


def early_checks(cfg: RunConfig) -> list[str]:
    """Check a configuration against its table; returns notes to log, raises on problems.

    Raises
    ------
    InputError
        With every problem found, one per line.
    """
    table = load_inputs(cfg)
    task, classes = task_and_classes(cfg, table)
    split = split_of(cfg, table)
    errors = split_problems(split, task, classes, cfg.split)
    if is_crossval(cfg):  # every fold validates once: each must hold every class
        for f in range(1, cfg.split.folds):
            errors += [f"fold {f}: {e}" for e in split_problems(
                fold_split(split, f), task, classes, cfg.split) if e not in errors]
    mix = colour_mix(list(dict.fromkeys(table["path"])))
    notes = [f"colour: {mix['grey']} grey, {mix['colour']} stored as colour (RGB) of "
             f"{mix['looked']} file(s) looked at"
             + (f" (data.color {cfg.data.color})" if cfg.data.color else "")]
    stage = grey_only_before_colour(cfg.preprocessing)
    if mix["colour"] and stage is not None:
        errors.append(
            f"{mix['colour']} of {mix['looked']} file(s) looked at are colour images and "
            f"preprocessing stage {stage!r} works on grey images only; set data.color "
            "(auto, grey or rgb) or add to_grey before it")
    if errors:
        raise InputError("\n".join(errors))
    return notes


def split_problems(split: pd.DataFrame, task: str, classes: list[str],
                   split_cfg: Any = None) -> list[str]:
    """Splits without samples, and (single-label) classes absent from a split.

    A class missing from the training split cannot be learnt; one missing from the
    validation or test split leaves the threshold or the test AUC undefined. Each problem
    says how many images and patients of the class there are and, given the split settings
    ``split_cfg`` (``RunConfig.split``), how many patients each class needs
    (:func:`patients_needed`).

    Examples
    --------
    >>> t = pd.DataFrame({"split": ["train", "train", "val", "test"],
    ...                   "label": ["a", "a", "b", "a"]})
    >>> split_problems(t, "binary", ["a", "b"])[0]
    "split: class 'b' has no sample in the train and test splits (train 0, val 1, test 0 images; 1 in all); add samples or change split.val / split.test"
    """  # noqa: E501
    errors = []
    for part in ("train", "val", "test"):
        if not (split["split"] == part).any():
            errors.append(f"split: the {part} split has no sample ({len(split)} samples in "
                          "all); add samples or change split.val / split.test")
    if task == "multilabel" or errors:
        return errors
    labels = split["label"].astype(str)
    groups = split["group"].astype(str) if "group" in split.columns else None
    need = patients_needed(split_cfg)
    missing: list[tuple[bool, str]] = []
    for c in classes:
        per = {p: int(((split["split"] == p) & (labels == c)).sum())
               for p in ("train", "val", "test")}
        empty = [p for p, n in per.items() if n == 0]
        if not empty:
            continue
        n_pat = int(groups[labels == c].nunique()) if groups is not None else None
        have = (f"train {per['train']}, val {per['val']}, test {per['test']} images; "
                f"{sum(per.values())} in all" + (f" of {n_pat} patient(s)" if n_pat is not None
                                                 else "") + ")")
        hint = ("add samples or change split.val / split.test" if need is None else
                f"each class needs images of at least {need} patients (so at least {need} "
                f"images) to reach every split: {need_reason(split_cfg)}; add samples of "
                f"{c!r} or change the split settings")
        missing.append((empty[0] != "train", f"split: class {c!r} has no sample in the "
                        f"{' and '.join(empty)} split{'s' if len(empty) > 1 else ''} "
                        f"({have}; {hint}"))
    # a class the model cannot learn first, then those the evaluation cannot measure
    return errors + [text for _, text in sorted(missing, key=lambda m: m[0])]


def patients_needed(split_cfg: Any) -> int | None:
    """The fewest patients of a class with which every split can hold the class.

    Patients are dealt to the splits as folds of a stratified group k-fold
    (:func:`imaging_tl.data.split_table`): the test split is one of ``k_test = round(1 /
    split.test)`` folds and the validation split one of ``k_val = round((1 - split.test) /
    split.val)`` folds of the rest, so a class needs ``k_test`` patients to reach the test
    split and ``k_val`` patients outside it to reach the validation split. With k-fold
    cross-validation the test split is carved the same way and ``k_val`` is
    ``split.folds`` (every fold must hold the class). None for a split file (its splits
    are given).

    Examples
    --------
    >>> from imaging_tl.config.schema import SplitConfig
    >>> patients_needed(SplitConfig(val=0.2, test=0.2)), patients_needed(SplitConfig(
    ...     method="kfold", folds=5))
    (5, 7)
    """
    if split_cfg is None or split_cfg.file is not None:
        return None
    k_test, k_val = _folds_of(split_cfg)
    return max(k_test, math.ceil(k_val * k_test / (k_test - 1)))


def need_reason(split_cfg: Any) -> str:
    """Why :func:`patients_needed` asks for that many patients, in words.

    Examples
    --------
    >>> from imaging_tl.config.schema import SplitConfig
    >>> need_reason(SplitConfig(val=0.2, test=0.2))
    'the test split is 1 of 5 folds of patients (split.test 0.2), the val split 1 of 4 folds of the rest (split.val 0.2)'
    """  # noqa: E501
    k_test, k_val = _folds_of(split_cfg)
    if split_cfg.method == "kfold":
        return (f"the test split is 1 of {k_test} folds of patients (split.test "
                f"{split_cfg.test:g}), each of the {k_val} folds of the rest validates once "
                "(split.folds)")
    return (f"the test split is 1 of {k_test} folds of patients (split.test "
            f"{split_cfg.test:g}), the val split 1 of {k_val} folds of the rest (split.val "
            f"{split_cfg.val:g})")


def _folds_of(split_cfg: Any) -> tuple[int, int]:
    """The fold counts :func:`imaging_tl.data.split_table` deals test and val with (k-fold:
    the test split's, and ``split.folds``)."""
    from imaging_tl.data.splits import holdout_folds

    k_test, k_val = holdout_folds(float(split_cfg.val), float(split_cfg.test))
    return (k_test, int(split_cfg.folds)) if split_cfg.method == "kfold" else (k_test, k_val)


def colour_mix(paths: list[str], limit: int = COLOUR_SAMPLE) -> dict[str, int]:
    """How many of (up to ``limit``, evenly spread) ``paths`` are stored as grey or colour,
    from their headers only (files that cannot be read are counted as ``unreadable``).

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> colour_mix([get_testdata_file("CT_small.dcm", download=False),
    ...             get_testdata_file("SC_rgb.dcm", download=False)])
    {'grey': 1, 'colour': 1, 'unreadable': 0, 'looked': 2}
    """
    from imaging_tl.io import ScanReadError
    from imaging_tl.io.reader import read_header

    if len(paths) > limit:
        paths = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, limit)]
    counts: Counter[str] = Counter()
    for p in paths:
        try:
            meta = read_header(p)
        except (ScanReadError, OSError, ValueError):
            counts["unreadable"] += 1
            continue
        counts["colour" if int(meta.get("SamplesPerPixel") or 1) == 3 else "grey"] += 1
    return {"grey": counts["grey"], "colour": counts["colour"],
            "unreadable": counts["unreadable"], "looked": len(paths)}


def grey_only_before_colour(stages: list[dict[str, Any]]) -> str | None:
    """The name of the first grey-only stage that no colour stage (``color``,
    ``to_grey``) precedes, or None.

    Examples
    --------
    >>> grey_only_before_colour([{"name": "window", "mode": "header"}])
    'window'
    >>> grey_only_before_colour([{"name": "to_grey"}, {"name": "window"}]) is None
    True
    """
    from imaging_tl.stages import get_stage_class

    for stage in stages:
        try:
            cls = get_stage_class(stage.get("name"))
        except ValueError:
            continue
        if cls.name in ("color", "to_grey"):
            return None
        if cls.grey_only:
            return cls.name
    return None
