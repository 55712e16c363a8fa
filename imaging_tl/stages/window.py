"""The VOI step: :class:`Window` and :class:`MultiWindow` (DICOM PS3.3 C.11.2.1).

Input values are in modality units (after the Modality LUT, e.g. Hounsfield units);
output is float32 in [0, 1] with dense = bright: MONOCHROME1 and Presentation LUT Shape
INVERSE (``meta["invert"]``) are handled here, as the last step of the grey pipeline.

The window functions themselves (PS3.3 C.11.2.1.2 LINEAR, C.11.2.1.3.1 SIGMOID,
C.11.2.1.3.2 LINEAR_EXACT, and VOI LUT tables) are in :mod:`imaging_tl.stages.voi`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imaging_tl.stages.base import (
    Stage,
    check_choice,
    check_number,
    close_match_hint,
    register_stage,
)
from imaging_tl.stages.voi import apply_voi_lut_table, apply_window

__all__ = ["PRESETS", "MultiWindow", "Window", "apply_window", "apply_voi_lut_table"]

#: Published CT windows, ``name: (center, width)`` in Hounsfield units (Radiopaedia,
#: "Windowing (CT)"; subdural and stroke take a value inside the published ranges, the
#: subdural one as used for head-CT haemorrhage models).
PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "soft_tissue": (50.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "subdural": (80.0, 200.0),
    "stroke": (40.0, 40.0),
    "temporal_bone": (600.0, 2800.0),
    "liver": (30.0, 150.0),
    "abdomen": (50.0, 400.0),
}

FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
MODES = ("explicit", "preset", "header", "percentile", "range")
FALLBACKS = ("percentile", "range", None)

_STAGE = "Window"


def _canonical_preset(name: Any) -> str:
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    if key not in PRESETS:
        raise ValueError(
            f"{_STAGE}: preset={name!r} is unknown{close_match_hint(key, PRESETS)}; "
            f"allowed: {', '.join(PRESETS)}"
        )
    return key


def _check_width(width: float, function: str, where: str = "width") -> None:
    if not np.isfinite(width):
        raise ValueError(f"{_STAGE}: {where} must be finite, got {width!r}")
    if function == "LINEAR" and width < 1:
        raise ValueError(
            f"{_STAGE}: {where} must be >= 1 for function LINEAR (PS3.3 C.11.2.1.2), got "
            f"{width:g}; use function='LINEAR_EXACT' for narrower windows"
        )
    if width <= 0:
        raise ValueError(f"{_STAGE}: {where} must be > 0, got {width:g}")


#: Above this many pixels, percentiles are taken on a regular sub-grid of at least
#: _PERCENTILE_SAMPLE pixels: on a 1955 x 1841 CR np.percentile took 99 ms (the decode
#: of an uncompressed file takes less), a 1-in-4 grid about 8 ms, and the 0.5 / 99.5
#: percentiles of a real radiograph (RG1) moved by less than 0.1 % of its range.
_PERCENTILE_SAMPLE = 1 << 18


def _percentile_window(image: np.ndarray, percentiles: Sequence[float]):
    step = int(np.sqrt(image.size / _PERCENTILE_SAMPLE))
    sample = image[::step, ::step] if step > 1 else image
    lo, hi = np.percentile(sample, percentiles)
    return float(lo), float(hi)


def _infer_mode(
    mode: str | None, center: float | None, width: float | None, preset: str | None
) -> str:
    """The mode given, else the one the other arguments imply."""
    if mode is not None:
        return mode
    if preset is not None:
        return "preset"
    if center is not None or width is not None:
        return "explicit"
    raise ValueError(
        f"{_STAGE}: give center and width, a preset ({', '.join(PRESETS)}), or a "
        "mode (Window.from_header(), Window.percentile(), mode='range')"
    )


def _stored_function(function: str | None, mode: str) -> str | None:
    """The VOI LUT function as stored: the mode's default is stored as None, so that
    spelling it out gives the same config (and cache key) as leaving it out."""
    if function is not None:
        function = str(function).upper()
        check_choice(_STAGE, "function", function, FUNCTIONS)
    default = {
        "explicit": "LINEAR",
        "preset": "LINEAR",
        "percentile": "LINEAR_EXACT",
        "range": "LINEAR_EXACT",
    }.get(mode)
    return None if function == default else function


def _checked_percentiles(percentiles: Any) -> tuple[float, float]:
    """``(low, high)``: two increasing numbers in [0, 100]."""
    if not isinstance(percentiles, Sequence) or len(percentiles) != 2:
        raise ValueError(
            f"{_STAGE}: percentiles must be two numbers (low, high), got {percentiles!r}"
        )
    lo = check_number(_STAGE, "percentiles[0]", percentiles[0], low=0, high=100)
    hi = check_number(_STAGE, "percentiles[1]", percentiles[1], low=0, high=100)
    if hi <= lo:
        raise ValueError(f"{_STAGE}: percentiles must be increasing, got {list(percentiles)}")
    return (lo, hi)


@register_stage
class Window(Stage):
    """The VOI step: modality values -> float32 [0, 1], dense = bright.

    Parameters
    ----------
    center, width : float, optional
        An explicit window in modality units (``Window(center=40, width=400)``).
    preset : str, optional
        A named CT window: lung, mediastinum, soft_tissue, bone, brain, subdural, stroke,
        temporal_bone, liver, abdomen (see :data:`PRESETS`).
    mode : {"explicit", "preset", "header", "percentile", "range"}, optional
        Inferred from the other arguments when not given. ``"header"`` reads
        ``meta["windows"]`` / ``meta["voi_luts"]`` (see :meth:`from_header`);
        ``"percentile"`` maps the image's ``percentiles`` to 0 and 1 (for images without
        window information: FOR PROCESSING X-rays, PNGs; on images of 1 Mpixel and more
        they are taken on a regular 1-in-k sub-grid of at least 262,144 pixels, which is
        about 6x faster on a radiograph); ``"range"`` maps
        ``meta["value_range"]`` (all values the stored bits can hold) to [0, 1].
    function : {"LINEAR", "LINEAR_EXACT", "SIGMOID"}, optional
        VOI LUT Function. Default: LINEAR for explicit windows and presets, the header's
        ``meta["voi_lut_function"]`` in header mode, LINEAR_EXACT for percentile and range.
    index : int
        Header mode: which of the header's windows (or VOI LUTs) to use.
    explanation : str, optional
        Header mode: choose the window whose Window Center & Width Explanation (or LUT
        Explanation) matches this text, case-insensitively, instead of ``index``.
    prefer_lut : bool
        Header mode: when the header has both a VOI LUT Sequence and windows, use the LUT
        (as ``pydicom.pixels.apply_voi_lut`` does).
    percentiles : (float, float)
        Percentile mode (and the header mode's percentile fallback): the low and high
        percentiles mapped to 0 and 1.
    fallback : {"percentile", "range", None}
        Header mode: what to do for an image without any window or VOI LUT; ``None``
        raises. The provenance of a Scan records when the fallback was used.
    invert : bool, optional
        Force (True) or forbid (False) inversion; default ``meta["invert"]``.

    Examples
    --------
    >>> import numpy as np
    >>> hu = np.array([[-1000.0, -600.0], [40.0, 1000.0]], np.float32)
    >>> Window(preset="lung")(hu).astype(float).round(3).tolist()
    [[0.233, 0.5], [0.927, 1.0]]
    >>> Window(center=40, width=400)(hu).astype(float).round(3).tolist()
    [[0.0, 0.0], [0.501, 1.0]]
    >>> Window.from_header()                     # doctest: +SKIP
    >>> Window.percentile(1, 99)
    Window(mode='percentile', percentiles=[1.0, 99.0])
    """

    name = "window"
    accepts_integer = True
    grey_only = True

    def __init__(
        self,
        center: float | None = None,
        width: float | None = None,
        *,
        preset: str | None = None,
        mode: str | None = None,
        function: str | None = None,
        index: int = 0,
        explanation: str | None = None,
        prefer_lut: bool = True,
        percentiles: Sequence[float] = (0.5, 99.5),
        fallback: str | None = "percentile",
        invert: bool | None = None,
    ) -> None:
        mode = _infer_mode(mode, center, width, preset)
        self.mode = check_choice(_STAGE, "mode", mode, MODES)
        self.function = _stored_function(function, mode)
        if invert is not None and not isinstance(invert, bool | np.bool_):
            raise ValueError(f"{_STAGE}: invert must be true, false or null, got {invert!r}")
        self.invert = None if invert is None else bool(invert)
        self.center: float | None = None
        self.width: float | None = None
        self.preset: str | None = None
        self.index = 0
        self.explanation: str | None = None
        self.prefer_lut = True
        self.percentiles = (0.5, 99.5)
        self.fallback: str | None = "percentile"
        extra = self._set_window(center, width, preset)
        if mode == "header":
            self._set_header_choice(index, explanation, prefer_lut, fallback)
        if mode in ("percentile", "header"):  # header: for the percentile fallback
            self.percentiles = _checked_percentiles(percentiles)
        for key, value in extra:
            if value is not None:
                raise ValueError(f"{_STAGE}: {key}= does not apply to mode={mode!r}")

    def _set_window(
        self, center: float | None, width: float | None, preset: str | None
    ) -> list[tuple[str, Any]]:
        """Set the explicit window or preset of those modes; return the arguments that do
        not apply to the mode (each must be None)."""
        if self.mode == "explicit":
            if center is None or width is None:
                raise ValueError(f"{_STAGE}: an explicit window needs both center and width")
            self.center = check_number(_STAGE, "center", center)
            self.width = check_number(_STAGE, "width", width, low=0, low_inclusive=False)
            _check_width(self.width, self.function or "LINEAR")
            return [("preset", preset)]
        if self.mode == "preset":
            if preset is None:
                raise ValueError(f"{_STAGE}: mode='preset' needs preset=, one of {list(PRESETS)}")
            self.preset = _canonical_preset(preset)
            return [("center", center), ("width", width)]
        return [("center", center), ("width", width), ("preset", preset)]

    def _set_header_choice(
        self, index: int, explanation: str | None, prefer_lut: bool, fallback: str | None
    ) -> None:
        """Header mode: which window or LUT of the header, and what to do without one."""
        self.index = check_number(_STAGE, "index", index, low=0, integer=True)
        if explanation is not None and not isinstance(explanation, str):
            raise ValueError(f"{_STAGE}: explanation must be text, got {explanation!r}")
        self.explanation = explanation
        self.prefer_lut = bool(prefer_lut)
        self.fallback = check_choice(_STAGE, "fallback", fallback, FALLBACKS)

    # -- alternative constructors ---------------------------------------------------------
    @classmethod
    def from_header(
        cls,
        index: int = 0,
        *,
        explanation: str | None = None,
        function: str | None = None,
        prefer_lut: bool = True,
        fallback: str | None = "percentile",
        invert: bool | None = None,
    ) -> Window:
        """The window stored in the file's header (``meta["windows"]`` / ``"voi_luts"``).

        Parameters
        ----------
        index : int
            Which of several header windows (0 = the first, the writer's default).
        explanation : str, optional
            Select by Window Center & Width Explanation instead (e.g. ``"LUNG"``).
        function : str, optional
            Override the header's VOI LUT Function.
        prefer_lut, fallback, invert
            See :class:`Window`.

        Examples
        --------
        >>> import numpy as np
        >>> meta = {"windows": [{"center": 40.0, "width": 400.0, "explanation": "SOFT"}],
        ...         "voi_lut_function": "LINEAR_EXACT"}
        >>> Window.from_header()(np.array([[40.0]]), meta).tolist()
        [[0.5]]
        """
        return cls(
            mode="header",
            index=index,
            explanation=explanation,
            function=function,
            prefer_lut=prefer_lut,
            fallback=fallback,
            invert=invert,
        )

    @classmethod
    def percentile(cls, low: float = 0.5, high: float = 99.5, *, invert: bool | None = None):
        """Map the image's ``low`` and ``high`` percentiles to 0 and 1 (LINEAR_EXACT).

        Examples
        --------
        >>> import numpy as np
        >>> Window.percentile(0, 100)(np.array([[0.0, 50.0, 100.0]])).tolist()
        [[0.0, 0.5, 1.0]]
        """
        return cls(mode="percentile", percentiles=(low, high), invert=invert)

    @staticmethod
    def presets() -> dict[str, tuple[float, float]]:
        """The named windows, ``{name: (center, width)}`` in HU."""
        return dict(PRESETS)

    # -- config ---------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        p: dict[str, Any] = {}
        if self.mode == "explicit":
            p = {"center": self.center, "width": self.width}
        elif self.mode == "preset":
            p = {"preset": self.preset}
        else:
            p = {"mode": self.mode}
        if self.mode == "header":
            if self.explanation is not None:
                p["explanation"] = self.explanation
            else:
                p["index"] = self.index
            if not self.prefer_lut:
                p["prefer_lut"] = False
            if self.fallback != "percentile":
                p["fallback"] = self.fallback
            elif self.percentiles != (0.5, 99.5):
                p["percentiles"] = list(self.percentiles)
        if self.mode == "percentile":
            p["percentiles"] = list(self.percentiles)
        if self.function is not None:
            p["function"] = self.function
        if self.invert is not None:
            p["invert"] = self.invert
        return p

    # -- the work -------------------------------------------------------------------------
    def _resolve(self, image: np.ndarray, meta: Mapping[str, Any]):
        """(center, width, function, lut, details) for this image."""
        mode = self.mode
        if mode == "explicit":
            return self.center, self.width, self.function or "LINEAR", None, None
        if mode == "preset" and self.preset is not None:
            c, w = PRESETS[self.preset]
            return c, w, self.function or "LINEAR", None, None
        if mode == "header":
            found = self._header_choice(meta)
            if found is None:
                if self.fallback is None:
                    raise ValueError(
                        f"{_STAGE}.from_header(): the header has no window and no VOI LUT "
                        "(fallback=None); use fallback='percentile' or 'range'"
                    )
                mode = self.fallback
            else:
                return found
        if mode == "range":
            vr = meta.get("value_range")
            if not vr or len(vr) != 2 or not vr[1] > vr[0]:
                raise ValueError(
                    f"{_STAGE}(mode='range'): meta has no usable value_range ({vr!r}); pass a "
                    "Scan, or meta={'value_range': [lo, hi]}"
                )
            lo, hi = float(vr[0]), float(vr[1])
            details = {"source": "value_range"} if self.mode == "header" else None
            return (lo + hi) / 2, hi - lo, self.function or "LINEAR_EXACT", None, details
        # percentile (as a mode, or as the header fallback)
        lo, hi = _percentile_window(image, self.percentiles)
        details = {"low": lo, "high": hi}
        if self.mode == "header":
            details["source"] = f"no header window; percentiles {list(self.percentiles)}"
        # a constant image: nothing to stretch, map it to 0. A width below float32's
        # smallest normal number counts as none: with denormals flushed to zero (as
        # TensorFlow sets the CPU) it would divide by zero
        if not hi - lo >= np.finfo(np.float32).tiny:
            return lo + 1.0, 1.0, "LINEAR_EXACT", None, details
        return (lo + hi) / 2, hi - lo, self.function or "LINEAR_EXACT", None, details

    def _header_choice(self, meta: Mapping[str, Any]):
        windows = list(meta.get("windows") or [])
        luts = list(meta.get("voi_luts") or [])
        if not windows and not luts:
            return None
        function = self.function or str(meta.get("voi_lut_function") or "LINEAR").upper()
        check_choice(_STAGE, "voi_lut_function (header)", function, FUNCTIONS)
        sources = [("lut", luts), ("window", windows)]
        if not self.prefer_lut:
            sources.reverse()
        if self.explanation is not None:
            wanted = self.explanation.strip().lower()
            offered = []
            for kind, items in sources:
                for i, item in enumerate(items):
                    text = item.get("explanation")
                    offered.append(text)
                    if text is not None and str(text).strip().lower() == wanted:
                        return self._header_item(kind, i, item, function)
            raise ValueError(
                f"{_STAGE}.from_header(explanation={self.explanation!r}): not in the header; "
                f"it offers {offered}"
            )
        kind, items = next((k, it) for k, it in sources if it)
        if self.index >= len(items):
            raise ValueError(
                f"{_STAGE}.from_header(index={self.index}): the header offers {len(items)} "
                f"{'VOI LUT' if kind == 'lut' else 'window'}(s), index 0..{len(items) - 1}"
            )
        return self._header_item(kind, self.index, items[self.index], function)

    def _header_item(self, kind: str, i: int, item: Mapping[str, Any], function: str):
        details: dict[str, Any] = {"source": f"header {kind} {i}"}
        if item.get("explanation"):
            details["explanation"] = str(item["explanation"])
        if kind == "lut":
            return None, None, None, item, details
        c, w = float(item["center"]), float(item["width"])
        if not np.isfinite(c):
            raise ValueError(f"{_STAGE}: header window {i} center must be finite, got {c!r}")
        _check_width(w, function, where=f"header window {i} width")
        details.update(center=c, width=w, function=function)
        return c, w, function, None, details

    def _transform(self, image: np.ndarray, meta: Mapping[str, Any]):
        center, width, function, lut, details = self._resolve(image, meta)
        invert = self.invert if self.invert is not None else bool(meta.get("invert", False))
        if invert and self.invert is None:
            details = {**(details or {}), "invert": True}
        if lut is not None:
            return apply_voi_lut_table(image, lut, invert), details
        return apply_window(image, center, width, function, invert), details

    def range_effect(self) -> str:
        return "unit"

    def _meta_updates(self, out: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        # The pixels are now display values: nothing left to window or invert.
        return {"invert": False, "windows": [], "voi_luts": [], "value_range": [0.0, 1.0]}


def _as_window(spec: Window | str | Mapping[str, Any], i: int) -> Window:
    if isinstance(spec, Window):
        return spec
    if isinstance(spec, str):
        return Window(preset=spec)
    if isinstance(spec, Mapping):
        cfg = dict(spec)
        if cfg.get("name", "window") != "window":
            raise ValueError(f"MultiWindow: windows[{i}] must be a window, got {cfg['name']!r}")
        cfg["name"] = "window"
        try:
            return Window.from_config(cfg)
        except ValueError as exc:
            raise ValueError(f"MultiWindow: windows[{i}]: {exc}") from exc
    raise ValueError(
        f"MultiWindow: windows[{i}] must be a Window, a preset name or a dict, got {spec!r}"
    )


@register_stage
class MultiWindow(Stage):
    """Several windows of one grey image stacked as channels (``H x W x k``).

    A common trick for CT: e.g. brain / subdural / bone windows of a head CT as the three
    input channels carry more than one window replicated three times.

    Parameters
    ----------
    windows : sequence of Window, preset name or dict
        One entry per output channel; dicts are :class:`Window` configs (without
        ``name``), strings are preset names.

    Examples
    --------
    >>> import numpy as np
    >>> mw = MultiWindow(["brain", "subdural", "bone"])
    >>> mw(np.zeros((8, 8), np.float32)).shape
    (8, 8, 3)
    >>> mw.to_config()["windows"][0]
    {'preset': 'brain'}
    """

    name = "multi_window"
    accepts_integer = True
    grey_only = True

    def __init__(self, windows: Sequence[Window | str | Mapping[str, Any]]) -> None:
        if isinstance(windows, str | Mapping) or not isinstance(windows, Sequence):
            raise ValueError(
                "MultiWindow: windows must be a list of windows (presets, Window objects or "
                f"dicts), got {windows!r}"
            )
        if len(windows) == 0:
            raise ValueError("MultiWindow: windows must hold at least one window")
        self.windows = [_as_window(w, i) for i, w in enumerate(windows)]

    def get_params(self) -> dict[str, Any]:
        return {"windows": [w.get_params() for w in self.windows]}

    def _transform(self, image: np.ndarray, meta: Mapping[str, Any]):
        out = np.empty((*image.shape, len(self.windows)), dtype=np.float32)
        details = {}
        for k, window in enumerate(self.windows):
            out[..., k], d = window._transform(image, meta)
            if d:
                details[f"channel{k}"] = d
        return out, details or None

    def range_effect(self) -> str:
        return "unit"

    def _meta_updates(self, out: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "invert": False,
            "windows": [],
            "voi_luts": [],
            "value_range": [0.0, 1.0],
            "SamplesPerPixel": len(self.windows),
        }
