"""TensorBoard event files of a run, written offline into ``<run>/tensorboard/``.

From the run directory's own files, once the report is written: the scalars of every epoch
(``history.csv``) twice, on one axis across phases (``epoch/<metric>``, step = epoch counted
over all phases) and per phase (``<phase>/<metric>``, step = the phase's epoch), the
learning rate among them; the test metrics with their CI ends (``test/<metric>``,
``test/<metric>_ci_low``, ``..._ci_high``); the ROC, PR and reliability plots and the
Grad-CAM overlays as images (``test/roc_curve``, ``test/pr_curve``, ``gradcam/<name>``);
the configuration as text (``config/yaml``) and as hparams (the HParams dashboard compares
runs by them). No server is needed to write them; open them with
``tensorboard --logdir runs/``.

The events are written with TensorFlow's own low-level summary op and the plugins'
metadata (``scalars``, ``images``, ``text``, ``hparams``), so they need no ``tensorboard``
package (TensorFlow 2.21 no longer installs it); reading them needs only TensorFlow
(``tf.compat.v1.train.summary_iterator``) or TensorBoard's event accumulator.

Examples
--------
>>> write_tensorboard("runs/demo-20261206-101500")  # doctest: +SKIP
PosixPath('runs/demo-20261206-101500/tensorboard')
"""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imaging_tl._atomic import atomic_dir
from imaging_tl.pipeline.compare import epoch_scalars, flatten_config, metric_scalars

__all__ = ["HPARAMS_TAG", "hparams_plugin_content", "write_tensorboard"]

#: the tag TensorBoard's hparams plugin reads a run's hyperparameters from
HPARAMS_TAG = "_hparams_/session_start_info"
#: history.csv columns that are bookkeeping, not curves
#: plots shown as images: file in plots/ -> tag
_PLOTS = {"roc.png": "test/roc_curve", "pr.png": "test/pr_curve",
          "reliability.png": "test/reliability", "confusion_matrix.png": "test/confusion_matrix",
          "subgroups_forest.png": "test/subgroups_forest",
          "gradcam_gallery.png": "gradcam/gallery"}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def hparams_plugin_content(hparams: Mapping[str, Any], group: str = "",
                           start_time: float | None = None) -> bytes:
    """The serialised ``HParamsPluginData`` (TensorBoard's hparams plugin) whose
    ``session_start_info`` holds ``hparams``: numbers, booleans and strings as they are,
    anything else as JSON text. Encoded here (protobuf wire format, values by
    ``google.protobuf.struct_pb2.Value``) so that no ``tensorboard`` package is needed.

    Examples
    --------
    >>> content = hparams_plugin_content({"seed": 0, "model.backbone": "lite0"}, "g", 1.0)
    >>> b"model.backbone" in content and b"lite0" in content
    True
    """
    from google.protobuf import struct_pb2

    entries = b""
    for key, value in hparams.items():
        if isinstance(value, bool):
            v = struct_pb2.Value(bool_value=value)
        elif isinstance(value, (int, float)):
            v = struct_pb2.Value(number_value=float(value))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            v = struct_pb2.Value(string_value=text)
        entries += _field(1, _field(1, str(key).encode()) + _field(2, v.SerializeToString()))
    start = time.time() if start_time is None else start_time
    info = entries + _field(4, group.encode()) + _varint(5 << 3 | 1) + struct.pack("<d", start)
    return _field(3, info)  # HParamsPluginData.session_start_info (version 0: left out)


def _history_scalars(history: Any) -> list[tuple[str, float, int]]:
    rows = []
    for step, r, tag, value in epoch_scalars(history):
        phase = str(r.get("phase_name") or f"phase{r.get('phase', 0)}")
        rows += [(f"epoch/{tag}", value, step), (f"{phase}/{tag}", value, int(r["epoch"]))]
    return rows


def _metric_scalars(metrics: Mapping[str, Any], step: int) -> list[tuple[str, float, int]]:
    return [(f"test/{k}", v, step) for k, v in metric_scalars(metrics).items()]


def _images(run_dir: Path) -> list[tuple[str, Path]]:
    out = [(tag, run_dir / "plots" / name) for name, tag in _PLOTS.items()
           if (run_dir / "plots" / name).is_file()]
    out += [(f"gradcam/{p.stem}", p) for p in sorted((run_dir / "gradcam").glob("*.png"))]
    return out


def _write_events(folder: Path, scalars: list[tuple[str, float, int]],
                  images: list[tuple[str, Path]], config_yaml: str,
                  hparams: Mapping[str, Any], group: str) -> None:
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    def meta(plugin: str, content: bytes = b"") -> Any:
        m = summary_pb2.SummaryMetadata()
        m.plugin_data.plugin_name = plugin
        m.plugin_data.content = content
        return m

    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        tf.summary.write(HPARAMS_TAG, tf.constant(0.0), step=0,
                         metadata=meta("hparams", hparams_plugin_content(hparams, group)))
        tf.summary.write("config/yaml", tf.constant(f"```\n{config_yaml}\n```"), step=0,
                         metadata=meta("text"))
        for tag, value, step in scalars:
            tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                             metadata=meta("scalars"))
        for tag, path in images:
            png = path.read_bytes()
            width, height = struct.unpack(">II", png[16:24])  # the PNG's IHDR chunk
            tf.summary.write(tag, tf.constant([str(width).encode(), str(height).encode(), png]),
                             step=0, metadata=meta("images"))
    writer.close()


def write_tensorboard(run_dir: str | os.PathLike) -> Path:
    """Write (or rewrite) ``<run_dir>/tensorboard/`` from the run directory's files.

    Parameters
    ----------
    run_dir : path
        A run directory with ``history.csv`` (and, when written, ``metrics.json``,
        ``config.yaml``, ``plots/``, ``gradcam/``).

    Returns
    -------
    pathlib.Path
        The ``tensorboard`` folder (one event file).

    Raises
    ------
    FileNotFoundError
        ``history.csv`` is missing.

    Examples
    --------
    >>> write_tensorboard("no/such/run")
    Traceback (most recent call last):
    ...
    FileNotFoundError: no/such/run/history.csv: missing; TensorBoard's curves are written from it
    """
    import pandas as pd
    import yaml

    rd = Path(run_dir)
    if not (rd / "history.csv").is_file():
        raise FileNotFoundError(f"{rd / 'history.csv'}: missing; TensorBoard's curves are "
                                "written from it")
    history = pd.read_csv(rd / "history.csv")
    metrics = json.loads((rd / "metrics.json").read_text()) \
        if (rd / "metrics.json").is_file() else {}
    config_yaml = (rd / "config.yaml").read_text() if (rd / "config.yaml").is_file() else ""
    config = yaml.safe_load(config_yaml) or {}
    scalars = _history_scalars(history) + _metric_scalars(metrics, max(len(history), 1))
    with atomic_dir(rd / "tensorboard") as tmp:
        _write_events(tmp, scalars, _images(rd), config_yaml, flatten_config(config),
                      group=rd.resolve().name)
    return rd / "tensorboard"
