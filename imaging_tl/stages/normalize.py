"""Backbone input normalisation: the scheme table and the :class:`Normalize` stage.

Every scheme is written for inputs in [0, 1] as ``y = (x' - mean) / std`` per channel,
where ``x' = x[..., ::-1]`` (RGB -> BGR) when ``bgr`` is set, else ``x``; ``mean`` and
``std`` are in the channel order after that swap. The transfer model applies the same
constants inside the model (its first layer), so the numbers live here once.

Backbones declare their scheme by name in the model registry (a higher layer, which this
module never imports). The registry hands its lookup to :func:`register_backbone_schemes`
when it is imported; from then on ``Normalize("efficientnet_lite0")`` uses the scheme that
backbone declares, so a user need not know which one a backbone wants. Without the
registry, only scheme names are accepted, and the error says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from imaging_tl.stages.base import Stage, close_match_hint, register_stage

__all__ = [
    "SCHEMES",
    "NormalizationScheme",
    "Normalize",
    "get_scheme",
    "list_schemes",
    "register_backbone_schemes",
    "resolve_scheme_name",
]


@dataclass(frozen=True)
class NormalizationScheme:
    """Per-channel ``(x - mean) / std`` for RGB inputs in [0, 1].

    Attributes
    ----------
    mean, std : tuple of 3 floats
        In the channel order the model sees (BGR when ``bgr`` is set).
    bgr : bool
        Reverse the channels (RGB -> BGR) before subtracting ``mean``.

    Examples
    --------
    >>> import numpy as np
    >>> s = get_scheme("efficientnet_lite")
    >>> s.apply(np.ones((1, 1, 3), np.float32)).round(4).tolist()   # (255 - 127) / 128
    [[[1.0, 1.0, 1.0]]]
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool = False

    @cached_property
    def is_channel_uniform(self) -> bool:
        """True when all channels get the same constants (so grey input is fine)."""
        return len(set(self.mean)) == 1 and len(set(self.std)) == 1 and not self.bgr

    @cached_property
    def _scale_offset(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``1 / std`` and ``-mean / std`` per channel (``y = x * scale + offset``)."""
        std = np.asarray(self.std, np.float64)
        return (1.0 / std).astype(np.float32), (-np.asarray(self.mean, np.float64) / std).astype(
            np.float32
        )

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Normalise a float image in [0, 1] (``... x 3``, or grey when channel-uniform)."""
        x = np.asarray(image, dtype=np.float32)
        scale, offset = self._scale_offset
        if self.is_channel_uniform:
            # one scalar multiply-add: numpy broadcasting over a length-3 last axis is
            # several times slower than scalars or per-channel strided passes
            y = x * scale[0]
            y += offset[0]
            return y
        if x.ndim < 1 or x.shape[-1] != 3 or x.ndim == 2:
            raise ValueError(
                f"this normalisation needs 3 channels (RGB), got shape {x.shape}; add ToRGB"
            )
        y = np.empty_like(x)
        for c in range(3):
            src = x[..., 2 - c] if self.bgr else x[..., c]
            np.multiply(src, scale[c], out=y[..., c])
            y[..., c] += offset[c]
        return y


#: name -> scheme, for inputs in [0, 1].
SCHEMES: dict[str, NormalizationScheme] = {
    # EfficientNet-Lite reference: (x*255 - 127) / 128
    "efficientnet_lite": NormalizationScheme((127 / 255,) * 3, (128 / 255,) * 3),
    # torchvision / Keras "torch" mode
    "imagenet": NormalizationScheme((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # Keras "tf" mode (MobileNet, Inception): x*2 - 1
    "minus_one_one": NormalizationScheme((0.5,) * 3, (0.5,) * 3),
    # Keras EfficientNetB*/V2 rescale inside the model: they want x*255
    "zero_255": NormalizationScheme((0.0,) * 3, (1 / 255,) * 3),
    # Keras "caffe" mode (ResNet50, VGG): BGR, x*255 - [103.939, 116.779, 123.68]
    "caffe": NormalizationScheme(
        (103.939 / 255, 116.779 / 255, 123.68 / 255), (1 / 255,) * 3, bgr=True
    ),
    # RadImageNet's Keras models: "caffe" on [0, 255], then / 255 (its published training
    # scripts: ImageDataGenerator(rescale=1/255, preprocessing_function=preprocess_input),
    # which applies the function first): BGR, x - [103.939, 116.779, 123.68] / 255
    "radimagenet": NormalizationScheme(
        (103.939 / 255, 116.779 / 255, 123.68 / 255), (1.0,) * 3, bgr=True
    ),
    # torchxrayvision: grey in [0, 255] mapped to [-1024, 1024]: (2 x - 1) * 1024
    "xrv": NormalizationScheme((0.5,) * 3, (1 / 2048,) * 3),
}


def list_schemes() -> list[str]:
    """Names of the normalisation schemes.

    Examples
    --------
    >>> list_schemes()
    ['caffe', 'efficientnet_lite', 'imagenet', 'minus_one_one', 'radimagenet', 'xrv', 'zero_255']
    """
    return sorted(SCHEMES)


@dataclass(frozen=True)
class _BackboneSchemes:
    scheme_of: Callable[[str], str]
    names: Callable[[], Iterable[str]]


# Set by the model registry when it is imported (see register_backbone_schemes).
_backbones: _BackboneSchemes | None = None


def register_backbone_schemes(
    scheme_of: Callable[[str], str], names: Callable[[], Iterable[str]]
) -> None:
    """Let :class:`Normalize` accept backbone names, resolved by a higher layer.

    :mod:`imaging_tl.models.registry` calls this when it is imported, so stages never
    import models. A later call replaces the earlier one.

    Parameters
    ----------
    scheme_of : callable
        Backbone name -> the scheme name it declares; raises ``KeyError`` for a name that
        is not a backbone.
    names : callable
        The backbone names (for close-match hints in error messages).

    Examples
    --------
    >>> import imaging_tl.models.registry   # registers itself here on import
    >>> resolve_scheme_name("resnet50")
    'caffe'
    """
    global _backbones
    _backbones = _BackboneSchemes(scheme_of, names)


def _declared_scheme(name: str) -> str | None:
    """The scheme a registered backbone declares, or None (no registry, or not a backbone)."""
    if _backbones is None:
        return None
    try:
        return _backbones.scheme_of(name)
    except KeyError:
        return None


def resolve_scheme_name(name: str) -> str:
    """A scheme name for ``name``, which is a scheme name or a registered backbone name.

    Raises
    ------
    ValueError
        Neither a scheme nor a registered backbone (the message suggests close names, and
        says when no backbone registry has been imported).

    Examples
    --------
    >>> resolve_scheme_name("imagenet")
    'imagenet'
    >>> import imaging_tl.models.registry   # registers the backbone names
    >>> resolve_scheme_name("efficientnet_lite0")
    'efficientnet_lite'
    """
    if not isinstance(name, str):
        raise ValueError(f"Normalize: scheme must be a scheme or backbone name, got {name!r}")
    if name in SCHEMES:
        return name
    declared = _declared_scheme(name)
    if declared is not None:
        if declared not in SCHEMES:
            raise ValueError(
                f"Normalize: backbone {name!r} declares normalisation {declared!r}, which is "
                f"not a known scheme ({', '.join(list_schemes())})"
            )
        return declared
    backbones = [str(n) for n in _backbones.names()] if _backbones is not None else []
    where = (f"; backbones: {', '.join(backbones)}" if backbones else
             "; backbone names are accepted once the model registry is imported "
             "(import imaging_tl.models)")
    raise ValueError(
        f"Normalize: unknown scheme or backbone {name!r}"
        f"{close_match_hint(name, list_schemes() + backbones)}; "
        f"schemes: {', '.join(list_schemes())}{where}"
    )


def get_scheme(name: str) -> NormalizationScheme:
    """The :class:`NormalizationScheme` for a scheme name (or a backbone name).

    Examples
    --------
    >>> get_scheme("minus_one_one")
    NormalizationScheme(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), bgr=False)
    """
    return SCHEMES[resolve_scheme_name(name)]


@register_stage
class Normalize(Stage):
    """Normalise a [0, 1] image the way a backbone was trained.

    Parameters
    ----------
    scheme : str
        A scheme (``"efficientnet_lite"``, ``"imagenet"``, ``"minus_one_one"``,
        ``"zero_255"``, ``"caffe"``, ``"radimagenet"``, ``"xrv"``) or a backbone name
        (``"efficientnet_lite0"``, ``"resnet50"``, ...), whose declared scheme is used;
        backbone names need the model registry imported (``import imaging_tl.models``),
        which registers them here. The name is kept as given in :meth:`to_config` (and so
        in fingerprints).
    check_range : bool
        Refuse input outside [0, 1] (a missing Window would otherwise give silently
        wrong predictions). Inside a :class:`Pipeline` the check is skipped where an
        earlier Window and only range-keeping stages since already guarantee [0, 1].

    Notes
    -----
    Models built by :func:`imaging_tl.models.build_transfer_model` normalise inside the
    model; use this stage only for backbones that do not.

    Examples
    --------
    >>> import numpy as np
    >>> Normalize("minus_one_one")(np.array([[0.0, 1.0]], np.float32)).tolist()
    [[-1.0, 1.0]]
    >>> Normalize("imagenet")(np.zeros((1, 1, 3), np.float32)).astype(float).round(3).tolist()
    [[[-2.118, -2.036, -1.804]]]
    >>> import imaging_tl.models   # backbone names resolve through the model registry
    >>> Normalize("mobilenet_v2").resolved
    'minus_one_one'
    """

    name = "normalize"

    def __init__(self, scheme: str, *, check_range: bool = True) -> None:
        self.scheme = scheme
        self.resolved = resolve_scheme_name(scheme)
        self._scheme = SCHEMES[self.resolved]
        self.check_range = bool(check_range)

    def get_params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"scheme": self.scheme}
        if not self.check_range:
            p["check_range"] = False
        return p

    def _transform(self, image: np.ndarray, meta: Mapping[str, Any]):
        return self._normalise(image, self.check_range)

    def _transform_unit_input(self, image: np.ndarray, meta: Mapping[str, Any]):
        return self._normalise(image, False)  # a Pipeline proved the input is in [0, 1]

    def _normalise(self, image: np.ndarray, check_range: bool):
        if check_range:
            # full SIMD reductions: ~18 us each on 224 x 224 x 3 here; a strided sub-grid
            # measured slower (short inner loops)
            lo, hi = float(image.min()), float(image.max())
            if lo < -1e-6 or hi > 1.0 + 1e-6:
                raise ValueError(
                    f"Normalize: image must be in [0, 1] (apply Window first), got [{lo:g}, {hi:g}]"
                )
        if image.ndim == 3 and image.shape[-1] != 3 and not self._scheme.is_channel_uniform:
            raise ValueError(
                f"Normalize({self.scheme!r}): needs 3 channels, got shape {image.shape}"
            )
        try:
            out = self._scheme.apply(image)
        except ValueError as exc:
            raise ValueError(f"Normalize({self.scheme!r}): {exc}") from None
        details = {"resolved": self.resolved} if self.resolved != self.scheme else None
        return out, details
