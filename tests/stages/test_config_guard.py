"""Guard: a stage parameter left out of ``to_config()`` cannot silently share a cache key.

The cache key of preprocessed arrays is ``Pipeline.fingerprint()``, a hash of the stage
configs. A parameter that changes the output but is missing from ``get_params()`` would
give two different pipelines one key, and a run would read the other's arrays. For every
registered stage and every ``__init__`` parameter, :data:`CASES` builds the stage twice,
once with a non-default value of that parameter (in a setting where it applies, e.g.
Window's ``index`` in header mode), and checks that:

- ``to_config()`` round-trips through ``from_config()`` (and JSON) to an equal stage whose
  parameters (its attributes) are the same;
- the two stages have different fingerprints.

A stage added to the registry, or a parameter added to a stage, without a case here fails
:func:`test_every_parameter_of_every_stage_has_a_case`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from imaging_tl.stages import Pipeline, Stage, get_stage_class, list_stages, stage_from_config

#: stage name -> list of (parameter, kwargs of the reference stage, changed value).
CASES: dict[str, list[tuple[str, dict[str, Any], Any]]] = {
    "center_crop": [("size", {"size": 32}, [32, 16])],
    "clahe": [
        ("clip_limit", {}, 0.03),
        ("kernel_size", {}, 16),
        ("kernel_size", {"kernel_size": 16}, [16, 8]),
        ("nbins", {}, 128),
    ],
    "color": [
        ("policy", {}, "grey"),
        ("tolerance", {}, 0.1),
        ("max_fraction", {}, 0.05),
    ],
    "crop_foreground": [
        ("threshold", {}, 0.1),
        ("margin", {}, 4),
        ("min_fraction", {}, 0.1),
        ("remove_uniform", {}, False),
        ("uniform_tol", {}, 0.05),
    ],
    "multi_window": [
        ("windows", {"windows": ["lung"]}, ["lung", "bone"]),
        ("windows", {"windows": ["lung"]}, [{"center": 40, "width": 400}]),
    ],
    "normalize": [
        ("scheme", {"scheme": "imagenet"}, "minus_one_one"),
        ("check_range", {"scheme": "imagenet"}, False),
    ],
    "pad_to_square": [("value", {}, 0.5)],
    "resize": [
        ("size", {"size": 64}, [64, 32]),
        ("mode", {"size": 64}, "stretch"),
        ("pad_value", {"size": 64}, 0.5),
        ("interpolation", {"size": 64}, "nearest"),
    ],
    "stack": [
        ("offsets", {}, [-2, 0, 2]),
        ("offsets", {"offsets": [-5, 0, 5], "unit": "mm"}, [-3, 0, 3]),
        ("unit", {"offsets": [-5, 0, 5]}, "mm"),
    ],
    "to_grey": [],
    "to_rgb": [],
    "window": [
        ("center", {"center": 40, "width": 400}, 50),
        ("width", {"center": 40, "width": 400}, 500),
        ("preset", {"preset": "lung"}, "bone"),
        ("mode", {"mode": "range"}, "percentile"),
        ("mode", {"mode": "range"}, "header"),
        ("function", {"center": 40, "width": 400}, "SIGMOID"),
        ("function", {"mode": "header"}, "LINEAR"),
        ("function", {"mode": "percentile"}, "LINEAR"),
        ("index", {"mode": "header"}, 1),
        ("explanation", {"mode": "header"}, "LUNG"),
        ("prefer_lut", {"mode": "header"}, False),
        ("percentiles", {"mode": "percentile"}, (1.0, 99.0)),
        ("percentiles", {"mode": "header"}, (1.0, 99.0)),
        ("fallback", {"mode": "header"}, "range"),
        ("fallback", {"mode": "header"}, None),
        ("invert", {"preset": "lung"}, True),
        ("invert", {"preset": "lung"}, False),
    ],
}


def _parameters(cls: type[Stage]) -> dict[str, inspect.Parameter]:
    return {p.name: p for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _state(stage: Stage) -> dict[str, Any]:
    """The stage's attributes (its parameters as stored), comparable across instances."""
    out = {}
    for k, v in vars(stage).items():
        if k.startswith("_params_text"):
            continue  # a cache of the provenance text
        out[k] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


def check_round_trip(stage: Stage) -> list[str]:
    """Problems of ``stage.to_config()`` as a faithful description of the stage."""
    config = stage.to_config()
    problems = []
    try:
        text = json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return [f"{stage!r}: config {config!r} is not JSON ({exc})"]
    rebuilds = [type(stage).from_config(config), type(stage).from_config(json.loads(text))]
    if stage.name in list_stages():  # the path YAML pipelines take
        rebuilds.append(stage_from_config(json.loads(text)))
    for rebuilt in rebuilds:
        if rebuilt.to_config() != config:
            problems.append(f"{stage!r}: from_config(to_config()) gives {rebuilt.to_config()}")
        if _state(rebuilt) != _state(stage):
            diff = sorted(k for k in _state(stage) if _state(rebuilt).get(k) != _state(stage)[k])
            problems.append(f"{stage!r}: rebuilt from its config, {diff} differ")
        if Pipeline([rebuilt]).fingerprint() != Pipeline([stage]).fingerprint():
            problems.append(f"{stage!r}: the rebuilt stage has another fingerprint")
    return problems


def check_cases(
    cls: type[Stage], cases: list[tuple[str, Mapping[str, Any], Any]]
) -> list[str]:
    """Round-trip each case's two stages; each parameter change must change the key."""
    problems = []
    params = _parameters(cls)
    for param, base, changed in cases:
        default = params[param].default
        if param not in base and default is not inspect.Parameter.empty and changed == default:
            problems.append(f"{cls.__name__}: case for {param!r} uses its default {default!r}")
        reference = cls(**base)
        varied = cls(**{**base, param: changed})
        problems += check_round_trip(reference) + check_round_trip(varied)
        if Pipeline([varied]).fingerprint() == Pipeline([reference]).fingerprint():
            problems.append(
                f"{cls.__name__}: {param}={changed!r} gives the same fingerprint as {base} "
                f"(config {varied.to_config()}): the parameter is missing from get_params()"
            )
    return problems


def test_every_parameter_of_every_stage_has_a_case():
    missing = []
    for name in list_stages():
        cls = get_stage_class(name)
        if name not in CASES:
            missing.append(f"stage {name!r} ({cls.__name__}) has no entry in CASES")
            continue
        covered = {param for param, _, _ in CASES[name]}
        missing += [f"{cls.__name__}: parameter {p!r} has no case in CASES[{name!r}]"
                    for p in _parameters(cls) if p not in covered]
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("name", sorted(CASES))
def test_parameters_round_trip_and_change_the_fingerprint(name):
    cls = get_stage_class(name)
    problems = check_cases(cls, CASES[name])
    if not CASES[name]:  # a stage without parameters still round-trips
        problems += check_round_trip(cls())
    assert not problems, "\n".join(problems)


def test_all_cases_give_distinct_fingerprints():
    # no two different settings of one stage may share a key either
    for name, cases in CASES.items():
        cls = get_stage_class(name)
        seen: dict[str, dict[str, Any]] = {}
        for param, base, changed in cases:
            for kwargs in (base, {**base, param: changed}):
                stage = cls(**kwargs)
                key = Pipeline([stage]).fingerprint()
                other = seen.setdefault(key, stage.to_config())
                assert other == stage.to_config(), f"{name}: {other} and {kwargs} share a key"


class _Forgetful(Stage):
    """A planted stage whose get_params() leaves out ``strength``."""

    name = "forgetful_test_stage"  # not registered: the registry stays as it is

    def __init__(self, size: int = 1, *, strength: float = 1.0) -> None:
        self.size = int(size)
        self.strength = float(strength)

    def get_params(self) -> dict[str, Any]:
        return {"size": self.size} if self.size != 1 else {}

    def _transform(self, image, meta):
        return image * self.strength, None


def test_the_guard_catches_a_parameter_missing_from_the_config():
    problems = check_cases(_Forgetful, [("size", {}, 2), ("strength", {}, 2.0)])
    assert any("strength=2.0 gives the same fingerprint" in p for p in problems), problems
    assert any("['strength'] differ" in p for p in problems), problems
    assert not any("size=2 gives" in p for p in problems), problems
