"""Export a trained model (Keras, SavedModel, ONNX, TFLite) with its contract beside it.

Every export is checked: the exported model and the Keras model are run on the same input
(a real, preprocessed scan when one is given) and must agree within ``atol`` (1e-4).
``contract.json`` (input size, channels, normalisation, preprocessing, label names,
threshold) is copied next to the export, because only the Keras file can carry it inside.

Notes on converters (TensorFlow 2.21 / Keras 3 here): ONNX goes through
``tf2onnx.convert.from_function`` on a ``tf.function`` of the model; TFLite goes through a
SavedModel (``TFLiteConverter.from_concrete_functions`` on a Keras 3 model gave NaN
outputs, the SavedModel route agrees within 1e-6).

Examples
--------
>>> from imaging_tl.deploy.export import export_model
>>> res = export_model("runs/demo/model.keras", "onnx")  # doctest: +SKIP
>>> res.max_abs_diff < 1e-4  # doctest: +SKIP
True
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["FORMATS", "ExportError", "ExportResult", "export_model", "export_sha256",
           "model_sha256"]

FORMATS = ("keras", "savedmodel", "onnx", "tflite")


class ExportError(RuntimeError):
    """A conversion failed, or the exported model disagrees with the Keras model."""


@dataclass
class ExportResult:
    """Where an export went and how well it agrees with the Keras model.

    Examples
    --------
    >>> ExportResult("onnx", Path("m.onnx"), 3e-7, "real input", 1.0).summary()
    'exported onnx to m.onnx (max |difference| to Keras 3e-07 on a real input, 1.0 s)'
    """

    format: str
    path: Path
    max_abs_diff: float
    checked_on: str
    seconds: float

    def summary(self) -> str:
        return (f"exported {self.format} to {self.path} (max |difference| to Keras "
                f"{self.max_abs_diff:.1g} on a {self.checked_on}, {self.seconds:.1f} s)")


def _run_savedmodel(path: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return np.asarray(loaded.serve(tf.constant(x)))


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notice of tf.lite.Interpreter
        it = tf.lite.Interpreter(model_path=str(path))
    inp = it.get_input_details()[0]
    out = []
    it.allocate_tensors()
    for row in x:  # the converted graph has batch size 1
        it.set_tensor(inp["index"], row[None])
        it.invoke()
        out.append(it.get_tensor(it.get_output_details()[0]["index"]).copy())
    return np.concatenate(out)


def model_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a model file (the key of its exports and cached conversions).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "m.keras"
    >>> _ = p.write_bytes(b"")
    >>> model_sha256(p)[:12]
    'e3b0c44298fc'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def export_sha256(path: str | os.PathLike) -> str:
    """The sha256 of an export: the file's, or for a folder (SavedModel) of every file in it.

    A folder's digest covers each file's relative path and contents, in sorted order, so a
    renamed, added or changed file changes it.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "a.bin").write_bytes(b"")
    >>> export_sha256(d / "a.bin") == model_sha256(d / "a.bin")
    True
    >>> len(export_sha256(d))
    64
    """
    path = Path(path)
    if not path.is_dir():
        return model_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0")
        h.update(model_sha256(f).encode())
    return h.hexdigest()


def export_model(
    model_path: str | os.PathLike,
    fmt: str,
    out_dir: str | os.PathLike | None = None,
    *,
    sample: np.ndarray | None = None,
    atol: float = 1e-4,
) -> ExportResult:
    """Export ``model.keras`` to ``fmt`` in ``out_dir`` (default ``export/`` beside it).

    Parameters
    ----------
    model_path : path
        A ``.keras`` transfer model (its ``contract.json`` is found inside or beside it).
    fmt : {"keras", "savedmodel", "onnx", "tflite"}
    out_dir : path, optional
        Target folder; the export is ``model.keras``, ``savedmodel/``, ``model.onnx`` or
        ``model.tflite`` there, with ``contract.json``.
    sample : numpy.ndarray, optional
        ``(N, H, W, 3)`` float32 in [0, 1]: real preprocessed inputs to compare on
        (default: a seeded random batch, reported as such).
    atol : float
        Largest allowed absolute difference of the outputs.

    Returns
    -------
    ExportResult

    Raises
    ------
    ExportError
        The converter failed (with its message) or the outputs disagree.

    Examples
    --------
    >>> export_model("runs/demo/model.keras", "tflite", sample=x)  # doctest: +SKIP
    """
    from imaging_tl.models import load_transfer_model

    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r}: choose one of {', '.join(FORMATS)}")
    t0 = time.perf_counter()
    model_path = Path(model_path)
    model = load_transfer_model(model_path, compile=False)
    contract = model.imaging_tl_contract
    h, w = contract.input_size
    out = Path(out_dir) if out_dir is not None else model_path.parent / "export"
    out.mkdir(parents=True, exist_ok=True)
    if sample is None:
        x = np.random.default_rng(0).random((2, h, w, 3), dtype=np.float32)
        checked_on = "random input"
    else:
        x = np.ascontiguousarray(sample, dtype=np.float32)
        contract.check_batch(x)
        checked_on = "real input"
    ref = np.asarray(model(x, training=False))

    tmp = Path(tempfile.mkdtemp(prefix=f".export-{fmt}-", dir=out))
    try:
        name, built, got = _BUILDERS[fmt](model, model_path, tmp, x)
        diff = float(np.max(np.abs(np.asarray(got, np.float32).reshape(ref.shape) - ref)))
        if not np.isfinite(diff) or diff > atol:
            raise ExportError(f"{fmt} export disagrees with the Keras model: max |difference| "
                              f"{diff:.3g} > {atol:g} on a {checked_on}")
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(built, target)
        (tmp / "contract.json").write_text(
            json.dumps(contract.to_dict(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp / "contract.json", out / "contract.json")
        _record_source(out, tmp, fmt, model_path, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(fmt, target, diff, checked_on, time.perf_counter() - t0)


def _record_source(out: Path, tmp: Path, fmt: str, model_path: Path, target: Path) -> None:
    """``source.json``: which model file each export came from, and the export's own sha256
    (engines reuse an export only for the same model file and only while the export file
    still has that digest)."""
    try:
        source = json.loads((out / "source.json").read_text())
    except (OSError, ValueError):
        source = {}
    source[fmt] = {"model": model_path.name, "model_sha256": model_sha256(model_path),
                   "file": target.name, "sha256": export_sha256(target)}
    (tmp / "source.json").write_text(json.dumps(source, indent=2, sort_keys=True) + "\n")
    os.replace(tmp / "source.json", out / "source.json")


# Each builder writes its export into ``tmp`` and runs it on ``x``:
# (name in the output folder, path built, outputs).

def _build_keras(model, model_path: Path, tmp: Path, x: np.ndarray):
    from imaging_tl.models import load_transfer_model

    shutil.copyfile(model_path, tmp / "model.keras")
    got = np.asarray(load_transfer_model(tmp / "model.keras", compile=False)(x, training=False))
    return "model.keras", tmp / "model.keras", got


def _build_savedmodel(model, model_path: Path, tmp: Path, x: np.ndarray):
    built = tmp / "savedmodel"
    model.export(str(built), format="tf_saved_model", verbose=False)
    return "savedmodel", built, _run_savedmodel(built, x)


def _build_onnx(model, model_path: Path, tmp: Path, x: np.ndarray):
    import tensorflow as tf
    import tf2onnx

    built = tmp / "model.onnx"
    h, w = x.shape[1:3]
    spec = (tf.TensorSpec((None, h, w, 3), tf.float32, name="image"),)
    fn = tf.function(lambda a: model(a, training=False))
    try:
        tf2onnx.convert.from_function(fn, input_signature=spec, opset=17,
                                      output_path=str(built))
    except Exception as exc:  # noqa: BLE001 - report the converter's own words
        raise ExportError(f"tf2onnx could not convert {model_path}: "
                          f"{type(exc).__name__}: {exc}") from exc
    return "model.onnx", built, _run_onnx(built, x)


def _build_tflite(model, model_path: Path, tmp: Path, x: np.ndarray):
    import tensorflow as tf

    built = tmp / "model.tflite"
    saved = tmp / "savedmodel"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    try:
        data = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"TFLite could not convert {model_path}: "
                          f"{type(exc).__name__}: {exc}") from exc
    built.write_bytes(data)
    return "model.tflite", built, _run_tflite(built, x)


_BUILDERS = {"keras": _build_keras, "savedmodel": _build_savedmodel, "onnx": _build_onnx,
             "tflite": _build_tflite}
