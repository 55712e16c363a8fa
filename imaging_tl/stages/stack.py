"""2.5-D inputs: neighbouring slices of a series as the channels of one image.

:class:`Stack` is the last stage of a series pipeline (``data.unit: series``). The stages
before it run on each slice alone, and each slice's result is cached once; the data layer
(:mod:`imaging_tl.data.stacking`) then builds sample ``k`` of a series from the cached
slices ``k + offset`` for each offset (slices past either end repeat the nearest slice),
joined along the channel axis by :meth:`Stack.combine`. Composable with windows: one
window on three slices (``window``, ``resize``, ``stack`` with offsets ``[-1, 0, 1]``), or
three windows on one slice (``multi_window``, ``resize``, ``stack`` with offsets ``[0]``).

Applied to a single image (a file predicted on its own), every offset is the image itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imaging_tl.stages.base import Stage, check_choice, register_stage

__all__ = ["Stack"]

_DEFAULT_OFFSETS = (-1, 0, 1)
_UNITS = ("slices", "mm")


@register_stage
class Stack(Stage):
    """Neighbouring slices as channels: the 2.5-D input of a series.

    Parameters
    ----------
    offsets : sequence of int or float
        Where the channels come from, relative to the slice (default ``[-1, 0, 1]``: the
        previous, the slice itself and the next). One to eight values.
    unit : {"slices", "mm"}
        Offsets counted in slices, or in millimetres along the slice normal (rounded to the
        nearest slice with the series' spacing).

    Examples
    --------
    >>> import numpy as np
    >>> s = Stack()
    >>> slices = [np.full((2, 2), v, np.float32) for v in (0.1, 0.2, 0.3)]
    >>> s.combine(slices)[0, 0].tolist()
    [0.10000000149011612, 0.20000000298023224, 0.30000001192092896]
    >>> s.neighbours(0, 5), s.neighbours(4, 5)
    ([0, 0, 1], [3, 4, 4])
    >>> Stack(offsets=[-10, 0, 10], unit="mm").neighbours(5, 20, spacing=5.0)
    [3, 5, 7]
    """

    name = "stack"

    def __init__(self, offsets: Sequence[float] = _DEFAULT_OFFSETS, unit: str = "slices") -> None:
        self.unit = check_choice("Stack", "unit", unit, _UNITS)
        if isinstance(offsets, (str, bytes)) or not isinstance(offsets, Sequence):
            raise self._error("offsets", f"must be a list of numbers, got {offsets!r}")
        values = list(offsets)
        if not 1 <= len(values) <= 8:
            raise self._error("offsets", f"must hold 1 to 8 values, got {len(values)}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise self._error("offsets", f"must be numbers, got {v!r}")
            if self.unit == "slices" and float(v) != int(v):
                raise self._error("offsets", f"in slices must be whole numbers, got {v!r} "
                                  "(use unit: mm for millimetres)")
            if abs(v) > (64 if self.unit == "slices" else 500):
                raise self._error("offsets", f"{v!r} is too far from the slice")
        self.offsets = [int(v) if self.unit == "slices" else float(v) for v in values]

    def get_params(self) -> dict[str, Any]:
        p: dict[str, Any] = {}
        if self.offsets != list(_DEFAULT_OFFSETS):
            p["offsets"] = list(self.offsets)
        if self.unit != "slices":
            p["unit"] = self.unit
        return p

    def range_effect(self) -> str:
        return "keep"  # channels are copies of slices

    def steps(self, spacing: float | None = None) -> list[int]:
        """The offsets in slices (``unit: mm`` divides by ``spacing``, the slice distance).

        Raises
        ------
        ValueError
            ``unit`` is mm and the spacing is unknown (a series ordered without positions).
        """
        if self.unit == "slices":
            return [int(o) for o in self.offsets]
        if spacing is None or not np.isfinite(spacing) or spacing <= 0:
            raise self._error("unit", "mm needs the series' slice spacing, which is unknown "
                              "(no ImagePositionPatient); use offsets in slices")
        return [int(round(o / spacing)) for o in self.offsets]

    def neighbours(self, k: int, n: int, spacing: float | None = None) -> list[int]:
        """The slice indices feeding slice ``k`` of ``n``: past the ends, the nearest slice."""
        return [min(max(k + step, 0), n - 1) for step in self.steps(spacing)]

    def combine(self, slices: Sequence[np.ndarray]) -> np.ndarray:
        """Join the neighbours' arrays (``H x W`` or ``H x W x C`` each) along the channels.

        Raises
        ------
        ValueError
            A wrong count, or slices of different shapes (resize them first).
        """
        if len(slices) != len(self.offsets):
            raise self._error("slices", f"expected {len(self.offsets)}, got {len(slices)}")
        parts = [s[..., None] if s.ndim == 2 else s for s in slices]
        shapes = {p.shape for p in parts}
        if len(shapes) != 1:
            raise ValueError(f"Stack: neighbouring slices differ in shape ({sorted(shapes)}); "
                             "put a resize stage before stack")
        return np.concatenate(parts, axis=-1).astype(np.float32, copy=False)

    def _transform(self, image: np.ndarray, meta: Mapping[str, Any]):
        return self.combine([image] * len(self.offsets)), {"neighbours": "none (one image)"}

    def _meta_updates(self, out: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        return {"SamplesPerPixel": int(out.shape[-1])}
