"""The rows of prediction tables: probability columns, decisions, one row per series
(aggregated as the run did) and one row per slice."""

from __future__ import annotations

import numpy as np
import pandas as pd

from imaging_tl.evaluate.aggregation import aggregate_scores
from imaging_tl.io.pseudonyms import pseudonymize

__all__ = ["decisions", "probability_columns", "series_prediction_rows",
           "slice_prediction_rows"]


def probability_columns(task: str, classes: list[str],
                        probs: np.ndarray) -> dict[str, np.ndarray]:
    """``prob_<class>`` columns of model outputs (binary: both classes).

    Examples
    --------
    >>> cols = probability_columns("binary", ["normal", "nodule"], np.array([[0.25]]))
    >>> {k: v.tolist() for k, v in cols.items()}
    {'prob_normal': [0.75], 'prob_nodule': [0.25]}
    """
    # float64: its CSV text reads back exactly, so "prob >= threshold" agrees with the file
    probs = np.asarray(probs, dtype=np.float64)
    if task == "binary":
        p = probs.reshape(-1)
        return {f"prob_{classes[0]}": 1.0 - p, f"prob_{classes[1]}": p}
    return {f"prob_{c}": probs[:, i] for i, c in enumerate(classes)}


def decisions(task: str, classes: list[str], probs: np.ndarray, threshold: float) -> list[str]:
    """The predicted label of each row (multilabel: the labels at or above the threshold,
    joined by ``;``).

    Examples
    --------
    >>> decisions("binary", ["normal", "nodule"], np.array([[0.7], [0.2]]), 0.5)
    ['nodule', 'normal']
    """
    if task == "binary":
        return [classes[1] if p >= threshold else classes[0] for p in probs.reshape(-1)]
    if task == "multiclass":
        return [classes[i] for i in probs.argmax(1)]
    return [";".join(c for c, on in zip(classes, row >= threshold, strict=True) if on)
            for row in probs]


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
    label = "series_label" if "series_label" in rows.columns else "label"
    if label in rows.columns:  # slice labels: the series' own (derived) label
        out["label"] = rows[label].astype(str).to_numpy()[first]
    for name, values in probability_columns(task, classes, agg).items():
        out[name] = values
    out["predicted"] = decisions(task, classes, agg, threshold)
    out["deciding_slice"] = rows["slice"].to_numpy()[deciding]
    out["deciding_path"] = rows["path"].astype(str).to_numpy()[deciding]
    return out


def slice_prediction_rows(rows: pd.DataFrame, probs: np.ndarray, *, task: str,
                          classes: list[str]) -> pd.DataFrame:
    """One row per slice: its series, its place in the series, its file (and frame, where
    ``rows`` has one: blank for a single-frame file) and its probabilities
    (``slice_predictions.csv`` of ``imaging-tl predict --per-slice``).

    Examples
    --------
    >>> rows = pd.DataFrame({"series": ["s1"] * 2, "slice": [0, 1], "path": ["a", "b"]})
    >>> out = slice_prediction_rows(rows, np.array([[0.1], [0.8]]), task="binary",
    ...                             classes=["normal", "lesion"])
    >>> out.columns.tolist(), out["prob_lesion"].tolist()
    (['series', 'slice', 'path', 'prob_normal', 'prob_lesion'], [0.1, 0.8])
    """
    p = np.asarray(probs, dtype=np.float64)
    p = p.reshape(len(p), -1) if p.ndim > 1 else p.reshape(-1, 1)
    out = pd.DataFrame({"series": rows["series"].astype(str).to_numpy(),
                        "slice": rows["slice"].astype(int).to_numpy(),
                        "path": rows["path"].astype(str).to_numpy()})
    if "frame" in rows.columns:
        out["frame"] = rows["frame"].astype("Int64").to_numpy()
    for name, values in probability_columns(task, classes, p).items():
        out[name] = values
    return out
