"""``fast_predict``: the one Keras prediction loop of the library.

``model.predict`` builds a data adapter on every call; for the many small calls of
inference and evaluation that overhead dominates. ``fast_predict`` keeps one
``tf.function`` per model and feeds it fixed-size batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["fast_predict"]

# where the traced function is kept on the model (one per model, built on first use)
PREDICT_FN_ATTRIBUTE = "_imaging_tl_predict_fn"


def fast_predict(model: Any, x: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Predict with a ``tf.function`` traced once per model, in batches of one shape.

    Same numbers as ``model.predict`` (float tolerance), without its per-call data-adapter
    overhead: about 2x the images/s of ``predict`` for Lite0 on our CPUs (see
    benchmarks/inference.py). The last batch is padded with zeros to ``batch_size`` (and
    the padding's outputs dropped), so every call runs the same input shape.

    Parameters
    ----------
    model : keras.Model
        Any single-input Keras model (inference mode: ``training=False``).
    x : array-like
        ``(N, ...)`` inputs, converted to float32.
    batch_size : int
        Images per call of the traced function.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, ...)`` outputs; for ``N == 0``, shape ``(0, *model.output_shape[1:])``
        (``(0, 1)`` when the model does not know its output shape).

    Examples
    --------
    >>> from imaging_tl.models.transfer import build_transfer_model
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> fast_predict(m, np.zeros((5, 32, 32, 3), "float32"), batch_size=4).shape
    (5, 1)
    >>> fast_predict(m, np.zeros((0, 32, 32, 3), "float32")).shape
    (0, 1)
    """
    import tensorflow as tf

    x = np.asarray(x, np.float32)
    if len(x) == 0:
        return np.zeros((0, *_output_shape(model)), np.float32)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected a positive number of images")
    fn = _predict_function(model)
    out = []
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        n = len(batch)
        if n < batch_size:  # pad the last batch: one input shape for every call
            batch = np.concatenate([batch, np.zeros((batch_size - n, *batch.shape[1:]),
                                                    np.float32)])
        out.append(fn(tf.convert_to_tensor(batch)).numpy()[:n])
    return np.concatenate(out).astype(np.float32, copy=False)


def _predict_function(model: Any):
    """The model's cached ``tf.function`` (built and attached on first use)."""
    import tensorflow as tf

    fn = getattr(model, PREDICT_FN_ATTRIBUTE, None)
    if fn is None:
        spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
        fn = tf.function(lambda a: model(a, training=False), input_signature=[spec])
        # object.__setattr__: keep Keras' attribute tracking away from the function
        object.__setattr__(model, PREDICT_FN_ATTRIBUTE, fn)
    return fn


def _output_shape(model: Any) -> tuple[int, ...]:
    """Per-sample output shape, ``(1,)`` when the model cannot say."""
    try:
        shape = tuple(model.output_shape[1:])
    except (AttributeError, TypeError, ValueError):
        return (1,)
    return shape if shape and all(isinstance(d, int) for d in shape) else (1,)
