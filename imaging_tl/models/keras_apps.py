"""Keras' own applications: EfficientNetB0, ResNet50, DenseNet121, MobileNetV2, InceptionV3,
InceptionResNetV2, and the same architectures with domain-pretrained weights files.

``weights="imagenet"`` goes through Keras' download (users with internet); on an
air-gapped machine the download fails and :class:`WeightsUnavailableError` says exactly
which file to fetch and where to put it (Keras' cache, where it is then found without a
download) or to pass ``weights=PATH``.

The ``radimagenet_*`` and ``xrv_densenet121`` backbones are the same Keras architectures
with their own input normalisation, pretrained on radiology images; their weights files
are user-supplied (:mod:`imaging_tl.models.weights.domain` says which file, from where and
where to put it). A weights file can be pinned by its full sha256 (``weights_sha256``).

:data:`SPECS` declares these backbones for :mod:`imaging_tl.models.registry`; Keras itself
is only imported by :func:`build_keras_application`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imaging_tl.models.spec import BackboneSpec
from imaging_tl.models.weights.domain import DOMAIN_WEIGHTS
from imaging_tl.models.weights.errors import WeightsFileError

__all__ = ["KERAS_APPLICATIONS", "SPECS", "WeightsUnavailableError", "architecture_of",
           "build_keras_application", "keras_weights_file", "load_weights_file"]

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
    "inception_v3": ("InceptionV3", "inception_v3/",
                     "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
                     "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "inception_resnet_v2": ("InceptionResNetV2", "inception_resnet_v2/",
                            "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5",
                            "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"),
}

# Stage boundaries (named layers only: Inception's unnamed layers get session-dependent
# names). InceptionV3: 35x35 stage (mixed0-2), reduction (mixed3), 17x17 (mixed4-7),
# reduction (mixed8), 8x8 (mixed9-10). InceptionResNetV2: stem (mixed_5b), 10 x block35,
# reduction (mixed_6a), 20 x block17, reduction (mixed_7a), 10 x block8, conv_7b.
_FREEZE = {
    "resnet50": ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
                 "conv5_block3_out"),
    "densenet121": ("pool1", "pool2_pool", "pool3_pool", "pool4_pool", "relu"),
    "inception_v3": ("mixed0", "mixed2", "mixed3", "mixed7", "mixed8", "mixed10"),
    "inception_resnet_v2": ("mixed_5b", "block35_10_ac", "mixed_6a", "block17_20_ac",
                            "mixed_7a", "conv_7b_ac"),
}
_FEATURES = {"resnet50": 2048, "densenet121": 1024, "inception_v3": 2048,
             "inception_resnet_v2": 1536}

_SOURCE = "Keras download (storage.googleapis.com/tensorflow/keras-applications)"

#: The registry entries of this family (see :mod:`imaging_tl.models.registry`).
SPECS: tuple[BackboneSpec, ...] = (
    # Keras' EfficientNet rescales and normalises inside the model: it wants [0, 255].
    BackboneSpec(
        "efficientnet_b0", "keras_applications", 224, "zero_255",
        ("stem_activation", "block1a_project_bn", "block2b_add", "block3b_add", "block4c_add",
         "block5c_add", "block6d_add", "block7a_project_bn", "top_activation"),
        0.2, 1280, _SOURCE),
    BackboneSpec("resnet50", "keras_applications", 224, "caffe", _FREEZE["resnet50"], 0.2,
                 2048, _SOURCE),
    BackboneSpec("densenet121", "keras_applications", 224, "imagenet", _FREEZE["densenet121"],
                 0.2, 1024, _SOURCE),
    BackboneSpec(
        "mobilenet_v2", "keras_applications", 224, "minus_one_one",
        ("Conv1_relu", "expanded_conv_project_BN", "block_2_add", "block_5_add", "block_9_add",
         "block_12_add", "block_15_add", "block_16_project_BN", "out_relu"),
        0.2, 1280, _SOURCE),
    # Keras "tf" mode (x / 127.5 - 1) for both Inceptions
    BackboneSpec("inception_v3", "keras_applications", 299, "minus_one_one",
                 _FREEZE["inception_v3"], 0.2, 2048, _SOURCE),
    BackboneSpec("inception_resnet_v2", "keras_applications", 299, "minus_one_one",
                 _FREEZE["inception_resnet_v2"], 0.2, 1536, _SOURCE),
    # domain-pretrained: the same architectures, user-supplied files, their own schemes
    *(BackboneSpec(d.backbone, "keras_applications",
                   299 if d.architecture.startswith("inception") else 224,
                   "xrv" if d.backbone.startswith("xrv") else "radimagenet",
                   _FREEZE[d.architecture], 0.2, _FEATURES[d.architecture],
                   f"{d.filename} (user-supplied, see README)")
      for d in DOMAIN_WEIGHTS.values()),
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


def architecture_of(name: str) -> str:
    """The Keras application a registry name is built as (itself, or a domain backbone's).

    Examples
    --------
    >>> architecture_of("radimagenet_inception_resnet_v2")
    'inception_resnet_v2'
    """
    return DOMAIN_WEIGHTS[name].architecture if name in DOMAIN_WEIGHTS else name


def build_keras_application(
    name: str,
    weights: str | os.PathLike | None = "imagenet",
    include_top: bool = False,
    input_shape: tuple[int, int, int] | None = None,
    input_tensor: Any = None,
    *,
    weights_sha256: str | None = None,
):
    """Build one of Keras' applications by registry name.

    Parameters
    ----------
    name : str
        A ``keras_applications`` registry name: ``"efficientnet_b0"``, ``"resnet50"``,
        ``"densenet121"``, ``"mobilenet_v2"``, ``"inception_v3"``,
        ``"inception_resnet_v2"``, or a domain backbone (``"radimagenet_resnet50"``, ...,
        ``"xrv_densenet121"``).
    weights : {"imagenet", None} or path
        ``"imagenet"`` downloads through Keras (for a domain backbone: its file in the
        weights folder, see :func:`imaging_tl.models.weights.domain.domain_weights_file`);
        a path loads a Keras ``.h5`` / ``.weights.h5`` file (tf.keras files such as
        RadImageNet's by layer order), or for ``xrv_densenet121`` a torch state dict.
    include_top, input_shape, input_tensor
        As in ``keras.applications``.
    weights_sha256 : str, optional
        The weights file's full sha256; a mismatch raises before anything is built.

    Raises
    ------
    WeightsUnavailableError
        The download failed (offline); names the URL and where to put the file.
    WeightsFileError
        ``weights`` is a path that does not exist or does not fit the architecture, or
        its sha256 differs from ``weights_sha256``.

    Examples
    --------
    >>> m = build_keras_application("mobilenet_v2", weights=None, input_shape=(64, 64, 3))
    >>> m.output_shape
    (None, 2, 2, 1280)
    """
    import keras

    from imaging_tl.models.weights.domain import resolve_weights

    builder = getattr(keras.applications, KERAS_APPLICATIONS[architecture_of(name)][0])
    kwargs: dict[str, Any] = {"include_top": include_top, "input_shape": input_shape,
                              "input_tensor": input_tensor}
    resolved = resolve_weights(name, weights, weights_sha256)
    if resolved is None:
        return builder(weights=None, **kwargs)
    if isinstance(resolved, str):  # "imagenet", not a domain backbone
        return _imagenet(builder, name, kwargs)
    if name in DOMAIN_WEIGHTS and include_top:
        raise WeightsFileError(resolved, f"{name} weights hold no ImageNet classifier: build "
                                         "with include_top=False")
    model = builder(weights=None, **kwargs)
    load_weights_file(model, name, resolved)
    return model


def _imagenet(builder: Any, name: str, kwargs: dict[str, Any]):
    shape = kwargs["input_shape"]
    url, local = keras_weights_file(name, kwargs["include_top"],
                                    input_size=shape[0] if shape else None)
    try:
        return builder(weights="imagenet", **kwargs)
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same advice
        raise WeightsUnavailableError(
            name,
            f"could not download ImageNet weights ({type(exc).__name__}). On a machine with "
            f"internet fetch {url} and either put it at {local} (Keras then finds it) or "
            f"pass weights='/path/to/{local.name}'",
        ) from exc


def load_weights_file(model: Any, name: str, path: Path) -> None:
    """Load a weights file into a freshly built application model.

    A tf.keras HDF5 file (RadImageNet's layout) is read by layer order with every shape
    checked; a torch state dict is converted (``xrv_densenet121`` only); anything else
    goes to ``model.load_weights`` (Keras 3 ``.weights.h5``).

    Raises
    ------
    WeightsFileError
        The file does not fit the model (names the file and the reason).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> m = build_keras_application("mobilenet_v2", weights=None, input_shape=(32, 32, 3))
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.weights.h5"; m.save_weights(p)
    >>> load_weights_file(m, "mobilenet_v2", p)
    """
    from imaging_tl.models.weights.domain import looks_like_torch
    from imaging_tl.models.weights.keras_h5 import assign_in_order, is_keras2_h5, read_keras2_h5

    if looks_like_torch(path):
        _load_torch(model, name, path)
    elif is_keras2_h5(path):
        assign_in_order(model, read_keras2_h5(path), path)
    else:
        try:
            model.load_weights(path)
        except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad file
            raise WeightsFileError(path, f"cannot load into {name}: {type(exc).__name__}: "
                                         f"{exc!s:.200}") from exc


def _load_torch(model: Any, name: str, path: Path) -> None:
    from imaging_tl.models.weights.convert import torch_layers_to_keras
    from imaging_tl.models.weights.domain import xrv_key_map
    from imaging_tl.models.weights.lite import set_weights_by_name
    from imaging_tl.models.weights.torch_pickle import UnsafePickleError
    from imaging_tl.models.weights.torch_zip import read_torch_state_dict

    if name != "xrv_densenet121":
        raise WeightsFileError(path, f"a PyTorch file: {name} takes Keras .h5 weights (torch "
                                     "state dicts: efficientnet_lite*, xrv_densenet121)")
    try:
        state = read_torch_state_dict(path)
    except UnsafePickleError as exc:
        raise UnsafePickleError(path, f"{exc.reason}. A whole pickled model, not a state "
                                      f"dict: {DOMAIN_WEIGHTS[name].source}") from exc
    set_weights_by_name(model, torch_layers_to_keras(state, xrv_key_map(), str(path)))
