"""Batches and cached features: the data side of the training loop.

Numpy inputs are batched by a seeded, per-epoch permutation (one seed drives the order);
the cached-feature path uses the same permutations, so a frozen phase trained on cached
features sees the same batches as one that runs the backbone in every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from imaging_tl.models import feature_extractor

__all__ = ["array_batches", "epoch_order", "extract_features", "feature_batches", "feature_fn",
           "layer_views"]


def feature_fn(model: keras.Model, layer: str | None = None):
    """One compiled forward pass image -> pooled features (or ``layer``'s output), traced
    once for any batch size."""
    fx = feature_extractor(model) if layer is None else \
        keras.Model(model.input, model.get_layer(layer).output, name=f"{model.name}_{layer}")
    spec = tf.TensorSpec((None, *fx.input_shape[1:]), tf.float32)
    return tf.function(lambda a: fx(a, training=False), input_signature=[spec]), fx


def extract_features(model: keras.Model, x: np.ndarray | tf.data.Dataset,
                     batch_size: int = 32, *, fn: Any = None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """Pooled backbone features of a transfer model, computed with a compiled tf.function.

    Parameters
    ----------
    model : keras.Model
        A transfer model (its ``head_pool`` output is returned).
    x : numpy array or tf.data.Dataset
        Images (float32 [0, 1]); a dataset yields ``(x, y[, w])`` batches and its labels
        come back too.
    batch_size : int

    Returns
    -------
    features : numpy.ndarray
        ``(N, feature_dim)`` float32.
    labels : numpy.ndarray or None
        Labels gathered from a dataset (None for arrays).

    Notes
    -----
    A ``tf.function`` traced once with a fixed input signature ran the Lite0 forward pass
    about 2x faster than ``Model.predict`` here (no per-call data-adapter overhead); XLA
    was slower on CPU and ONNX Runtime was not faster under load (see
    benchmarks/head_training.py).

    Examples
    --------
    >>> from imaging_tl.models import build_transfer_model
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32)
    >>> extract_features(m, np.zeros((3, 32, 32, 3), "float32"))[0].shape
    (3, 1280)
    """
    fn, fx = fn if fn is not None else feature_fn(model)
    if isinstance(x, tf.data.Dataset):
        feats, labels = [], []
        for batch in x:
            feats.append(fn(tf.cast(batch[0], tf.float32)).numpy())
            labels.append(np.asarray(batch[1]))
        return np.concatenate(feats), np.concatenate(labels)
    x = np.asarray(x)
    if len(x) == 0:
        return np.zeros((0, *fx.output_shape[1:]), np.float32), None
    out = [fn(tf.convert_to_tensor(x[i:i + batch_size], tf.float32)).numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float32, copy=False), None


def layer_views(model: keras.Model, layer: str, x: np.ndarray, views: int,
                augment: Callable[[np.ndarray, int], np.ndarray] | None = None, *,
                seed: int = 0, batch_size: int = 32) -> np.ndarray:
    """``layer``'s output for ``views`` augmented views of every image: ``(views, N, ...)``.

    The input of a phase that trains only the layers after ``layer`` (its ``freeze``):
    the frozen part runs once per view, not once per epoch of every fold. View ``v`` of
    image ``i`` is ``augment(x[i], s)`` with ``s`` drawn from a stream seeded by
    ``(seed, v)``; without ``augment`` every view is the image itself.

    Examples
    --------
    >>> from imaging_tl.models import build_transfer_model
    >>> m = build_transfer_model("efficientnet_lite0", "binary", 2, weights=None,
    ...                          input_size=32, freeze="block6d_add")
    >>> layer_views(m, "block6d_add", np.zeros((3, 32, 32, 3), "float32"), 2).shape
    (2, 3, 1, 1, 192)
    """
    fn = feature_fn(model, layer)
    out = None
    for v in range(views):
        seeds = np.random.default_rng([seed, v]).integers(0, 2**31 - 1, len(x))
        for i in range(0, len(x), 256):  # augmented copies of a chunk at a time
            xb = x[i:i + 256]
            if augment is not None:
                xb = np.stack([augment(im, int(s)) for im, s in zip(xb, seeds[i:i + 256],
                                                                    strict=True)])
            f = extract_features(model, xb.astype(np.float32, copy=False), batch_size,
                                 fn=fn)[0]
            if out is None:
                out = np.empty((views, len(x), *f.shape[1:]), np.float32)
            out[v, i:i + len(f)] = f
    return out


def epoch_order(n: int, seed: int, phase_index: int, epoch: int) -> np.ndarray:
    """The batch order of one epoch: a permutation seeded by (seed, phase, epoch)."""
    return np.random.default_rng([seed, phase_index, epoch]).permutation(n)


def array_batches(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, batch_size: int,
                   seed: int, phase_index: int, first: int, epochs: int,
                   augment: Callable[[np.ndarray], np.ndarray] | None = None):
    """Image batches for epochs ``first .. epochs-1`` in their seeded orders (a generator:
    unlike a PyDataset, nothing is prefetched across an epoch's reshuffle)."""
    for e in range(first, epochs):
        order = epoch_order(len(y), seed, phase_index, e)
        for i in range(0, len(y), batch_size):
            idx = order[i:i + batch_size]
            xb = x[idx]
            if augment is not None:
                xb = np.stack([augment(im) for im in xb]).astype(np.float32, copy=False)
            yield (xb, y[idx]) if w is None else (xb, y[idx], w[idx])


def feature_batches(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, batch_size: int,
                     seed: int, phase_index: int, first: int, epochs: int,
                     views: bool) -> tf.data.Dataset:
    """The cached-feature twin of :func:`array_batches` as one tf.data pipeline.

    Same per-epoch permutations (so the same batches as end-to-end training), but no
    Python in the loop: for small head steps Keras' PyDataset overhead dominated.
    """
    n = len(y)
    feats = tf.constant(x)
    cols = [tf.constant(y)] + ([tf.constant(w)] if w is not None else [])
    parts = []
    for e in range(first, epochs):
        order = epoch_order(n, seed, phase_index, e)
        view = np.full(n, e % len(x) if views else 0, np.int64)
        parts.append(tf.data.Dataset.from_tensor_slices((view, order)).batch(batch_size))
    ds = parts[0]
    for part in parts[1:]:
        ds = ds.concatenate(part)

    def gather(view, idx):
        xb = tf.gather_nd(feats, tf.stack([view, idx], 1)) if views else tf.gather(feats, idx)
        return (xb, *(tf.gather(c, idx) for c in cols))

    return ds.map(gather).prefetch(2)

