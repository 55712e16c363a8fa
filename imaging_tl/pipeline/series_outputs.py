"""The series side of a run with ``data.unit: series``: evaluation per series, and the
name of ``series_predictions.csv`` (its rows: :func:`imaging_tl.pipeline.predict.
series_prediction_rows`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["SERIES_FILE", "series_evaluation_options"]

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
