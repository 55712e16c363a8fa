"""Backbones, ImageNet weights that work offline, and the transfer model.

``list_backbones`` and ``get_spec`` are plain Python; the Keras builders are imported on
first use, so ``import imaging_tl.models`` does not import TensorFlow.

Examples
--------
>>> from imaging_tl.models import get_spec, list_backbones
>>> get_spec("efficientnet_lite0").freeze_points[-1]
'top_activation'
"""

from __future__ import annotations

import importlib
from typing import Any

from imaging_tl.models.registry import BackboneSpec, UnknownBackboneError, get_spec, list_backbones
from imaging_tl.models.torch_weights import UnsafePickleError, WeightsFileError

# public name -> module that defines it (imported lazily: these need TensorFlow)
_LAZY = {
    "build_backbone": "imaging_tl.models.backbones",
    "build_transfer_model": "imaging_tl.models.transfer",
    "set_freeze": "imaging_tl.models.transfer",
    "save_transfer_model": "imaging_tl.models.transfer",
    "load_transfer_model": "imaging_tl.models.transfer",
    "read_contract": "imaging_tl.models.transfer",
    "fast_predict": "imaging_tl.models.transfer",
    "HeadConfig": "imaging_tl.models.transfer",
    "WeightsUnavailableError": "imaging_tl.models.keras_apps",
}

__all__ = ["BackboneSpec", "UnknownBackboneError", "UnsafePickleError", "WeightsFileError",
           "get_spec", "list_backbones", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'imaging_tl.models' has no attribute {name!r}")
