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

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl.config import RunConfig
from imaging_tl.pipeline.inputs import InputError, load_inputs, split_of, task_and_classes

__all__ = ["colour_mix", "early_checks", "grey_only_before_colour", "split_problems"]

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
    errors = split_problems(split, task, classes)
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


def split_problems(split: pd.DataFrame, task: str, classes: list[str]) -> list[str]:
    """Splits without samples, and (single-label) classes absent from the training split.

    Examples
    --------
    >>> t = pd.DataFrame({"split": ["train", "train", "val", "test"],
    ...                   "label": ["a", "a", "b", "a"]})
    >>> split_problems(t, "binary", ["a", "b"])
    ["split: class 'b' has no sample in the train split (val 1, test 0); add samples or change split.val / split.test"]
    """  # noqa: E501
    errors = []
    for part in ("train", "val", "test"):
        if not (split["split"] == part).any():
            errors.append(f"split: the {part} split has no sample ({len(split)} samples in "
                          "all); add samples or change split.val / split.test")
    if task == "multilabel" or errors:
        return errors
    labels = split["label"].astype(str)
    for c in classes:
        per = {p: int(((split["split"] == p) & (labels == c)).sum())
               for p in ("train", "val", "test")}
        if per["train"] == 0:
            errors.append(f"split: class {c!r} has no sample in the train split (val "
                          f"{per['val']}, test {per['test']}); add samples or change "
                          "split.val / split.test")
    return errors


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
