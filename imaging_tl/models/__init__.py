"""Backbones, ImageNet weights that work offline, and the transfer model.

The registry (``list_backbones``, ``get_spec``, ``normalization_scheme``), the head
settings (``HeadConfig``) and the model contract (``ModelContract``, ``read_contract``) are
plain Python; the Keras builders are imported on first use, so ``import imaging_tl.models``
does not import TensorFlow. Importing it also lets
:class:`~imaging_tl.stages.Normalize` accept backbone names.

Layout: :mod:`~imaging_tl.models.spec` (``BackboneSpec``), one module per backbone family
declaring its registry entries (:mod:`~imaging_tl.models.efficientnet_lite`,
:mod:`~imaging_tl.models.keras_apps`), :mod:`~imaging_tl.models.registry`,
:mod:`~imaging_tl.models.weights` (offline ImageNet weights),
:mod:`~imaging_tl.models.backbones` (``build_backbone``), :mod:`~imaging_tl.models.head`,
:mod:`~imaging_tl.models.custom_objects`, :mod:`~imaging_tl.models.contract`,
:mod:`~imaging_tl.models.transfer`, :mod:`~imaging_tl.models.predict` and
:mod:`~imaging_tl.models.ensemble` (the fold ensemble).

Examples
--------
>>> from imaging_tl.models import get_spec, list_backbones
>>> get_spec("efficientnet_lite0").freeze_points[-1]
'top_activation'
"""

from __future__ import annotations

import importlib
from typing import Any

from imaging_tl.models.registry import (
    BackboneSpec,
    UnknownBackboneError,
    get_spec,
    list_backbones,
    normalization_scheme,
)
from imaging_tl.models.weights.errors import WeightsFileError
from imaging_tl.models.weights.torch_pickle import UnsafePickleError

# public name -> module that defines it (imported on first use: most need TensorFlow)
_LAZY = {
    "build_backbone": "imaging_tl.models.backbones",
    "build_transfer_model": "imaging_tl.models.transfer",
    "set_freeze": "imaging_tl.models.transfer",
    "feature_extractor": "imaging_tl.models.transfer",
    "head_model": "imaging_tl.models.head",
    "layers_after": "imaging_tl.models.transfer",
    "MaskedBinaryCrossentropy": "imaging_tl.models.custom_objects",
    "save_transfer_model": "imaging_tl.models.transfer",
    "load_transfer_model": "imaging_tl.models.transfer",
    "read_contract": "imaging_tl.models.contract",
    "model_file": "imaging_tl.models.contract",
    "ModelContract": "imaging_tl.models.contract",
    "fast_predict": "imaging_tl.models.predict",
    "build_ensemble": "imaging_tl.models.ensemble",
    "ensemble_members": "imaging_tl.models.ensemble",
    "ensemble_predictions": "imaging_tl.models.ensemble",
    "is_ensemble": "imaging_tl.models.ensemble",
    "HeadConfig": "imaging_tl.models.head",
    "WeightsUnavailableError": "imaging_tl.models.keras_apps",
}

__all__ = ["BackboneSpec", "UnknownBackboneError", "UnsafePickleError", "WeightsFileError",
           "get_spec", "list_backbones", "normalization_scheme", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'imaging_tl.models' has no attribute {name!r}")
