"""The scores of a series run's split predicted again (``imaging-tl evaluate RUN`` on a run
with ``data.unit: series``): every series of the split is read, ordered and predicted
slice by slice as the model's contract says (the ``stack`` stage's neighbours), and each
slice's probabilities are matched to its row of ``splits.csv`` (its label, its patient).
The series they belong to are the units the evaluation aggregates by, as the run did."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl._atomic import read_csv, readable_text
from imaging_tl.pipeline.inputs import InputError, label_targets
from imaging_tl.pipeline.predict import predict_files

__all__ = ["series_split_scores"]


def _slice_key(paths: Any, frames: Any) -> list[str]:
    """``path#frame`` (frame empty for a single-frame file), to match slices to rows."""
    out = []
    for p, f in zip(paths, frames, strict=True):
        blank = f is None or (isinstance(f, float) and np.isnan(f)) or pd.isna(f) or f == ""
        out.append(f"{p}#{'' if blank else int(float(f))}")
    return out


def series_split_scores(model: str | Path, table: pd.DataFrame, task: str,
                        classes: list[str]
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                   list[dict[str, str]]]:
    """Slice labels, slice scores, patient keys and series keys of the rows of ``table``
    (``splits.csv`` rows: ``path, frame, label, group``) whose series could be predicted,
    and the series that could not (``path``, ``reason``).

    Examples
    --------
    >>> series_split_scores("runs/ct/model.keras", test_rows, "binary", ["normal", "lesion"])
    ... # doctest: +SKIP
    """
    files = list(dict.fromkeys(table["path"].astype(str)))
    with tempfile.TemporaryDirectory() as tmp:
        per_series = predict_files(model, files, slice_csv=Path(tmp) / "slices.csv",
                                   domain="off")
        slices = read_csv(Path(tmp) / "slices.csv", dtype={"series": str, "path": str})
    bad = [{"path": readable_text(str(r.path)), "reason": str(r.reason)}
           for r in per_series[per_series["status"] != "ok"].itertuples()]
    frames = slices["frame"] if "frame" in slices.columns else [None] * len(slices)
    slices.index = pd.Index(_slice_key(slices["path"], frames))
    keys = _slice_key(table["path"].astype(str), table["frame"] if "frame" in table.columns
                      else [None] * len(table))
    hit = np.array([k in slices.index for k in keys], dtype=bool)
    rows, keys = table[hit].reset_index(drop=True), [k for k, h in zip(keys, hit,
                                                                     strict=True) if h]
    if rows.empty:
        raise InputError("no series of the split could be predicted again")
    probs = slices.loc[keys, [f"prob_{c}" for c in classes]].to_numpy(np.float32)
    units = slices.loc[keys, "series"].astype(str).to_numpy()
    groups = rows["group"].astype(str).to_numpy()
    y = label_targets(rows["label"], classes, task)
    return y, probs[:, 1] if task == "binary" else probs, groups, units, bad
