"""Inference engines for a trained model: Keras, ONNX Runtime and TFLite (XNNPACK).

One interface, :class:`InferenceEngine` (``predict(x) -> probabilities``), over three
runtimes. The input contract is the same for all of them: float32 RGB in [0, 1] at the
model's input size (the normalisation is the model's first layer, so it is exported too).

Where the exported file comes from: ``export/model.onnx`` (or ``.tflite``) beside the
``.keras`` file when its ``source.json`` names the same model hash and the export file still
has the sha256 recorded beside it (``imaging-tl export`` writes both; checked on every use,
a mismatch is reported on stderr and the model converted again, never trusted), else a
conversion made once and cached under
``<cache dir>/engines/<sha256 of model.keras>/``; every conversion is checked against the
Keras model (within 1e-4) before it is used.

``engine="auto"`` picks Keras when TensorFlow sees a GPU, else the fastest correct CPU
engine that is installed: TFLite (XNNPACK), then ONNX Runtime, then Keras. Measured in
benchmarks/engines.py on our 2 shared cores (Lite0, 224 px): TFLite 2.2x / 14x Keras
``predict`` at batch 32 / 1, ONNX Runtime 2.0x / 7.3x in the same run; on an idle machine
the two were even (132-136 img/s each).

Examples
--------
>>> from imaging_tl.deploy.engines import load_engine
>>> eng = load_engine("runs/demo/model.keras", "onnxruntime")  # doctest: +SKIP
>>> eng.predict(x).shape  # doctest: +SKIP
(8, 1)
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl.deploy.export import ExportError, export_model, export_sha256, model_sha256

__all__ = [
    "ENGINES", "EngineError", "InferenceEngine", "KerasEngine", "OnnxEngine", "TFLiteEngine",
    "available_engines", "default_engine", "exported_model", "load_engine", "model_sha256",
]

ENGINES = ("keras", "onnxruntime", "tflite")
_SUFFIX = {"onnxruntime": "onnx", "tflite": "tflite"}


class EngineError(RuntimeError):
    """An engine is not installed, or its model cannot be made or loaded."""


def available_engines() -> list[str]:
    """Engines whose runtime is installed (TensorFlow is needed by all but an existing ONNX).

    Examples
    --------
    >>> "keras" in available_engines()
    True
    """
    out = ["keras"] if importlib.util.find_spec("tensorflow") else []
    if importlib.util.find_spec("onnxruntime"):
        out.append("onnxruntime")
    if importlib.util.find_spec("tensorflow"):
        out.append("tflite")  # tf.lite.Interpreter ships with TensorFlow
    return out


def _gpu_visible() -> bool:
    # without an NVIDIA device node there is no GPU to ask TensorFlow about (keeps TF unloaded)
    if not glob.glob("/dev/nvidia[0-9]*"):
        return False
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def default_engine() -> str:
    """What ``engine="auto"`` means on this machine.

    Keras on a GPU; on CPU TFLite with XNNPACK (ships with TensorFlow), else ONNX Runtime
    (with an existing export, or ``tf2onnx`` to make one).

    Examples
    --------
    >>> default_engine() in ENGINES
    True
    """
    have = available_engines()
    if _gpu_visible():
        return "keras"
    for name in ("tflite", "onnxruntime"):
        if name in have:
            return name
    return "keras"


class InferenceEngine:
    """Base class: ``predict(x)`` on float32 ``(N, H, W, 3)`` in [0, 1] -> float32 outputs.

    Attributes
    ----------
    name : str
        ``keras``, ``onnxruntime`` or ``tflite``.
    path : Path
        The file the engine runs.
    input_size : tuple of int
        ``(H, W)`` the model expects.
    notes : list of str
        Exports refused on the way (e.g. a file that no longer matches its recorded sha256)
        and why; empty when the first candidate was used.
    """

    name = "base"

    def __init__(self, path: Path, input_size: tuple[int, int]):
        self.path = Path(path)
        self.input_size = tuple(input_size)
        self.notes: list[str] = []

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        want = (*self.input_size, 3)
        if x.ndim != 4 or x.shape[1:] != want:
            raise ValueError(f"{self.name} engine: input shape {x.shape}, expected "
                             f"(N, {want[0]}, {want[1]}, 3)")
        return x

    def predict(self, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Outputs of the model for ``x`` (float32 RGB in [0, 1]), batch by batch."""
        x = self._check(x)
        out = [self._run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 1), np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class KerasEngine(InferenceEngine):
    """The Keras model through a ``tf.function`` traced once (:func:`fast_predict`).

    Examples
    --------
    >>> eng = KerasEngine("runs/demo/model.keras")  # doctest: +SKIP
    """

    name = "keras"

    def __init__(self, path: str | os.PathLike, model: Any = None):
        from imaging_tl.models import load_transfer_model

        self.model = model if model is not None else load_transfer_model(path, compile=False)
        super().__init__(Path(path), tuple(self.model.input_shape[1:3]))

    def _run(self, x: np.ndarray) -> np.ndarray:
        from imaging_tl.models import fast_predict

        return fast_predict(self.model, x, batch_size=len(x))


class OnnxEngine(InferenceEngine):
    """ONNX Runtime on CPU with ``num_threads`` intra-op threads (default: all cores).

    Examples
    --------
    >>> eng = OnnxEngine("export/model.onnx", (224, 224))  # doctest: +SKIP
    """

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike, input_size: tuple[int, int],
                 num_threads: int | None = None):
        import onnxruntime as ort

        super().__init__(Path(path), input_size)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads or (os.cpu_count() or 1)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting threads: on shared cores spinning halved batch-1 speed (measured)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), opts,
                                            providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: x})[0]


class TFLiteEngine(InferenceEngine):
    """TFLite interpreter with the XNNPACK delegate (its default) and ``num_threads``.

    The converted graph has batch size 1; the input is resized to each new batch size
    (one re-allocation per distinct size).

    Examples
    --------
    >>> eng = TFLiteEngine("export/model.tflite", (224, 224))  # doctest: +SKIP
    """

    name = "tflite"

    def __init__(self, path: str | os.PathLike, input_size: tuple[int, int],
                 num_threads: int | None = None):
        import tensorflow as tf

        super().__init__(Path(path), input_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
            self.interpreter = tf.lite.Interpreter(
                model_path=str(self.path), num_threads=num_threads or (os.cpu_count() or 1))
        self._in = self.interpreter.get_input_details()[0]["index"]
        self._out = self.interpreter.get_output_details()[0]["index"]
        self._batch = None

    def _run(self, x: np.ndarray) -> np.ndarray:
        it = self.interpreter
        if self._batch != len(x):
            it.resize_tensor_input(self._in, list(x.shape), strict=False)
            it.allocate_tensors()
            self._batch = len(x)
        it.set_tensor(self._in, x)
        it.invoke()
        return it.get_tensor(self._out).copy()


def _source_problem(folder: Path, fmt: str, name: str, digest: str) -> str | None:
    """Why the export ``folder/name`` may not be used for the model with sha256 ``digest``
    (None: it may). ``source.json`` (written by export_model) names the model file each
    export came from and the export's own sha256; both are checked on every use."""
    try:
        entry = json.loads((folder / "source.json").read_text()).get(fmt) or {}
    except (OSError, ValueError, AttributeError):
        return "its source.json is missing or unreadable"
    if not isinstance(entry, dict) or entry.get("model_sha256") != digest:
        return "its source.json names another model file"
    want = entry.get("sha256")
    if not isinstance(want, str):
        return "its source.json records no sha256 of the export itself"
    if export_sha256(folder / name) != want:
        return "the file does not match the sha256 in its source.json (changed or replaced)"
    return None


def _usable(folder: Path, fmt: str, name: str, digest: str, notes: list[str]) -> bool:
    if not (folder / name).is_file():
        return False
    problem = _source_problem(folder, fmt, name, digest)
    if problem is None:
        return True
    line = f"not using {folder / name}: {problem}"
    print(f"imaging-tl: {line}", file=sys.stderr)
    notes.append(line)
    return False


def exported_model(model_path: str | os.PathLike, engine: str, *,
                   cache_dir: str | os.PathLike | None = None,
                   sample: np.ndarray | None = None,
                   notes: list[str] | None = None) -> Path:
    """The ONNX or TFLite file for ``model.keras``: an export beside it, else convert and cache.

    An export (``export/`` beside the model, or a cached conversion) is used only when its
    ``source.json`` names the sha256 of this ``model.keras`` and the export file still has
    the sha256 recorded there; this is checked on every call. An export that fails the
    check is never run: the model is converted again (into the cache) and the reason is
    written to stderr and appended to ``notes``.

    Parameters
    ----------
    model_path : path
        The ``.keras`` transfer model.
    engine : {"onnxruntime", "tflite"}
    cache_dir : path, optional
        Default: ``<default_cache_dir()>/engines``. Conversions live in ``<sha256>/``.
    sample : numpy.ndarray, optional
        Real preprocessed inputs for the agreement check of a new conversion.
    notes : list of str, optional
        Receives one line per export that was refused.

    Returns
    -------
    Path

    Examples
    --------
    >>> exported_model("runs/demo/model.keras", "onnxruntime")  # doctest: +SKIP
    PosixPath('/home/me/.cache/imaging_tl/engines/3f0c.../model.onnx')
    """
    if engine not in _SUFFIX:
        raise ValueError(f"engine={engine!r}: only onnxruntime and tflite use an exported file")
    model_path = Path(model_path)
    fmt = _SUFFIX[engine]
    name = f"model.{fmt}"
    digest = model_sha256(model_path)
    found: list[str] = []
    beside = model_path.parent / "export"
    if _usable(beside, fmt, name, digest, found):
        return beside / name
    if cache_dir is None:
        from imaging_tl.data.cache import default_cache_dir

        cache_dir = default_cache_dir() / "engines"
    folder = Path(cache_dir) / digest[:32]
    if _usable(folder, fmt, name, digest, found):
        if notes is not None:
            notes.extend(found)
        return folder / name
    if found:
        found.append(f"converting {model_path.name} again into {folder}")
        print(f"imaging-tl: {found[-1]}", file=sys.stderr)
    if notes is not None:
        notes.extend(found)
    try:
        res = export_model(model_path, fmt, folder, sample=sample)
    except ImportError as exc:
        raise EngineError(f"engine {engine}: converter not installed ({exc}); "
                          "pip install 'imaging-tl[export]'") from exc
    except ExportError as exc:
        raise EngineError(f"engine {engine}: {exc}") from exc
    return res.path


def load_engine(model_path: str | os.PathLike, engine: str = "auto", *,
                num_threads: int | None = None, cache_dir: str | os.PathLike | None = None,
                sample: np.ndarray | None = None, model: Any = None) -> InferenceEngine:
    """An inference engine for a trained ``model.keras`` (or its run directory).

    Parameters
    ----------
    model_path : path
    engine : {"auto", "keras", "onnxruntime", "tflite"}
        ``auto``: :func:`default_engine`.
    num_threads : int, optional
        CPU threads of ONNX Runtime / TFLite (default: all cores).
    cache_dir : path, optional
        Where conversions are cached (see :func:`exported_model`).
    sample : numpy.ndarray, optional
        Real inputs for the agreement check of a new conversion.
    model : keras.Model, optional
        An already loaded Keras model (the Keras engine then reuses it).

    Returns
    -------
    InferenceEngine

    Raises
    ------
    EngineError
        Unknown or uninstalled engine, or a failed conversion.

    Examples
    --------
    >>> eng = load_engine("runs/demo", "tflite", num_threads=2)  # doctest: +SKIP
    >>> eng.name  # doctest: +SKIP
    'tflite'
    """
    from imaging_tl.models import model_file, read_contract

    try:
        mp = model_file(model_path)
    except FileNotFoundError as exc:
        raise EngineError(str(exc)) from None
    if engine == "auto":
        engine = default_engine()
    if engine not in ENGINES:
        raise EngineError(f"engine={engine!r}: choose auto or one of {', '.join(ENGINES)}")
    if engine not in available_engines():
        pkg = "onnxruntime" if engine == "onnxruntime" else "tensorflow"
        raise EngineError(f"engine {engine} is not installed (pip install {pkg})")
    if engine == "keras":
        return KerasEngine(mp, model)
    size = tuple(read_contract(mp).input_size)
    notes: list[str] = []
    path = exported_model(mp, engine, cache_dir=cache_dir, sample=sample, notes=notes)
    cls = OnnxEngine if engine == "onnxruntime" else TFLiteEngine
    eng = cls(path, size, num_threads)
    eng.notes = notes
    return eng
