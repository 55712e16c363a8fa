"""``tf.data`` input from the array cache: (image, label[, sample weight]) batches.

The only module of :mod:`imaging_tl.data` that imports TensorFlow. The shuffled order holds
sample *indices* only and is batched first; one Python call per batch then reads the batch's
cached arrays straight into one buffer (one ``pread`` per sample at its recorded offset: no
``.npy`` parsing, no per-element tf.data overhead, the GIL released while reading), so memory
is bounded by ``batch_size x (prefetch + parallel reads)`` images, whatever the dataset size.
Grey images stored once stay one channel until the last op repeats them to RGB. Augmentation
(albumentations, float32 [0, 1]) runs after the cache, on the training split only, per image,
with one seed per element drawn from a seeded stream, so the same seed gives the same batches.

Measured (``benchmarks/input_pipeline.py``, 224 x 224, see BENCHMARKS.md): the per-element
graph read this replaces spent ~2x the CPU per image. float16 storage was measured and
dropped: converting a 224 x 224 image back to float32 (numpy ~200 us, ``tf.cast`` ~75 us)
costs more than reading it as float32 from the page cache (~45 us).

Examples
--------
>>> from imaging_tl.data.tfdata import make_dataset  # doctest: +SKIP
>>> train = make_dataset(prepared, split="train", batch_size=32, augment="light", seed=0)
... # doctest: +SKIP
"""

from __future__ import annotations

import copy
import inspect
import math
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from imaging_tl.data.cache import load_entry, open_entry
from imaging_tl.data.labels import encode_labels, label_columns, sample_weights
from imaging_tl.data.prepare import Prepared
from imaging_tl.data.stacking import STACK_COLUMN

__all__ = ["check_input_range", "make_dataset", "resolve_augment", "sample_weights"]


def resolve_augment(augment: Any) -> Callable[[np.ndarray, int], np.ndarray] | None:
    """Turn an augmentation spec into ``fn(image, seed) -> image`` (float32 in, float32 out).

    Accepts ``None``; a preset name or config of :class:`imaging_tl.augment.Augmenter`, or
    an Augmenter (reseeded per image); an albumentations transform (seeded with
    ``set_random_seed`` per image); or a callable taking ``(image, seed)`` or ``(image)``.

    Examples
    --------
    >>> import albumentations as A
    >>> fn = resolve_augment(A.HorizontalFlip(p=1.0))
    >>> fn(np.arange(6, dtype=np.float32).reshape(1, 2, 3), 0)[0, 0].tolist()
    [3.0, 4.0, 5.0]
    """
    if augment is None:
        return None
    if isinstance(augment, (str, dict)):
        from imaging_tl.augment import Augmenter

        augment = Augmenter.from_config(augment)
    if hasattr(augment, "reseed"):  # imaging_tl.augment.Augmenter
        augmenter = augment

        def run_augmenter(image: np.ndarray, seed: int) -> np.ndarray:
            augmenter.reseed(int(seed))
            return augmenter(image)

        return run_augmenter
    if hasattr(augment, "set_random_seed"):
        transform = augment

        def run_albumentations(image: np.ndarray, seed: int) -> np.ndarray:
            transform.set_random_seed(int(seed))
            return transform(image=image)["image"]

        return run_albumentations
    if not callable(augment):
        raise TypeError(f"augment: expected a preset name, an albumentations transform or a "
                        f"callable, got {type(augment).__name__}")
    try:
        n_params = len(inspect.signature(augment).parameters)
    except (TypeError, ValueError):
        n_params = 2
    if n_params >= 2:
        return augment
    return lambda image, seed: augment(image)


def check_input_range(table: pd.DataFrame, n: int = 4) -> None:
    """Check a few cached arrays (``n``, spread over the rows) against the model's input
    contract, float32 in [0, 1].

    Raises
    ------
    ValueError
        Naming the input file whose cached values fall outside [0, 1].

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "e.npy")
    >>> np.save(f, np.full((2, 2), 3.0, np.float32))
    >>> check_input_range(pd.DataFrame({"path": ["scan.dcm"], "cache_file": [f]}))
    Traceback (most recent call last):
    ...
    ValueError: scan.dcm: cached values span [3, 3], but the model's input contract is float32 in [0, 1] (the model normalises for its backbone itself): end the pipeline with Window/Resize/ToRGB, not Normalize
    """  # noqa: E501
    for i in np.linspace(0, len(table) - 1, min(n, len(table))).astype(int):
        a = load_entry(table["cache_file"].iloc[i])  # range: tiling moot
        if a.min() < -1e-3 or a.max() > 1 + 1e-3:
            raise ValueError(
                f"{table['path'].iloc[i]}: cached values span [{a.min():.3g}, {a.max():.3g}], "
                "but the model's input contract is float32 in [0, 1] (the model normalises "
                "for its backbone itself): end the pipeline with Window/Resize/ToRGB, not "
                "Normalize"
            )


def _grey_to_channels(images: tf.Tensor, channels: int) -> tf.Tensor:
    """``(B, H, W, 1) -> (B, H, W, channels)``, each channel an exact copy.

    An outer product with a row of ones: measured 2x faster than ``tf.broadcast_to`` or
    ``tf.tile`` on CPU (and exact: one product by 1.0, nothing added).
    """
    flat = tf.matmul(tf.reshape(images, [-1, 1]), tf.ones([1, channels], images.dtype))
    return tf.reshape(flat, tf.concat([tf.shape(images)[:-1], [channels]], 0))


class _BatchReader:
    """``reader(indices) -> (B, *stored_shape)`` float32: reads cached arrays into one buffer.

    Each row's data is read with one ``pread`` at its known offset (the ``.npy`` header is
    skipped, nothing is parsed), so memory stays at one batch whatever the dataset size (no
    memory map: mapped pages would count in the process's RSS). Rows whose grey image is
    stored once are kept one-channel when all rows are (the caller broadcasts at the end),
    and broadcast here otherwise.
    """

    def __init__(self, table: pd.DataFrame, shape: tuple[int, ...]) -> None:
        # 2.5-D samples: the neighbouring slices' entries, read channel group by group
        self.stack = table[STACK_COLUMN].tolist() if STACK_COLUMN in table else None
        # object: the table's own strings (a fixed-width copy would cost 4 bytes a character)
        self.files = table["cache_file"].to_numpy(object)
        self.offsets = table["offset"].to_numpy(np.int64)
        tiled = table["tiled"].to_numpy(np.int64) if "tiled" in table else np.zeros(len(table))
        self.tiled = tiled > 0
        self.shape = tuple(shape)
        self.stored_shape = (*shape[:-1], 1) if len(shape) == 3 and self.tiled.all() \
            and self.stack is None else shape
        self.item = int(np.prod(self.stored_shape)) * 4

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *self.stored_shape), np.float32)
        for j, i in enumerate(idx.tolist()):
            if self.stack is not None:
                self._read_stacked(self.stack[i], out[j])
            elif self.stored_shape == self.shape and self.tiled[i]:
                grey = np.empty((*self.shape[:-1], 1), np.float32)
                self._read(i, grey)
                out[j] = grey
            else:
                self._read(i, out[j])
        return out

    def _read(self, i: int, dest: np.ndarray) -> None:
        self._pread(self.files[i], int(self.offsets[i]), dest)

    def _read_stacked(self, entries: list[tuple[Any, ...]], dest: np.ndarray) -> None:
        """One 2.5-D sample: each neighbour's slice into its channels of ``dest``."""
        per = dest.shape[-1] // len(entries)
        for c, (file, offset, tiled, _) in enumerate(entries):
            part = np.empty((*dest.shape[:-1], 1 if tiled else per), np.float32)
            self._pread(file, int(offset), part)
            dest[..., c * per:(c + 1) * per] = part

    @staticmethod
    def _pread(file: str, offset: int, dest: np.ndarray) -> None:
        with open_entry(file) as f:  # a FIFO in its place: an error, not a hang
            got = os.preadv(  # numpy's stubs declare the buffer protocol for Python >= 3.12 only
                f.fileno(), [dest.reshape(-1).view(np.uint8)], offset)  # type: ignore[list-item]
        if got != dest.nbytes:
            raise OSError(f"{file}: cache entry truncated ({got} of {dest.nbytes} "
                          "bytes); run prepare() again to rebuild it")


def make_dataset(
    prepared: Prepared, *, split: str | int | Sequence[str | int] | None = "train",
    training: bool | None = None, batch_size: int = 32, shuffle: bool | None = None,
    seed: int = 0, augment: Any = None, balanced: bool = False,
    class_weight: str | dict[Any, float] | None = None, weight_column: str | None = None,
    classes: Sequence[str] | None = None, labels: bool = True, repeat: bool = False,
    prefetch: int = 2, drop_remainder: bool = False, parallel_reads: int | None = None,
    check_range: bool = True,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(image, label[, weight])`` batches from prepared samples.

    Parameters
    ----------
    prepared : Prepared
        From :func:`imaging_tl.data.prepare.prepare`.
    split : str, int, sequence of them, or None
        Rows whose ``split`` column (or ``fold`` column, for k-fold tables) is this (or one
        of these); ``None`` takes all rows.
    training : bool, optional
        Whether these rows are training data (shuffled, may be augmented). Default: only
        ``split="train"``; pass ``True`` for the training folds of a k-fold table.
    batch_size : int
        Batch size.
    shuffle : bool, optional
        Reshuffle each epoch (default: when ``training``). Seeded.
    seed : int
        Drives shuffling, balanced sampling and augmentation: same seed, same batches.
    augment : str, dict, Augmenter, albumentations transform or callable, optional
        Applied to each image after the cache. Only allowed when ``training``: passing it
        for another split raises, as augmented validation data would bias evaluation.
    balanced : bool
        Sample classes equally (with replacement) each epoch; an epoch keeps its length.
        Single-label tasks only.
    class_weight : "balanced", dict or None
        Yield per-sample weights from class weights (as a third element).
    weight_column : str, optional
        Yield this table column as per-sample weights.
    classes : sequence of str, optional
        Class order for the labels (default: sorted); see
        :func:`imaging_tl.data.table.encode_labels`.
    labels : bool
        ``False`` yields images only (prediction).
    repeat : bool
        Repeat forever (use with ``steps_per_epoch``).
    prefetch : int
        Batches prepared ahead.
    drop_remainder : bool
        Drop the last incomplete batch.
    parallel_reads : int, optional
        Batches read at once (default: AUTOTUNE).
    check_range : bool
        Check a few cached arrays against the input contract (float32 in [0, 1]).

    Returns
    -------
    tf.data.Dataset
        float32 images ``(B, H, W, C)``; labels float32 ``(B,)`` (binary), int32 ``(B,)``
        (multi-class) or float32 ``(B, L)`` (multi-label); weights float32 ``(B,)``.

    Examples
    --------
    >>> ds = make_dataset(prepared, split="train", batch_size=8, seed=1)  # doctest: +SKIP
    >>> images, y = next(iter(ds))  # doctest: +SKIP
    """
    table = _select_rows(prepared.table, split)
    training = split == "train" if training is None else training
    if augment is not None and not training:
        raise ValueError(f"augment: only the training split is augmented, not split={split!r} "
                         "(for k-fold training folds pass training=True)")
    shape = _shape(prepared, table, check_range)
    y, task, extra = _labels(prepared, table, labels, classes, weight_column, class_weight,
                             balanced=balanced)
    ds = _order(y, task, len(table), balanced=balanced, seed=seed, repeat=repeat,
                shuffle=training if shuffle is None else shuffle)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).map(
        _batch_read(_BatchReader(table, shape), shape, extra),
        num_parallel_calls=parallel_reads or tf.data.AUTOTUNE, deterministic=True)
    if resolve_augment(augment) is not None:
        ds = _augmented(ds, augment, shape, seed).batch(batch_size, drop_remainder=drop_remainder)
    return _finish(ds, len(table), batch_size, drop_remainder, repeat=repeat, prefetch=prefetch)


def _finish(ds: tf.data.Dataset, n: int, batch_size: int, drop_remainder: bool, *,
            repeat: bool, prefetch: int) -> tf.data.Dataset:
    """Unlabelled elements as bare images, the number of batches declared, prefetching.

    unbatch/zip (augmentation) and balanced sampling hide the length from tf.data; Keras
    then warns "ran out of data" at the end of every first epoch, so it is declared.
    """
    ds = ds.map(_PLAIN(lambda *e: e if len(e) > 1 else e[0]))
    if not repeat:
        batches = n // batch_size if drop_remainder else math.ceil(n / batch_size)
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    return ds.prefetch(prefetch)


def _shape(prepared: Prepared, table: pd.DataFrame, check_range: bool) -> tuple[int, ...]:
    """The common array shape of the rows (checked against the input contract)."""
    shape = Prepared(table, prepared.quarantined, prepared.namespace, prepared.cache).shape
    if check_range:
        check_input_range(table)
    return shape


def _labels(
    prepared: Prepared, table: pd.DataFrame, labels: bool, classes: Sequence[str] | None,
    weight_column: str | None, class_weight: str | dict[Any, float] | None, *, balanced: bool,
) -> tuple[np.ndarray | None, str, list[tf.Tensor]]:
    """``(y, task, tensors)`` of the rows: no labels when unlabelled or not wanted."""
    if labels and label_columns(table):
        if classes is None and label_columns(table) == ["label"]:
            # Classes of the whole table: a split may lack one (and must not turn a binary
            # task into a one-class one).
            classes = sorted(prepared.table["label"].astype(str).unique())
        return _targets(table, classes, weight_column, class_weight)
    if balanced or class_weight is not None:
        raise ValueError("balanced / class_weight need a labelled table")
    return None, "unlabelled", []


def _order(
    y: np.ndarray | None, task: str, n: int, *, balanced: bool, shuffle: bool, seed: int,
    repeat: bool,
) -> tf.data.Dataset:
    """The sample indices of an epoch: in order, shuffled or class-balanced."""
    if balanced:
        if y is None or task == "multilabel":
            raise ValueError("balanced=True: class-balanced sampling needs single-label data")
        order = _balanced_order(y, n, seed)
    else:
        order = tf.data.Dataset.range(n)
        if shuffle:
            order = order.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return order.repeat() if repeat else order


# The map functions have no Python control flow on tensors: skipping AutoGraph's source
# conversion saves most of make_dataset's set-up time (measured 0.6 s of 0.8 s).
_PLAIN = tf.autograph.experimental.do_not_convert


def _select_rows(table: pd.DataFrame, split: str | int | Sequence[str | int] | None
                 ) -> pd.DataFrame:
    """The rows of the split(s) (``split`` column, or ``fold`` for k-fold tables)."""
    if split is not None:
        col = "split" if "split" in table.columns else "fold"
        if col not in table.columns:
            raise ValueError(f"split={split!r}: the prepared table has no split column")
        wanted = [split] if isinstance(split, (str, int, np.integer)) else list(split)
        selected = table[table[col].isin(wanted)]
        if len(selected) == 0:
            raise ValueError(f"split={split!r}: no samples (have: "
                             f"{sorted(map(str, table[col].unique()))})")
        table = selected
    return table.reset_index(drop=True)


def _targets(
    table: pd.DataFrame, classes: Sequence[str] | None, weight_column: str | None,
    class_weight: str | dict[Any, float] | None,
) -> tuple[np.ndarray, str, list[tf.Tensor]]:
    """``(y, task, tensors)``: the encoded labels and the tensors each batch gathers from
    (the labels, then the sample weights when there are any)."""
    y, _, task = encode_labels(table, classes)
    extra = [tf.constant(y)]
    weights = None
    if weight_column is not None:
        weights = table[weight_column].to_numpy(np.float32)
    elif class_weight is not None:
        weights = sample_weights(y, task, class_weight)
    if weights is not None:
        extra.append(tf.constant(weights))
    return y, task, extra


def _balanced_order(y: np.ndarray, n: int, seed: int) -> tf.data.Dataset:
    """``n`` indices per epoch, drawn from each class equally (with replacement)."""
    codes = y.astype(np.int64)
    per_class = [
        tf.data.Dataset.from_tensor_slices(np.flatnonzero(codes == c).astype(np.int64))
        .shuffle(int((codes == c).sum()), seed=seed + 1 + c, reshuffle_each_iteration=True)
        .repeat()
        for c in np.unique(codes)
    ]
    return tf.data.Dataset.sample_from_datasets(
        per_class, weights=[1.0 / len(per_class)] * len(per_class), seed=seed,
        rerandomize_each_iteration=True,
    ).take(n)


def _batch_read(
    reader: _BatchReader, shape: tuple[int, ...], extra: list[tf.Tensor]
) -> Callable[[tf.Tensor], tuple[tf.Tensor, ...]]:
    """The map from a batch of indices to ``(images, *gathered extras)``.

    One Python call per *batch* reads the batch's arrays straight into one buffer (a
    per-element map costs more in tf.data overhead than the read itself); grey stored once
    stays one channel until the last op, which broadcasts it to RGB.
    """
    stored = reader.stored_shape

    @_PLAIN
    def read(idx: tf.Tensor) -> tuple[tf.Tensor, ...]:
        raw = tf.numpy_function(reader, [idx], tf.float32, stateful=False)
        images = tf.ensure_shape(raw, [None, *stored])
        if stored != shape:
            images = _grey_to_channels(images, shape[-1])
        return (images, *(tf.gather(t, idx) for t in extra))

    return read


def _augmented(ds: tf.data.Dataset, augment: Any, shape: tuple[int, ...], seed: int
               ) -> tf.data.Dataset:
    """The batches unbatched and augmented image by image (the caller batches again).

    One seed per element from a seeded stream, and one copy of the transform per thread
    (a transform's random state is not thread-safe): the result does not depend on which
    thread augments which image, so the parallel map stays deterministic.
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    local = threading.local()

    def apply(image: np.ndarray, s: np.int64) -> np.ndarray:
        fn = getattr(local, "fn", None)
        if fn is None:
            fn = local.fn = resolve_augment(copy.deepcopy(augment))
        assert fn is not None  # the caller checked that augment resolves to a function
        return np.ascontiguousarray(fn(image, int(s) % (2**31)), np.float32)

    @_PLAIN
    def aug(elem: tuple[tf.Tensor, ...], s: tf.Tensor) -> tuple[tf.Tensor, ...]:
        out = tf.numpy_function(apply, [elem[0], s], tf.float32, stateful=False)
        return (tf.ensure_shape(out, shape), *elem[1:])

    return tf.data.Dataset.zip(ds.unbatch(), seeds).map(
        aug, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
