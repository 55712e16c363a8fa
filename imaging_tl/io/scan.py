"""The :class:`Scan` record: pixels, normalised header fields and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Scan:
    """One image as read from disk, with what was done to it.

    Attributes
    ----------
    pixels : numpy.ndarray
        float32. ``H x W`` for grey, ``H x W x 3`` for colour, ``F x H x W`` (or
        ``F x H x W x 3``) for multi-frame files read without ``frame=``. DICOM grey values
        are in modality units (after the Modality LUT), e.g. Hounsfield units for CT.
    meta : dict
        Normalised header fields (plain Python values). Never holds the patient's name or
        birth date.
    provenance : list of str
        What was applied, in order, e.g. ``"modality_lut: slope=1 intercept=-1024"``.
    path : str or None
        The file the scan came from.

    Examples
    --------
    >>> import numpy as np
    >>> s = Scan(np.zeros((2, 2), np.float32), {"Modality": "CT"}, ["read: test"])
    >>> s.with_pixels(s.pixels + 1, "add: 1").provenance
    ['read: test', 'add: 1']
    """

    pixels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    provenance: list[str] = field(default_factory=list)
    path: str | None = None

    @property
    def is_colour(self) -> bool:
        """True when the last axis holds 3 colour channels."""
        return bool(self.meta.get("SamplesPerPixel", 1) == 3)

    def _repr_html_(self) -> str:
        """Jupyter's view: a thumbnail and the image's header fields, no identifier
        (:func:`imaging_tl.io.notebook.scan_html`)."""
        from imaging_tl.io.notebook import scan_html

        return scan_html(self)

    def with_pixels(self, pixels: np.ndarray, step: str) -> Scan:
        """Return a copy with new pixels and ``step`` appended to the provenance."""
        return replace(self, pixels=pixels, provenance=[*self.provenance, step])
