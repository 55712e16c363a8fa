"""The series side of a run with ``data.unit: series``: evaluation per series, and
``series_predictions.csv`` (one row per series, its probability aggregated from its
slices' as ``evaluate.series_aggregate`` says)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from imaging_tl.evaluate.aggregation import aggregate_scores
from imaging_tl.io.pseudonyms import pseudonymize
from imaging_tl.pipeline.predict import decisions, probability_columns

__all__ = ["SERIES_FILE", "series_evaluation_options", "series_prediction_rows"]

#: The run directory's table of series predictions.
SERIES_FILE = "series_predictions.csv"


def series_evaluation_options(cfg: Any, val_rows: pd.DataFrame,
                              test_rows: pd.DataFrame) -> dict[str, Any]:
    """Keyword arguments of :func:`imaging_tl.evaluate.evaluate` that make a series run's
    evaluation one row per series (CIs resampling patients); ``{}`` for an image run.

    Examples
    --------
    >>> from imaging_tl.config import RunConfig
    >>> series_evaluation_options(RunConfig.model_validate({"data": {"folder": "x"}}),
    ...                           pd.DataFrame(), pd.DataFrame())
    {}
    """
    if cfg.data.unit != "series":
        return {}
    return {"aggregate": cfg.evaluate.series_aggregate, "top_k": cfg.evaluate.top_k,
            "units": test_rows["series"].to_numpy(), "val_units": val_rows["series"].to_numpy()}


def series_prediction_rows(rows: pd.DataFrame, probs: np.ndarray, *, task: str,
                           classes: list[str], threshold: float, how: str, top_k: int,
                           split: str | None = None) -> pd.DataFrame:
    """One row per series: its patient (pseudonym), label, slice count, aggregated
    probabilities, decision, and the slice that decided (highest probability of the
    positive class, binary; else of the predicted class).

    Examples
    --------
    >>> rows = pd.DataFrame({"series": ["s1"] * 3, "group": ["pid:1"] * 3, "slice": [0, 1, 2],
    ...                      "path": ["a", "b", "c"], "label": ["lesion"] * 3})
    >>> out = series_prediction_rows(rows, np.array([[0.1], [0.8], [0.3]]), task="binary",
    ...                              classes=["normal", "lesion"], threshold=0.5, how="max",
    ...                              top_k=3)
    >>> out[["n_slices", "prob_lesion", "predicted", "deciding_path"]].values.tolist()
    [[3, 0.8, 'lesion', 'b']]
    """
    keys, codes = np.unique(rows["series"].astype(str).to_numpy(), return_inverse=True)
    p = np.asarray(probs, dtype=np.float64)
    p2 = p.reshape(len(rows), -1)
    agg = aggregate_scores(p2, codes, len(keys), how, top_k,  # type: ignore[arg-type]
                           renormalise=task == "multiclass")
    first = np.array([np.flatnonzero(codes == k)[0] for k in range(len(keys))])
    column = p2[:, -1] if task == "binary" else p2[np.arange(len(p2)), p2.argmax(1)]
    deciding = np.array([np.flatnonzero(codes == k)[np.argmax(column[codes == k])]
                         for k in range(len(keys))])
    out = pd.DataFrame({"series": keys,
                        "group": pseudonymize(rows["group"].astype(str).to_numpy()[first]),
                        "n_slices": np.bincount(codes, minlength=len(keys))})
    if split is not None:
        out.insert(1, "split", split)
    if "label" in rows.columns:
        out["label"] = rows["label"].astype(str).to_numpy()[first]
    for name, values in probability_columns(task, classes, agg).items():
        out[name] = values
    out["predicted"] = decisions(task, classes, agg, threshold)
    out["deciding_slice"] = rows["slice"].to_numpy()[deciding]
    out["deciding_path"] = rows["path"].astype(str).to_numpy()[deciding]
    return out
