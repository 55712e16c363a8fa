"""``evaluate.subgroups`` in a run: each test image's groups, from the census or the CSV.

The header attributes (``sex``, ``age_band``, ``manufacturer``, ``model``, ``site``,
``view``, ``body_part``; see :data:`imaging_tl.io.subgroup_tags.SUBGROUP_ATTRIBUTES`) are
read from the run's ``census.csv`` (pseudonymous site codes, age bands); any other name is
a column of ``data.csv``. The figures are :func:`imaging_tl.evaluate.subgroup_metrics` at
the run's operating point, with the run's seed and bootstrap count.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl._atomic import read_csv, readable_text
from imaging_tl.io.subgroup_tags import SUBGROUP_ATTRIBUTES
from imaging_tl.pipeline.inputs import InputError, census_root

__all__ = ["subgroup_attributes", "subgroup_evaluation"]


def subgroup_attributes(names: list[str], rows: pd.DataFrame, census: pd.DataFrame | None,
                        root: Path | None) -> dict[str, np.ndarray]:
    """Each name's value per row of ``rows`` (a split's table rows, with ``path``).

    Parameters
    ----------
    names : list of str
        ``evaluate.subgroups``.
    rows : pandas.DataFrame
        The rows evaluated (their CSV columns included).
    census : pandas.DataFrame, optional
        The run's census (paths relative to ``root``); needed for header attributes.
    root : pathlib.Path, optional
        The data root the census paths are relative to.

    Examples
    --------
    >>> rows = pd.DataFrame({"path": ["/d/a.dcm", "/d/b.dcm"], "ward": ["x", "y"]})
    >>> census = pd.DataFrame({"path": ["a.dcm", "b.dcm"], "PatientSex": ["F", None]})
    >>> out = subgroup_attributes(["sex", "ward"], rows, census, Path("/d"))
    >>> out["sex"].tolist(), out["ward"].tolist()
    (['F', None], ['x', 'y'])
    """
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name in rows.columns and name not in SUBGROUP_ATTRIBUTES:
            out[name] = rows[name].to_numpy(dtype=object)
            continue
        column = SUBGROUP_ATTRIBUTES.get(name)
        if column is None:
            raise InputError(f"evaluate.subgroups: {name!r} is not a column of the data")
        if census is None or column not in census.columns:
            raise InputError(f"evaluate.subgroups: {name!r} needs the census column {column!r}")
        shown = [readable_text(os.path.relpath(p, root) if root is not None else str(p))
                 for p in rows["path"]]
        values = census.drop_duplicates("path").set_index("path")[column]
        looked = values.reindex(shown)
        out[name] = looked.astype(object).where(looked.notna(), None).to_numpy()
    return out


def subgroup_evaluation(state: Any, scores: np.ndarray) -> dict[str, Any]:
    """The ``subgroups`` section of ``metrics.json`` for a finished evaluation of ``state``
    (binary tasks; others get ``{"skipped": reason}``).

    Examples
    --------
    >>> subgroup_evaluation(state, scores)["worst_group_auc"]  # doctest: +SKIP
    """
    from imaging_tl.evaluate import subgroup_metrics

    cfg = state.cfg
    names = list(cfg.evaluate.subgroups)
    if state.task != "binary":
        return {"skipped": f"subgroup figures are given for binary tasks (this is {state.task})"}
    rows = state.splits["test"].rows
    census_file = state.run_dir / "census.csv"
    census = read_csv(census_file, dtype=str) if census_file.is_file() else None
    attrs = subgroup_attributes(names, rows, census, census_root(cfg))
    return subgroup_metrics(
        np.asarray(state.splits["test"].y).reshape(-1), scores, attrs,
        threshold=state.threshold, groups=rows["group"].astype(str).to_numpy(),
        n_bootstraps=cfg.evaluate.bootstrap, seed=cfg.seed)
