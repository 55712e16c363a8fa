"""Running whole pipelines: one configuration in, one run directory out.

- :mod:`~imaging_tl.pipeline.runner`: :func:`run`, the list of its steps;
- :mod:`~imaging_tl.pipeline.data_steps`, :mod:`~imaging_tl.pipeline.model_steps`,
  :mod:`~imaging_tl.pipeline.output_steps`: the steps, each a function over one
  :class:`~imaging_tl.pipeline.state.RunState`;
- :mod:`~imaging_tl.pipeline.inputs`: the dataset table, task, classes and splits of a config;
- :mod:`~imaging_tl.pipeline.predict`: :func:`predict_files` with a trained model;
- :mod:`~imaging_tl.pipeline.reevaluate`: :func:`reevaluate` a finished run (external data too).

TensorFlow is imported by the steps that need it, not by importing this package.

Examples
--------
>>> from pathlib import Path
>>> from imaging_tl.pipeline import RunResult
>>> RunResult(Path("runs/x"), None, {"task": "binary", "roc_auc": {"value": 0.9,
...           "ci": [0.8, 0.95]}}).headline()
('roc_auc', 0.9, [0.8, 0.95])
"""

from imaging_tl.pipeline.inputs import InputError, data_manifest_hash, expand_inputs, load_inputs
from imaging_tl.pipeline.predict import predict_files
from imaging_tl.pipeline.provenance import dump_yaml
from imaging_tl.pipeline.reevaluate import reevaluate
from imaging_tl.pipeline.result import RunResult
from imaging_tl.pipeline.runner import run

__all__ = ["InputError", "RunResult", "data_manifest_hash", "dump_yaml", "expand_inputs",
           "load_inputs", "predict_files", "reevaluate", "run"]
