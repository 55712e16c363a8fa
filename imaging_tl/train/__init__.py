"""Phased training of a transfer model: phases, the loop, and distribution over devices.

- :mod:`~imaging_tl.train.phases`: :class:`Phase` and :func:`default_phases` (no TensorFlow;
  the configuration resolves its default phases here);
- :mod:`~imaging_tl.train.loop`: :func:`train`, phase by phase, with cached features for
  frozen phases, checkpoints and resume;
- :mod:`~imaging_tl.train.distribute`: ``tf.distribute`` strategies, the batch and learning
  rate plan, mixed precision, and the custom distributed step;
- :mod:`~imaging_tl.train.features`, :mod:`~imaging_tl.train.checkpoint`,
  :mod:`~imaging_tl.train.compile`: batches and features, per-epoch bookkeeping, losses.

The TensorFlow parts are imported on first use, so importing :mod:`imaging_tl.train.phases`
(as the configuration does) stays cheap.

Examples
--------
>>> from imaging_tl.train import Phase
>>> Phase("finetune", epochs=5, learning_rate=1e-5, freeze="block5c_add").epochs
5
"""

from __future__ import annotations

import importlib
from typing import Any

from imaging_tl.train.phases import DEFAULT_PATIENCE, SCHEDULES, Phase, default_phases

# public name -> module that defines it (imported lazily: these need TensorFlow)
_LAZY = {
    "TrainResult": "imaging_tl.train.loop",
    "train": "imaging_tl.train.loop",
    "compile_for_task": "imaging_tl.train.compile",
    "extract_features": "imaging_tl.train.features",
}

__all__ = ["DEFAULT_PATIENCE", "SCHEDULES", "Phase", "default_phases", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'imaging_tl.train' has no attribute {name!r}")
