"""2.5-D samples from cached slices: the data side of the :class:`~imaging_tl.stages.Stack`
stage.

:func:`imaging_tl.data.prepare.prepare` runs the stages before ``stack`` on each slice and
caches each slice's array once (the namespace is that of the slice pipeline, so any
``stack`` offsets share it). :func:`stack_columns` then gives each row of the prepared
table the cache entries of its neighbours (``stack_entries``: ``(file, offset, tiled,
checksum)`` per channel group, from the same series, past the ends the nearest slice);
:func:`load_stacked` and the tf.data reader (:mod:`imaging_tl.data.tfdata`) read exactly
those slices for a sample, never a whole volume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl.data.cache import load_entry
from imaging_tl.stages import Pipeline, Stack

__all__ = ["STACK_COLUMN", "load_stacked", "split_stack", "stack_columns"]

#: The prepared table's column of neighbour entries.
STACK_COLUMN = "stack_entries"


def split_stack(pipeline: Callable | None) -> tuple[Callable | None, Stack | None]:
    """``(the slice pipeline, the Stack stage)`` when ``pipeline`` ends with ``stack``.

    Raises
    ------
    ValueError
        ``stack`` anywhere but last (the stages after it would not see the neighbours).

    Examples
    --------
    >>> from imaging_tl.stages import Resize
    >>> slice_pipe, stack = split_stack(Pipeline([Resize(8), Stack()]))
    >>> len(slice_pipe), stack.offsets
    (1, [-1, 0, 1])
    >>> split_stack(Pipeline([Resize(8)]))[1] is None
    True
    """
    if not isinstance(pipeline, Pipeline):
        return pipeline, None
    stages = list(pipeline)
    where = [i for i, s in enumerate(stages) if isinstance(s, Stack)]
    if not where:
        return pipeline, None
    if where != [len(stages) - 1]:
        raise ValueError("stack: must be the last preprocessing stage, and only once (the "
                         "stages before it run on each slice)")
    last = stages[-1]
    assert isinstance(last, Stack)
    return Pipeline(stages[:-1]), last


def _neighbour_rows(table: pd.DataFrame, stack: Stack) -> list[list[int]]:
    """Per row, the row positions of its neighbours (within its series, by ``slice``)."""
    out: list[list[int]] = [[i] * len(stack.offsets) for i in range(len(table))]
    if "series" not in table.columns or "slice" not in table.columns:
        return out  # images, not series: each is its own neighbour
    spacing = table["slice_spacing"] if "slice_spacing" in table.columns else None
    order = table.reset_index(drop=True).sort_values(["series", "slice"], kind="stable")
    for _, rows in order.groupby("series", sort=False):
        positions = rows.index.to_list()  # available slices in order (quarantined ones gone)
        step = None if spacing is None else float(spacing.iloc[positions[0]])
        for k, i in enumerate(positions):
            out[i] = [positions[j] for j in stack.neighbours(k, len(positions), step)]
    return out


def stack_columns(table: pd.DataFrame, stack: Stack) -> pd.DataFrame:
    """The prepared ``table`` with each row's neighbour entries and the stacked shape.

    Examples
    --------
    >>> t = pd.DataFrame({"series": ["a"] * 3, "slice": [2, 0, 1], "cache_file": list("zxy"),
    ...                   "offset": [0] * 3, "tiled": [0] * 3, "checksum": [None] * 3,
    ...                   "shape": [(4, 4)] * 3})
    >>> out = stack_columns(t, Stack())
    >>> [[e[0] for e in row] for row in out["stack_entries"]], out["shape"][0]
    ([['y', 'z', 'z'], ['x', 'x', 'y'], ['x', 'y', 'z']], (4, 4, 3))
    """
    out = table.reset_index(drop=True).copy()
    entries = list(zip(out["cache_file"], out["offset"].astype(int), out["tiled"].astype(int),
                       out["checksum"], strict=True))
    neighbours = [tuple(entries[j] for j in rows) for rows in _neighbour_rows(out, stack)]
    out[STACK_COLUMN] = pd.Series(neighbours, index=out.index, dtype=object)
    out["shape"] = [_stacked_shape(tuple(s), len(stack.offsets)) for s in out["shape"]]
    return out


def _stacked_shape(shape: tuple[int, ...], n: int) -> tuple[int, ...]:
    channels = shape[2] if len(shape) == 3 else 1
    return (int(shape[0]), int(shape[1]), channels * n)


def load_stacked(entries: Sequence[tuple[Any, ...]]) -> np.ndarray:
    """One sample from its neighbours' cache entries (each checked against its checksum).

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> files = [os.path.join(d, f"{v}.npy") for v in range(2)]
    >>> for v, f in enumerate(files): np.save(f, np.full((2, 2), v, np.float32))
    >>> load_stacked([(files[0], 0, 0, None), (files[1], 0, 0, None)])[0, 0].tolist()
    [0.0, 1.0]
    """
    parts = [load_entry(file, tiled, checksum) for file, _, tiled, checksum in entries]
    return np.concatenate([p[..., None] if p.ndim == 2 else p for p in parts], axis=-1)
