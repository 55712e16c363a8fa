"""Preprocessing stages: numpy in, numpy out (or Scan in, Scan out), no TensorFlow.

Each stage is a small object with typed parameters, ``__call__(image, meta=None)``,
``to_config()`` / ``from_config()`` and a readable ``repr``; :class:`Pipeline` applies
them in order and gives a stable :meth:`~Pipeline.fingerprint` for caches.

Examples
--------
>>> import numpy as np
>>> from imaging_tl.stages import Pipeline, Window, Resize, ToRGB, Normalize
>>> p = Pipeline([Window(preset="lung"), Resize(224), ToRGB(), Normalize("imagenet")])
>>> p(np.full((512, 512), -600.0, np.float32)).shape
(224, 224, 3)
>>> stage_from_config({"name": "window", "center": 40, "width": 400})
Window(center=40.0, width=400.0)
"""

from imaging_tl.stages.base import (
    Pipeline,
    Stage,
    get_stage_class,
    list_stages,
    register_stage,
    stage_from_config,
)
from imaging_tl.stages.channels import Color, ToGrey, ToRGB
from imaging_tl.stages.geometry import (
    CenterCrop,
    CropForeground,
    PadToSquare,
    Resize,
    decode_target,
)
from imaging_tl.stages.intensity import CLAHE
from imaging_tl.stages.normalize import (
    SCHEMES,
    NormalizationScheme,
    Normalize,
    get_scheme,
    list_schemes,
)
from imaging_tl.stages.stack import Stack
from imaging_tl.stages.window import PRESETS, MultiWindow, Window, apply_window

__all__ = [
    "CLAHE",
    "PRESETS",
    "SCHEMES",
    "CenterCrop",
    "Color",
    "CropForeground",
    "MultiWindow",
    "NormalizationScheme",
    "Normalize",
    "PadToSquare",
    "Pipeline",
    "Resize",
    "Stack",
    "Stage",
    "ToGrey",
    "ToRGB",
    "Window",
    "apply_window",
    "decode_target",
    "get_scheme",
    "get_stage_class",
    "list_schemes",
    "list_stages",
    "register_stage",
    "stage_from_config",
]
