"""Self-supervised pretraining on unlabelled images (``imaging-tl pretrain``).

SimSiam (Chen & He, CVPR 2021) on a registered backbone, from ImageNet weights or a random
start, over images preprocessed into the same array cache as ``imaging-tl run``. The run
directory it writes is a valid ``model.source`` of a target run.

- :mod:`~imaging_tl.pretrain.views`: the two radiograph-safe random views of an image;
- :mod:`~imaging_tl.pretrain.simsiam`: the model, its loss and its training step;
- :mod:`~imaging_tl.pretrain.quality`: collapse statistics and the linear probe;
- :mod:`~imaging_tl.pretrain.data`: the unlabelled table, the cache, streamed views;
- :mod:`~imaging_tl.pretrain.runner`: :func:`pretrain`, the run directory, resume;
- :mod:`~imaging_tl.pretrain.result`: ``model.keras``, ``history.csv``, ``run.json``.

Examples
--------
>>> from imaging_tl.pretrain import pretrain
>>> result = pretrain("pipelines/pretrain.yaml")  # doctest: +SKIP
"""

from imaging_tl.pretrain.result import CollapseError, PretrainResult
from imaging_tl.pretrain.runner import pretrain

__all__ = ["CollapseError", "PretrainResult", "pretrain"]
