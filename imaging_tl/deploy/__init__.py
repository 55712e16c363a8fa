"""Deployment: exporting a trained model and running it on an inference engine.

- :mod:`~imaging_tl.deploy.export`: Keras, SavedModel, ONNX and TFLite exports, each checked
  against the Keras model and written with its ``contract.json``;
- :mod:`~imaging_tl.deploy.engines`: one ``predict`` interface over Keras, ONNX Runtime and
  TFLite (XNNPACK), with the fastest correct engine picked for this machine.

Neither module imports TensorFlow until a model is loaded or converted.

Examples
--------
>>> from imaging_tl.deploy import ENGINES, FORMATS
>>> FORMATS
('keras', 'savedmodel', 'onnx', 'tflite')
"""

from imaging_tl.deploy.engines import (
    ENGINES,
    EngineError,
    InferenceEngine,
    KerasEngine,
    OnnxEngine,
    TFLiteEngine,
    available_engines,
    default_engine,
    exported_model,
    load_engine,
)
from imaging_tl.deploy.export import FORMATS, ExportError, ExportResult, export_model, model_sha256

__all__ = [
    "ENGINES", "FORMATS", "EngineError", "ExportError", "ExportResult", "InferenceEngine",
    "KerasEngine", "OnnxEngine", "TFLiteEngine", "available_engines", "default_engine",
    "export_model", "exported_model", "load_engine", "model_sha256",
]
