"""Keras 2 HDF5 weight files (``model.save("x.h5")`` / ``save_weights("x.h5")`` of tf.keras).

Layout (Keras' ``legacy_h5_format``): the root, or its ``model_weights`` group for a whole
saved model, carries the attribute ``layer_names``; each layer's group carries
``weight_names`` and holds one dataset per weight at ``<layer>/<weight name>``, e.g.
``model_weights/conv1_conv/conv1_conv/kernel:0``. RadImageNet's ``*_notop.h5`` files are
whole saved tf.keras models of this layout.

Keras loads such files by layer order (topologically), not by name: tf.keras named some
layers differently (DenseNet's ``conv1/conv`` is Keras 3's ``conv1_conv``; Inception's
unnamed layers get session-dependent ``conv2d_N``). :func:`assign_in_order` does the same,
checking the layer count and every shape first and naming the layer on a mismatch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from imaging_tl.models.weights.errors import WeightsFileError

__all__ = ["assign_in_order", "is_keras2_h5", "read_keras2_h5"]

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _text(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _weights_group(f: Any) -> Any:
    if "layer_names" in f.attrs:
        return f
    group = f.get("model_weights")
    if group is not None and "layer_names" in group.attrs:
        return group
    return None


def is_keras2_h5(path: str | Path) -> bool:
    """True for an HDF5 file in the Keras 2 layout (not Keras 3's ``.weights.h5``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.h5"; _ = p.write_bytes(b"not hdf5")
    >>> is_keras2_h5(p)
    False
    """
    import h5py

    with open(path, "rb") as f:
        if f.read(8) != _HDF5_SIGNATURE:
            return False
    try:
        with h5py.File(path, "r") as f:
            return _weights_group(f) is not None
    except OSError:
        return False


def read_keras2_h5(path: str | Path) -> list[tuple[str, list[np.ndarray]]]:
    """(layer name, weight arrays) for each layer with weights, in the file's order.

    Raises
    ------
    WeightsFileError
        Not HDF5, not the Keras 2 layout, or a weight named in ``weight_names`` missing.

    Examples
    --------
    >>> import tempfile, pathlib, h5py
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.h5"
    >>> with h5py.File(p, "w") as f:
    ...     f.attrs["layer_names"] = [b"d"]
    ...     g = f.create_group("d"); g.attrs["weight_names"] = [b"d/kernel:0"]
    ...     _ = g.create_dataset("d/kernel:0", data=np.ones((2, 1), "float32"))
    >>> [(n, [a.shape for a in w]) for n, w in read_keras2_h5(p)]
    [('d', [(2, 1)])]
    """
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsFileError(path, f"not an HDF5 file ({exc!s:.80})") from exc
    with f:
        group = _weights_group(f)
        if group is None:
            raise WeightsFileError(path, "an HDF5 file without Keras 'layer_names': not a "
                                         "Keras 2 weights file")
        out = []
        for name in (_text(n) for n in group.attrs["layer_names"]):
            try:
                layer = group[name]
                names = [_text(w) for w in layer.attrs.get("weight_names", [])]
                arrays = [np.asarray(layer[w]) for w in names]
            except (KeyError, OSError, ValueError) as exc:
                raise WeightsFileError(path, f"layer {name!r}: weights missing or unreadable "
                                             f"({exc!s:.80})") from exc
            if arrays:
                out.append((name, arrays))
    return out


def assign_in_order(model: Any, entries: list[tuple[str, list[np.ndarray]]],
                    path: str | Path) -> None:
    """Set the weights of ``model``'s layers from ``entries`` in order, all shapes checked
    before any layer is touched.

    Raises
    ------
    WeightsFileError
        Another number of layers with weights, or a layer whose arrays differ in number or
        shape (the message names the model's layer and the file's).

    Examples
    --------
    >>> import keras
    >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="d")])
    >>> assign_in_order(m, [("dense", [np.ones((2, 1), "f4"), np.zeros(1, "f4")])], "w.h5")
    >>> m.get_layer("d").get_weights()[0].ravel().tolist()
    [1.0, 1.0]
    """
    layers = [layer for layer in model.layers if layer.weights]
    if len(layers) != len(entries):
        raise WeightsFileError(
            path, f"holds weights for {len(entries)} layers, {model.name} has {len(layers)} "
                  "(another architecture, or a file saved with its classifier)")
    for layer, (name, arrays) in zip(layers, entries, strict=True):
        want = [tuple(w.shape) for w in layer.weights]
        got = [tuple(a.shape) for a in arrays]
        if want != got:
            raise WeightsFileError(path, f"layer {name!r} of the file has shapes {got}, "
                                         f"{model.name}'s layer {layer.name!r} needs {want}")
    for layer, (_, arrays) in zip(layers, entries, strict=True):
        layer.set_weights(arrays)
