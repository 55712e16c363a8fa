"""Keras' own ImageNet applications: EfficientNetB0, ResNet50, DenseNet121, MobileNetV2.

``weights="imagenet"`` goes through Keras' download (users with internet); on an
air-gapped machine the download fails and :class:`WeightsUnavailableError` says exactly
which file to fetch and where to put it (Keras' cache, where it is then found without a
download) or to pass ``weights=PATH``.

:data:`SPECS` declares these backbones for :mod:`imaging_tl.models.registry`; Keras itself
is only imported by :func:`build_keras_application`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imaging_tl.models.spec import BackboneSpec
from imaging_tl.models.weights.errors import WeightsFileError

__all__ = ["KERAS_APPLICATIONS", "SPECS", "WeightsUnavailableError", "build_keras_application",
           "keras_weights_file"]

_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"

# registry name -> (keras.applications attribute, url folder, top file, no-top file)
KERAS_APPLICATIONS: dict[str, tuple[str, str, str, str]] = {
    "efficientnet_b0": ("EfficientNetB0", "", "efficientnetb0.h5", "efficientnetb0_notop.h5"),
    "resnet50": ("ResNet50", "resnet/",
                 "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                 "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "densenet121": ("DenseNet121", "densenet/",
                    "densenet121_weights_tf_dim_ordering_tf_kernels.h5",
                    "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "mobilenet_v2": ("MobileNetV2", "mobilenet_v2/",
                     "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
                     "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"),
}

_SOURCE = "Keras download (storage.googleapis.com/tensorflow/keras-applications)"

#: The registry entries of this family (see :mod:`imaging_tl.models.registry`).
SPECS: tuple[BackboneSpec, ...] = (
    # Keras' EfficientNet rescales and normalises inside the model: it wants [0, 255].
    BackboneSpec(
        "efficientnet_b0", "keras_applications", 224, "zero_255",
        ("stem_activation", "block1a_project_bn", "block2b_add", "block3b_add", "block4c_add",
         "block5c_add", "block6d_add", "block7a_project_bn", "top_activation"),
        0.2, 1280, _SOURCE),
    BackboneSpec(
        "resnet50", "keras_applications", 224, "caffe",
        ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
         "conv5_block3_out"),
        0.2, 2048, _SOURCE),
    BackboneSpec(
        "densenet121", "keras_applications", 224, "imagenet",
        ("pool1", "pool2_pool", "pool3_pool", "pool4_pool", "relu"),
        0.2, 1024, _SOURCE),
    BackboneSpec(
        "mobilenet_v2", "keras_applications", 224, "minus_one_one",
        ("Conv1_relu", "expanded_conv_project_BN", "block_2_add", "block_5_add", "block_9_add",
         "block_12_add", "block_15_add", "block_16_project_BN", "out_relu"),
        0.2, 1280, _SOURCE),
)


class WeightsUnavailableError(WeightsFileError):
    """ImageNet weights could not be downloaded; the message says what to fetch and where.

    Examples
    --------
    >>> e = WeightsUnavailableError("resnet50", "no network")
    >>> "resnet50" in str(e)
    True
    """


def keras_weights_file(name: str, include_top: bool,
                       input_size: int | None = None) -> tuple[str, Path]:
    """(URL, local path in Keras' cache) of an application's ImageNet weights file.

    MobileNetV2 has one file per input size (96, 128, 160, 192, 224; others use 224), so
    ``input_size`` picks the one Keras downloads for that model.

    Examples
    --------
    >>> url, path = keras_weights_file("resnet50", include_top=False)
    >>> url.endswith("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    True
    """
    _, folder, top, notop = KERAS_APPLICATIONS[name]
    fname = top if include_top else notop
    if name == "mobilenet_v2" and input_size in (96, 128, 160, 192):
        fname = fname.replace("_1.0_224", f"_1.0_{input_size}")
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()
    return _BASE + folder + fname, keras_home / "models" / fname


def build_keras_application(
    name: str,
    weights: str | os.PathLike | None = "imagenet",
    include_top: bool = False,
    input_shape: tuple[int, int, int] | None = None,
    input_tensor: Any = None,
):
    """Build one of Keras' applications by registry name.

    Parameters
    ----------
    name : str
        ``"efficientnet_b0"``, ``"resnet50"``, ``"densenet121"`` or ``"mobilenet_v2"``.
    weights : {"imagenet", None} or path
        ``"imagenet"`` downloads through Keras; a path loads a local Keras ``.h5`` file.
    include_top, input_shape, input_tensor
        As in ``keras.applications``.

    Raises
    ------
    WeightsUnavailableError
        The download failed (offline); names the URL and where to put the file.
    WeightsFileError
        ``weights`` is a path that does not exist.

    Examples
    --------
    >>> m = build_keras_application("mobilenet_v2", weights=None, input_shape=(64, 64, 3))
    >>> m.output_shape
    (None, 2, 2, 1280)
    """
    import keras

    attr = KERAS_APPLICATIONS[name][0]
    builder = getattr(keras.applications, attr)
    kwargs: dict[str, Any] = {"include_top": include_top, "input_shape": input_shape,
                              "input_tensor": input_tensor}
    if weights is None:
        return builder(weights=None, **kwargs)
    if str(weights) != "imagenet":
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsFileError(path, f"weights file for {name} not found")
        return builder(weights=str(path), **kwargs)
    url, local = keras_weights_file(name, include_top,
                                    input_size=input_shape[0] if input_shape else None)
    try:
        return builder(weights="imagenet", **kwargs)
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same advice
        raise WeightsUnavailableError(
            name,
            f"could not download ImageNet weights ({type(exc).__name__}). On a machine with "
            f"internet fetch {url} and either put it at {local} (Keras then finds it) or "
            f"pass weights='/path/to/{local.name}'",
        ) from exc
