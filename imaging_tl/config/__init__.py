"""The pipeline configuration: schema, defaults, ``--set`` overrides and validation.

:mod:`~imaging_tl.config.schema` (the sections), :mod:`~imaging_tl.config.checks` (checks
across keys) and :mod:`~imaging_tl.config.loading` (:func:`load_config`).

A run is described by one YAML file. Validation happens before any work starts and reports
every problem at once, each naming the key path, the bad value and what is allowed::

    model.freeze: 'block9' is not a freeze point of efficientnet_lite0; choose one of ...

A minimal configuration is a few lines::

    data:
      csv: sample_dicoms/labels.csv
      label_column: label

Everything else has a default; values that depend on the backbone (input size, input
normalisation, the fine-tuning freeze point) are filled from its registry entry, and the
preprocessing gets a final ``resize`` to the input size and ``to_rgb`` when it lacks them.
The resolved configuration (``RunConfig.to_dict()``) is written to the run directory as
``config.yaml`` and reproduces the run. Nothing here imports TensorFlow.

Examples
--------
>>> cfg = load_config({"data": {"csv": "sample_dicoms/labels.csv", "label_column": "label"}})
>>> cfg.model.backbone, cfg.model.input_size, [p.name for p in cfg.train.phases]
('efficientnet_lite0', 224, ['head', 'finetune'])
"""


from imaging_tl.config.loading import (
    apply_overrides,
    load_config,
    load_pretrain_config,
    schema_help,
)
from imaging_tl.config.schema import ConfigError, PretrainConfig, RunConfig

__all__ = ["ConfigError", "PretrainConfig", "RunConfig", "apply_overrides", "load_config",
           "load_pretrain_config", "schema_help"]
