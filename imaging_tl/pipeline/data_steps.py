"""The data steps of a run: census, splits, preprocessing into the cache, arrays per split."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd

from imaging_tl._atomic import readable_text, write_csv, write_text
from imaging_tl.data import BadFileError, encode_labels, prepare, write_splits
from imaging_tl.data.prepare import quarantine_verdict
from imaging_tl.data.series import sample_around_positive, sample_slices
from imaging_tl.pipeline.inputs import (
    InputError,
    census_root,
    census_table,
    cv_split_table,
    data_manifest_hash,
    is_crossval,
    load_inputs,
    split_of,
    task_and_classes,
)
from imaging_tl.pipeline.state import RunState, SplitArrays
from imaging_tl.stages import Pipeline

__all__ = ["census_step", "prepare_step", "splits_step", "start_step", "training_slices"]


def start_step(state: RunState) -> None:
    """Say where the run writes, and write its resolved ``config.yaml``."""
    plan, run_dir = state.plan, state.run_dir
    if not plan.is_chief and state.resume is not None:
        # resume from the chief's checkpoints (read only), into this worker's scratch copy
        if (state.resume / "checkpoints").is_dir():
            shutil.copytree(state.resume / "checkpoints", state.checkpoints)
    state.log(f"run directory {run_dir}" if plan.is_chief else
              f"worker {plan.task_index}: scratch folder {run_dir} (the chief writes the run)")
    state.log(plan.describe())
    state.paths["run_dir"] = run_dir
    if state.resume is None or not plan.is_chief:
        state.paths["config"] = write_text(run_dir / "config.yaml", state.cfg.to_yaml())
    else:
        state.paths["config"] = run_dir / "config.yaml"


def census_step(state: RunState) -> None:
    """The dataset table, its task and classes, and ``census.csv``."""
    cfg = state.cfg
    table = load_inputs(cfg)
    state.task, state.classes = task_and_classes(cfg, table)
    root = census_root(cfg)
    state.log(f"dataset: {len(table)} samples from {table['path'].nunique()} files, "
              f"{state.task} task, classes {state.classes}")
    if table.attrs.get("unit") == "series":
        report = table.attrs.get("series_report") or []
        state.log(f"series: {table['series'].nunique()} labelled series, their slices are the "
                  f"samples; {len(report)} left out" + (":" if report else ""))
        for line in report[:10]:
            state.log(f"  {line}")
        if cfg.data.slice_labels is not None:
            state.log(f"slice labels: {table.attrs.get('slice_labelled', 0)} series train on "
                      "their slices' own labels")
    state.paths["census"] = write_csv(state.run_dir / "census.csv", census_table(table, root))
    state.table = table


def splits_step(state: RunState) -> None:
    """Patient-level splits (audited for leakage) into ``splits.csv``; a resumed run must
    find the same splits it started with."""
    table = split_of(state.cfg, state.table)
    # cross-validation: splits.csv says test or cv (and the fold); the run's table keeps
    # fold 0's train/val/test until the folds are trained
    written = cv_split_table(table) if is_crossval(state.cfg) else table
    splits_csv = state.run_dir / "splits.csv"
    if state.resume is not None and splits_csv.is_file():
        before = pd.read_csv(splits_csv, dtype=str, keep_default_na=False)
        now = written.assign(frame=written["frame"].astype(str).replace("<NA>", ""))
        a = sorted(zip(before["path"], before["split"], strict=True))
        # splits.csv holds undecodable file names escaped (readable_text): compare so
        b = sorted(zip(now["path"].map(readable_text), now["split"], strict=True))
        if a != b:
            raise InputError(f"--resume {state.run_dir}: the data or its splits changed since "
                             "the run started; start a new run")
    state.paths["splits"] = write_splits(written, splits_csv)
    state.counts = {k: int((written["split"] == k).sum()) for k in (
        ("cv", "test") if written is not table else ("train", "val", "test"))}
    folds = f" in {state.cfg.split.folds} folds" if written is not table else ""
    state.log("splits: " + ", ".join(f"{k} {v}" for k, v in state.counts.items()) + folds
              + f" ({table['group'].nunique()} groups by {table['group_key'].iloc[0]})")
    state.table = table


def prepare_step(state: RunState) -> None:
    """Preprocess every file into the array cache (bad files quarantined), then load the
    arrays of each split."""
    cfg = state.cfg
    state.pipe = Pipeline.from_config(cfg.preprocessing)
    try:
        prepared = prepare(state.table, state.pipe, cache=cfg.cache_dir, workers=cfg.workers,
                           strict=cfg.data.strict, progress=state.log.tty and state.log.verbose,
                           decode=cfg.data.decode)
    except BadFileError as exc:
        raise InputError(f"data.strict is on and a file is bad: {exc}") from None
    state.log(prepared.summary())
    verdict = quarantine_verdict(prepared)
    if verdict is not None:
        raise InputError(verdict)
    try:
        prepared.shape  # noqa: B018 - raises when the prepared arrays differ in shape
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if cfg.data.unit == "series":
        prepared.table = training_slices(state, prepared.table)
    tab = prepared.table
    for part in ("train", "val", "test"):
        if not (tab["split"] == part).any():
            raise InputError(f"no readable sample left in the {part} split")
    state.prepared, state.manifest = prepared, data_manifest_hash(tab)
    classes = state.classes if state.task != "multilabel" else None
    for part in ("train", "val", "test"):
        idx = np.flatnonzero((tab["split"] == part).to_numpy())
        rows = tab.iloc[idx].reset_index(drop=True)
        x = np.stack([prepared.load(int(i)) for i in idx])
        y, _, _ = encode_labels(rows, classes)
        state.splits[part] = SplitArrays(x.astype(np.float32, copy=False), y, rows)


def training_slices(state: RunState, table: pd.DataFrame) -> pd.DataFrame:
    """The slices a series run trains on (``data.slice_sampling``; validation and test keep
    every slice), said in the log.

    Examples
    --------
    >>> training_slices(state, prepared.table)  # doctest: +SKIP
    """
    d = state.cfg.data
    sampling = d.slice_sampling or ("every_k" if d.slice_step > 1 else "all")
    before = int((table["split"] == "train").sum())
    if sampling == "every_k" and d.slice_step > 1:
        table = sample_slices(table, d.slice_step)
        how = f"every slice_step={d.slice_step} slice"
    elif sampling == "around_positive":
        table = sample_around_positive(table, state.classes[-1], margin=d.slice_margin,
                                       rest=d.slice_rest, seed=state.cfg.seed)
        how = (f"the {state.classes[-1]!r} slices, those within slice_margin={d.slice_margin} "
               f"and a share slice_rest={d.slice_rest} of the others")
    else:
        return table
    state.log(f"training on {how}: {int((table['split'] == 'train').sum())} of {before} "
              "slices")
    return table
