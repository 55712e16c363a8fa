"""The :class:`Stage` base class, :class:`Pipeline` and the registry of stages by name.

A stage is a small object with typed parameters. Called on a numpy array it returns a
float32 array; called on a :class:`~imaging_tl.io.Scan` it returns a new ``Scan`` whose
provenance says what was done (with data-dependent values such as the window actually
taken from the header). ``to_config()`` gives ``{"name": ..., **params}``, and
:func:`stage_from_config` builds a stage back from such a dict, which is how YAML pipelines
name stages.
"""

from __future__ import annotations

import difflib
import hashlib
import inspect
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Self, TypeVar

import numpy as np

from imaging_tl.io.scan import Scan

__all__ = [
    "Pipeline",
    "Stage",
    "get_stage_class",
    "list_stages",
    "register_stage",
    "stage_from_config",
]

_REGISTRY: dict[str, type[Stage]] = {}

S = TypeVar("S", bound="type[Stage]")
C = TypeVar("C", str, str | None)


def close_match_hint(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``.

    Examples
    --------
    >>> close_match_hint("lugn", ["lung", "bone"])
    " (did you mean 'lung'?)"
    """
    matches = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


def register_stage(cls: S) -> S:
    """Class decorator: make a stage constructible by its ``name`` from a config.

    Examples
    --------
    >>> from imaging_tl.stages import Stage, register_stage, list_stages
    >>> "window" in list_stages()
    True
    """
    name = cls.name
    if not name:
        raise ValueError(f"{cls.__name__} has no stage name")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"stage name {name!r} is already used by {_REGISTRY[name].__name__}")
    _REGISTRY[name] = cls
    return cls


def list_stages() -> list[str]:
    """Names of all registered stages, sorted.

    Examples
    --------
    >>> from imaging_tl.stages import list_stages
    >>> list_stages()[:3]
    ['center_crop', 'clahe', 'color']
    """
    return sorted(_REGISTRY)


def get_stage_class(name: str) -> type[Stage]:
    """The stage class registered under ``name``.

    Raises
    ------
    ValueError
        For an unknown name, with the known names and a close-match suggestion.

    Examples
    --------
    >>> from imaging_tl.stages import get_stage_class
    >>> get_stage_class("resize").__name__
    'Resize'
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown stage {name!r}{close_match_hint(name, _REGISTRY)}; "
            f"known stages: {', '.join(list_stages())}"
        ) from None


def stage_from_config(config: Mapping[str, Any]) -> Stage:
    """Build a stage from ``{"name": ..., **params}``.

    Examples
    --------
    >>> from imaging_tl.stages import stage_from_config
    >>> stage_from_config({"name": "window", "preset": "lung"})
    Window(preset='lung')
    """
    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError(
            f"a stage config must be a mapping with a 'name' key, got {config!r}; "
            f"known stages: {', '.join(list_stages())}"
        )
    return get_stage_class(config["name"]).from_config(config)


def _fmt(value: Any) -> str:
    """Compact text for provenance: 40.0 -> 40, lists without spaces."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={_fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


class Stage:
    """Base class of all preprocessing stages.

    Subclasses set ``name`` (the config name), implement ``_transform(image, meta)``
    returning ``(float32 array, details or None)`` and ``get_params()`` returning the
    constructor arguments that differ from their defaults (that dict is the config).

    Images are 2-D (``H x W`` grey) or channels-last ``H x W x C``. Integer input is
    accepted only by stages that take raw modality values (``accepts_integer``); the
    others expect floating point (usually [0, 1] after windowing) and say so otherwise.
    Given a multi-frame ``Scan`` (``F x H x W[ x C]``) a stage is applied to each frame.

    Examples
    --------
    >>> import numpy as np
    >>> from imaging_tl.stages import ToRGB
    >>> ToRGB()(np.zeros((4, 5), np.float32)).shape
    (4, 5, 3)
    """

    name: ClassVar[str] = ""
    #: True for stages that take raw modality values (Window): integers are fine there.
    accepts_integer: ClassVar[bool] = False
    #: True for stages that only make sense on one grey channel.
    grey_only: ClassVar[bool] = False

    # -- to be provided by subclasses -------------------------------------------------
    def _transform(
        self, image: np.ndarray, meta: Mapping[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any] | None]:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments of this stage (plain JSON-able values)."""
        raise NotImplementedError

    def _meta_updates(self, out: np.ndarray, meta: Mapping[str, Any]) -> dict[str, Any]:
        """Header fields that change so that ``Scan.meta`` keeps describing the pixels."""
        return {}

    def range_effect(self) -> str:
        """What the stage does to the value range, for :class:`Pipeline`'s static check.

        ``"unit"``: output always in [0, 1] (Window); ``"keep"``: output within the input's
        range (geometry, channels; padding only with values in [0, 1]); ``"other"``.
        """
        return "other"

    def _transform_unit_input(self, image: np.ndarray, meta: Mapping[str, Any]):
        """``_transform`` for input already known to lie in [0, 1] (skips range checks)."""
        return self._transform(image, meta)

    # -- public API -----------------------------------------------------------------------
    def __call__(self, image: np.ndarray | Scan, meta: Mapping[str, Any] | None = None):
        """Apply the stage to an array (returns an array) or a Scan (returns a Scan)."""
        if isinstance(image, Scan):
            return self._call_scan(image)
        meta = {} if meta is None else meta
        out, _ = self._transform(self._check(image, meta), meta)
        check_finite(self, out)
        return out

    def to_config(self) -> dict[str, Any]:
        """``{"name": ..., **params}``; :func:`stage_from_config` inverts it."""
        return {"name": self.name, **self.get_params()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Self:
        """Build the stage from a config dict (``"name"``, when present, must match)."""
        params = dict(config)
        name = params.pop("name", cls.name)
        if name != cls.name:
            raise ValueError(f"config for stage {name!r} given to {cls.__name__}.from_config")
        allowed = [
            p.name
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        for key in params:
            if key not in allowed:
                raise ValueError(
                    f"{cls.__name__}: unknown parameter {key!r}{close_match_hint(key, allowed)}"
                    f"; allowed: {', '.join(allowed)}"
                )
        return cls(**params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.to_config() == self.to_config()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_config(), sort_keys=True))

    # -- helpers --------------------------------------------------------------------------
    def _error(self, param: str, message: str) -> ValueError:
        return ValueError(f"{type(self).__name__}: {param} {message}")

    def _check(self, image: Any, meta: Mapping[str, Any], colour: bool | None = None):
        """Return ``image`` as a float32 array, or raise ValueError naming the stage."""
        arr = image if isinstance(image, np.ndarray) else np.asarray(image)
        if arr.dtype == np.float32 and (arr.ndim == 2 or arr.ndim == 3) and not self.grey_only:
            if arr.size == 0:
                raise self._error("image", f"must be non-empty, got shape {arr.shape}")
            return arr  # the common case, checked first
        kind = arr.dtype.kind
        if kind == "f":
            pass
        elif kind in "iu" and self.accepts_integer:
            pass
        elif kind in "iu":
            raise self._error(
                "image",
                f"must be floating point (float32 in [0, 1] after windowing), got {arr.dtype}; "
                "apply Window first, or divide 8-bit images by 255",
            )
        else:
            raise self._error("image", f"has unsupported dtype {arr.dtype}; use float32")
        if arr.ndim not in (2, 3) or arr.size == 0:
            raise self._error(
                "image", f"must be H x W or H x W x C and non-empty, got shape {arr.shape}"
            )
        if self.grey_only:
            is_colour = colour if colour is not None else (arr.ndim == 3 and arr.shape[-1] > 1)
            if is_colour or (arr.ndim == 3 and arr.shape[-1] != 1):
                raise self._error(
                    "image",
                    f"must be grey (H x W), got shape {arr.shape}; this stage works on one grey "
                    "channel (apply it before ToRGB / MultiWindow, or use ToGrey first)",
                )
            if arr.ndim == 3:
                arr = arr[..., 0]
        if arr.dtype != np.float32:
            arr = arr.astype(np.float32)
        return arr

    def __setattr__(self, name: str, value: Any) -> None:
        # parameters are fixed after construction; drop the cached provenance text anyway
        object.__setattr__(self, name, value)
        if name != "_params_text":
            self.__dict__.pop("_params_text", None)

    def _describe(self, details: Mapping[str, Any] | None) -> str:
        text = self.__dict__.get("_params_text")
        if text is None:
            text = " ".join(f"{k}={_fmt(v)}" for k, v in self.get_params().items())
            self._params_text = text
        if details:
            extra = " ".join(f"{k}={_fmt(v)}" for k, v in details.items())
            text = f"{text} {extra}" if text else extra
        return f"{self.name}: {text}" if text else self.name

    def _scan_step(self, pixels: np.ndarray, meta: Mapping[str, Any], transform=None):
        """(new pixels, new meta, provenance text) for the pixels and meta of a Scan."""
        transform = transform or self._transform
        if self.grey_only and meta.get("colour_kept"):
            return pixels, meta, kept_colour_step(self)
        frames = int(meta.get("NumberOfFrames") or 1)
        colour = meta.get("SamplesPerPixel", 1) == 3
        if frames > 1 and pixels.ndim >= 3 and pixels.shape[0] == frames:
            results = [transform(self._check(f, meta, colour), meta) for f in pixels]
            try:
                out = np.stack([r[0] for r in results])
            except ValueError as exc:
                raise ValueError(
                    f"{type(self).__name__}: frames came out with different shapes ({exc})"
                ) from None
            per_frame = [r[1] or {} for r in results]
            if all(d == per_frame[0] for d in per_frame):
                details = {"frames": frames, **per_frame[0]}
            else:  # data-dependent (e.g. percentiles): say so, show the first frame's
                details = {"frames": frames, "per_frame": "differs", "frame0": per_frame[0]}
            one_frame = out[0]
        else:
            out, details = transform(self._check(pixels, meta, colour), meta)
            one_frame = out
        updates = self._meta_updates(one_frame, meta)
        new_meta = {**meta, **updates} if updates else meta
        return out, new_meta, self._describe(details)

    def _call_scan(self, scan: Scan) -> Scan:
        out, meta, step = self._scan_step(scan.pixels, scan.meta)
        check_finite(self, out)
        return replace(scan, pixels=out, meta=meta, provenance=[*scan.provenance, step])


def kept_colour_step(stage: Stage) -> str:
    """The provenance of a grey-only stage that a colour image (kept as colour by the
    ``color`` stage, already in [0, 1]) passes unchanged.

    Examples
    --------
    >>> from imaging_tl.stages import CLAHE
    >>> kept_colour_step(CLAHE())
    'clahe: skipped (colour image kept by data.color)'
    """
    return f"{stage.name}: skipped (colour image kept by data.color)"


def check_finite(stage: Stage, out: np.ndarray) -> None:
    """Raise ``ValueError`` naming ``stage`` when its output holds NaN or infinity.

    Two reductions (min and max propagate NaN and keep infinities), no temporary array.

    Examples
    --------
    >>> import numpy as np
    >>> from imaging_tl.stages import Resize
    >>> try:
    ...     check_finite(Resize(8), np.array([0.0, np.nan], np.float32))
    ... except ValueError as e:
    ...     print(str(e)[:42])
    resize: produced NaN or infinite values (1
    """
    arr = np.asarray(out)
    if arr.size == 0 or arr.dtype.kind not in "fc":
        return
    if np.isfinite(arr.min()) and np.isfinite(arr.max()):
        return
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    raise ValueError(
        f"{stage.name}: produced NaN or infinite values ({bad} of {arr.size}); its input or "
        f"its parameters are not finite ({stage!r})"
    )


def geometry_updates(out: np.ndarray, meta: Mapping[str, Any], scale=None) -> dict[str, Any]:
    """Rows/Columns (and PixelSpacing when ``scale=(sy, sx)`` is given) after a geometry step.

    Examples
    --------
    >>> import numpy as np
    >>> geometry_updates(np.zeros((50, 50)), {"PixelSpacing": [0.5, 0.5]}, scale=(0.25, 0.25))
    {'Rows': 50, 'Columns': 50, 'PixelSpacing': [2.0, 2.0]}
    """
    updates: dict[str, Any] = {"Rows": int(out.shape[0]), "Columns": int(out.shape[1])}
    spacing = meta.get("PixelSpacing")
    if scale is not None and spacing is not None and len(spacing) == 2:
        updates["PixelSpacing"] = [float(spacing[0]) / scale[0], float(spacing[1]) / scale[1]]
    return updates


class Pipeline:
    """Stages applied in order, with a YAML-friendly config and a stable fingerprint.

    Parameters
    ----------
    stages : sequence of Stage
        The stages, in the order they run.

    Examples
    --------
    >>> import numpy as np
    >>> from imaging_tl.stages import Pipeline, Window, Resize, ToRGB, Normalize
    >>> p = Pipeline([Window(preset="lung"), Resize(224), ToRGB(),
    ...               Normalize("efficientnet_lite")])
    >>> ct = np.full((512, 512), -600.0, np.float32)   # HU
    >>> p(ct).shape
    (224, 224, 3)
    >>> Pipeline.from_config(p.to_config()).fingerprint() == p.fingerprint()
    True
    """

    def __init__(self, stages: Sequence[Stage] = ()) -> None:
        stages = list(stages)
        for i, stage in enumerate(stages):
            if not isinstance(stage, Stage):
                raise ValueError(
                    f"Pipeline: stages[{i}] must be a Stage (e.g. Window(preset='lung')), "
                    f"got {type(stage).__name__}; use Pipeline.from_config for dicts"
                )
        self.stages: list[Stage] = stages

    def __call__(self, image: np.ndarray | Scan, meta: Mapping[str, Any] | None = None):
        """Run all stages: array in, array out, or Scan in, Scan out."""
        plan = self._plan()
        if isinstance(image, Scan):
            # one new Scan at the end rather than one per stage
            pixels, scan_meta, steps = image.pixels, image.meta, list(image.provenance)
            for stage, transform in plan:
                pixels, scan_meta, step = stage._scan_step(pixels, scan_meta, transform)
                check_finite(stage, pixels)
                steps.append(step)
            return replace(image, pixels=pixels, meta=scan_meta, provenance=steps)
        meta = {} if meta is None else meta
        out = image
        for stage, transform in plan:
            out, _ = transform(stage._check(out, meta), meta)
            check_finite(stage, out)
        if not self.stages:
            out = np.asarray(out, dtype=np.float32)
        return out

    def _plan(self) -> list[tuple[Stage, Any]]:
        """Each stage with the transform to run: where a Window earlier in the pipeline and
        only range-keeping stages since guarantee [0, 1], range checks are skipped (they
        are ~3 % of the typical pipeline). Cached until the list of stages changes."""
        key = tuple(map(id, self.stages))
        cached = self.__dict__.get("_plan_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = []
        unit = False
        for stage in self.stages:
            trusted = type(stage)._transform_unit_input is not Stage._transform_unit_input
            fn = stage._transform_unit_input if unit and trusted else stage._transform
            plan.append((stage, fn))
            effect = stage.range_effect()
            unit = effect == "unit" or (unit and effect == "keep")
        self._plan_cache = (key, plan)
        return plan

    def __len__(self) -> int:
        return len(self.stages)

    def __iter__(self) -> Iterator[Stage]:
        return iter(self.stages)

    def __getitem__(self, index: int | slice) -> Stage | Pipeline:
        """A stage, or for a slice a new Pipeline (``p[:-1]``: without the last stage)."""
        if isinstance(index, slice):
            return Pipeline(self.stages[index])
        return self.stages[index]

    def __repr__(self) -> str:
        return "Pipeline([" + ", ".join(repr(s) for s in self.stages) + "])"

    def _repr_html_(self) -> str:
        """Jupyter's view: the stages in order with their parameters, and the fingerprint."""
        import json

        from imaging_tl.io.notebook import html_table

        rows = [[i, c["name"], json.dumps({k: v for k, v in c.items() if k != "name"},
                                          default=str)] for i, c in enumerate(self.to_config())]
        return (f"<p>Pipeline of {len(self.stages)} stage(s), fingerprint "
                f"<code>{self.fingerprint()[:16]}</code></p>"
                + html_table(rows, ["#", "stage", "parameters"]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and other.to_config() == self.to_config()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def to_config(self) -> list[dict[str, Any]]:
        """List of stage configs, ``[{"name": ..., **params}, ...]``."""
        return [s.to_config() for s in self.stages]

    @classmethod
    def from_config(cls, config: Iterable[Mapping[str, Any]]) -> Pipeline:
        """Build from a list of stage configs (as read from YAML).

        Errors name the position of the bad entry, e.g. ``stages[2]: unknown stage ...``.
        """
        if isinstance(config, Mapping) or isinstance(config, str):
            raise ValueError("Pipeline.from_config expects a list of stage configs")
        stages = []
        for i, entry in enumerate(config):
            try:
                stages.append(stage_from_config(entry))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"stages[{i}]: {exc}") from exc
        return cls(stages)

    def to_yaml(self) -> str:
        """The config as YAML text."""
        import yaml

        return yaml.safe_dump(self.to_config(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> Pipeline:
        """Build from YAML text holding a list of stage configs."""
        import yaml

        return cls.from_config(yaml.safe_load(text) or [])

    def canonical_json(self) -> str:
        """Canonical JSON of the stage configs and the library version (what is hashed)."""
        from imaging_tl._version import __version__

        return json.dumps(
            {"imaging_tl": __version__, "stages": self.to_config()},
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
        )

    def fingerprint(self) -> str:
        """sha256 hex of :meth:`canonical_json`: the cache key of preprocessed arrays.

        Two pipelines that differ in any parameter (or library version) never share it;
        equal pipelines share it across processes and runs (no Python ``hash`` involved).
        """
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()


def check_choice(stage: str, param: str, value: Any, choices: Iterable[C]) -> C:
    """Return ``value`` if it is one of ``choices``, else a ValueError naming them.

    ``choices`` may include None (an option that is switched off).

    Examples
    --------
    >>> check_choice("Resize", "mode", "pad", ("pad", "stretch"))
    'pad'
    """
    allowed = list(choices)
    if value not in allowed:
        names = [str(c) for c in allowed]
        raise ValueError(
            f"{stage}: {param}={value!r} is not allowed{close_match_hint(str(value), names)}; "
            f"allowed: {', '.join(names)}"
        )
    return value


def check_number(
    stage: str,
    param: str,
    value: Any,
    *,
    low: float | None = None,
    low_inclusive: bool = True,
    high: float | None = None,
    integer: bool = False,
) -> Any:
    """Coerce ``value`` to float (or int) and check its range; ValueError names the stage.

    Examples
    --------
    >>> check_number("Window", "width", 400, low=0, low_inclusive=False)
    400.0
    """
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{stage}: {param} must be {kind}, got {value!r}")
    if integer and float(value) != int(value):
        raise ValueError(f"{stage}: {param} must be {kind}, got {value!r}")
    out = int(value) if integer else float(value) + 0.0  # + 0.0: -0.0 -> 0.0 for stable JSON
    if not np.isfinite(out):
        raise ValueError(f"{stage}: {param} must be finite, got {value!r}")
    if low is not None and (out < low or (out == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{stage}: {param} must be {op} {low:g}, got {value!r}")
    if high is not None and out > high:
        raise ValueError(f"{stage}: {param} must be <= {high:g}, got {value!r}")
    return out
