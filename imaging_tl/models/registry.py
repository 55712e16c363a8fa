"""The backbone registry: every backbone by name, without importing TensorFlow.

Each family module declares its own entries as a tuple ``SPECS`` of
:class:`~imaging_tl.models.spec.BackboneSpec` (:mod:`imaging_tl.models.efficientnet_lite`,
:mod:`imaging_tl.models.keras_apps`); this module only collects and indexes them. A spec
names the backbone's input normalisation scheme (the constants live in
:mod:`imaging_tl.stages.normalize`); importing this module registers the backbone -> scheme
lookup there, so ``Normalize("efficientnet_lite0")`` works without stages importing models.
"""

from __future__ import annotations

import difflib

from imaging_tl.models.efficientnet_lite import SPECS as LITE_SPECS
from imaging_tl.models.keras_apps import SPECS as KERAS_SPECS
from imaging_tl.models.spec import BackboneSpec
from imaging_tl.stages.normalize import register_backbone_schemes

__all__ = ["BackboneSpec", "UnknownBackboneError", "get_spec", "list_backbones",
           "normalization_scheme"]

# Adding a family: define its SPECS in its own module and list them here.
_SPECS: dict[str, BackboneSpec] = {spec.name: spec for spec in (*LITE_SPECS, *KERAS_SPECS)}


class UnknownBackboneError(KeyError):
    """A backbone name that is not in the registry (the message suggests close names).

    Examples
    --------
    >>> try:
    ...     get_spec("efficientnet_lite")
    ... except UnknownBackboneError as e:
    ...     print("lite0" in str(e))
    True
    """

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def list_backbones() -> list[str]:
    """Names of all registered backbones.

    Examples
    --------
    >>> "efficientnet_lite0" in list_backbones()
    True
    """
    return list(_SPECS)


def get_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` of a backbone, with a close-match suggestion for typos.

    Parameters
    ----------
    name : str
        Registry name (case-insensitive; ``-`` and ``_`` are interchangeable).

    Raises
    ------
    UnknownBackboneError
        Not registered; the message lists the closest names.

    Examples
    --------
    >>> get_spec("EfficientNet-Lite0").normalization
    'efficientnet_lite'
    """
    key = str(name).strip().lower().replace("-", "_")
    if key in _SPECS:
        return _SPECS[key]
    close = difflib.get_close_matches(key, list(_SPECS), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownBackboneError(
        f"unknown backbone {name!r}{hint} (known: {', '.join(_SPECS)})")


def normalization_scheme(backbone: str) -> str:
    """The name of the input normalisation scheme a backbone declares.

    The scheme's constants come from :func:`imaging_tl.stages.normalize.get_scheme`.

    Raises
    ------
    UnknownBackboneError
        Not a registered backbone.

    Examples
    --------
    >>> normalization_scheme("resnet50")
    'caffe'
    """
    return get_spec(backbone).normalization


register_backbone_schemes(normalization_scheme, list_backbones)
