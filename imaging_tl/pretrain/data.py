"""The images of a pretraining run: an unlabelled table, prepared into the array cache
``run`` uses, streamed as two random views per image; and the labelled monitor set of the
linear probe.

The arrays are read batch by batch from the cache (:func:`imaging_tl.data.make_dataset`),
never held in memory all at once. Nor is the bookkeeping of the whole archive: once the
table is built, prepared, indexed (``data_index.csv``) and hashed, the run keeps only what
streaming needs (:meth:`imaging_tl.data.prepare.Prepared.streaming`, ~200 bytes an image),
drops the cache's look-up index and hands the freed heap back (:func:`release_memory`), so
the peak memory of training does not grow with the number of images (BENCHMARKS.md).

Examples
--------
>>> epoch_seed(0, 3) == epoch_seed(0, 3) != epoch_seed(0, 4)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from imaging_tl.data.errors import DatasetError
from imaging_tl.data.prepare import BadFileError, Prepared, prepare, quarantine_verdict
from imaging_tl.data.splits import split_table
from imaging_tl.data.table import from_census, from_csv, from_image_folder
from imaging_tl.pipeline.inputs import InputError
from imaging_tl.pretrain.views import ViewMaker, view_seeds

__all__ = ["ProbeData", "epoch_seed", "load_arrays", "prepare_images", "probe_data",
           "release_memory", "unlabelled_table", "view_dataset"]


def unlabelled_table(cfg: Any) -> pd.DataFrame:
    """The table of a pretraining configuration's images (``data.folder`` or ``data.csv``).

    Raises
    ------
    InputError
        Missing files, an empty folder (every problem listed).

    Examples
    --------
    >>> from imaging_tl.config import load_pretrain_config
    >>> cfg = load_pretrain_config({"data": {"folder": "sample_dicoms"}})
    >>> len(unlabelled_table(cfg))  # 192 radiographs and the 96 slices of ct_series/
    288
    """
    d = cfg.data
    try:
        if d.folder is not None:
            return from_image_folder(d.folder, frames=d.frames)
        with open(d.csv, encoding="utf-8-sig") as f:
            header = f.readline().strip().split(",")
        if "status" in header and d.path_column == "path" and d.group_column is None:
            return from_census(d.csv, frames=d.frames)  # an imaging-tl census
        return from_csv(d.csv, path_column=d.path_column, label_column=None,
                        group_column=d.group_column, frames=d.frames)
    except DatasetError as exc:
        raise InputError(str(exc)) from None


def prepare_images(table: pd.DataFrame, pipe: Any, cfg: Any, *, min_images: int,
                   log: Any = print) -> Prepared:
    """Every image preprocessed into the array cache; bad files quarantined and counted.

    Raises
    ------
    InputError
        ``data.strict`` and a bad file; most files bad for one reason; arrays of several
        shapes; fewer readable images than ``min_images`` (one global batch).

    Examples
    --------
    >>> prepare_images(table, pipe, cfg, min_images=32)  # doctest: +SKIP
    """
    try:
        prepared = prepare(table, pipe, cache=cfg.cache_dir, workers=cfg.workers,
                           strict=cfg.data.strict, decode=cfg.data.decode)
    except BadFileError as exc:
        raise InputError(f"data.strict is on and a file is bad: {exc}") from None
    log(prepared.summary())
    verdict = quarantine_verdict(prepared)
    if verdict is not None:
        raise InputError(verdict)
    n, bad = len(prepared.table), len(prepared.quarantined)
    where = cfg.data.folder or cfg.data.csv
    if n < min_images:
        raise InputError(
            f"{where}: {n} readable image(s) ({bad} unreadable, quarantined); pretraining "
            f"needs at least one batch of {min_images} (pretrain.batch_size x replicas): "
            "add images or lower pretrain.batch_size")
    try:
        prepared.shape  # noqa: B018 - raises when the prepared arrays differ in shape
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return prepared


def release_memory() -> bool:
    """Collect garbage and hand the C heap's free pages back to the system.

    Python returns the memory of freed objects to the C allocator, which keeps it (and
    keeps counting it in the process's resident size) unless asked to trim; glibc's
    ``malloc_trim`` does that. Called once the per-image bookkeeping of a big archive is
    freed, so the memory the table and the cache look-up used does not stay resident
    under the training that follows. Returns whether memory was handed back (False where
    the C library has no ``malloc_trim``: macOS, musl).

    Examples
    --------
    >>> release_memory() in (True, False)
    True
    """
    import ctypes
    import gc

    gc.collect()
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(trim(0))


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of one epoch (a resumed epoch shuffles as the original would).

    Examples
    --------
    >>> epoch_seed(1, 0) != epoch_seed(0, 1)
    True
    """
    return int(np.random.SeedSequence([int(seed), int(epoch), 0xE90C]).generate_state(1)[0])


def view_dataset(prepared: Prepared, maker: ViewMaker, *, batch_size: int, seed: int,
                 epoch: int, steps: int | None = None, check_range: bool = True) -> Any:
    """One epoch of ``(view_1, view_2)`` batches, shuffled and drawn under the seed.

    Only full batches (the last incomplete one is dropped, as SimSiam's BatchNorm layers
    need a batch); images are read from the cache batch by batch. ``steps``: at most this
    many batches (the first of the epoch's order). ``check_range``: check a few arrays
    against the input contract (False for a :meth:`~Prepared.streaming` table, which has no
    paths to name: check the full table once instead).

    Examples
    --------
    >>> ds = view_dataset(prepared, ViewMaker(None, 64), batch_size=8, seed=0,
    ...                   epoch=0)  # doctest: +SKIP
    """
    import tensorflow as tf

    from imaging_tl.data.tfdata import make_dataset

    shape = prepared.shape
    ds = make_dataset(prepared, split=None, training=True, labels=False, shuffle=True,
                      batch_size=batch_size, seed=epoch_seed(seed, epoch),
                      drop_remainder=True, check_range=check_range)

    def make(images: np.ndarray, i: np.int64) -> tuple[np.ndarray, np.ndarray]:
        return maker(images, view_seeds(seed, epoch, int(i), len(images)))

    def views(i: Any, images: Any) -> tuple[Any, Any]:
        a, b = tf.numpy_function(make, [images, i], [tf.float32, tf.float32], stateful=False)
        full = [batch_size, maker.size, maker.size, shape[-1]]
        return tf.ensure_shape(a, full), tf.ensure_shape(b, full)

    if steps is not None:
        ds = ds.take(steps)
    return ds.enumerate().map(views, num_parallel_calls=tf.data.AUTOTUNE,
                              deterministic=True).prefetch(2)


def load_arrays(prepared: Prepared, rows: np.ndarray | list[int]) -> np.ndarray:
    """The cached arrays of some rows, stacked (a small sample: probe and collapse sets).

    Examples
    --------
    >>> load_arrays(prepared, [0, 1]).shape  # doctest: +SKIP
    (2, 64, 64, 3)
    """
    return np.stack([prepared.load(int(i)) for i in rows]).astype(np.float32, copy=False)


@dataclass
class ProbeData:
    """The linear probe's labelled images: arrays and 0/1 labels of its two parts."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    positive: str
    quarantined: int


def probe_data(monitor: Any, pipe: Any, cfg: Any, seed: int, log: Any = print) -> ProbeData:
    """The ``monitor`` CSV prepared like the pretraining images and split by patient.

    Raises
    ------
    InputError
        A CSV that is not binary, a missing ``monitor.positive`` label, a part with one
        class only.

    Examples
    --------
    >>> probe_data(cfg.monitor, pipe, cfg, 0)  # doctest: +SKIP
    """
    try:
        table = from_csv(monitor.csv, path_column=monitor.path_column,
                         label_column=monitor.label_column, group_column=monitor.group_column,
                         frames=cfg.data.frames)
    except DatasetError as exc:
        raise InputError(f"monitor.csv: {exc}") from None
    classes = sorted(table["label"].astype(str).unique())
    positive = monitor.positive or (classes[-1] if len(classes) == 2 else None)
    if len(classes) != 2 or positive not in classes:
        raise InputError(f"monitor.csv: {monitor.csv}: the linear probe needs two classes in "
                         f"{monitor.label_column!r} and monitor.positive among them; found "
                         f"{classes}")
    try:
        table = split_table(table, val=0.0, test=monitor.test, seed=seed, audit=False)
    except (DatasetError, ValueError) as exc:
        raise InputError(f"monitor.csv: cannot split by patient: {exc}") from None
    prepared = prepare(table, pipe, cache=cfg.cache_dir, workers=cfg.workers,
                       decode=cfg.data.decode, audit=False)
    tab = prepared.table
    log(f"monitor: {len(tab)} labelled image(s) for the linear probe "
        f"({len(prepared.quarantined)} quarantined), positive {positive!r}")
    part = {k: np.flatnonzero((tab["split"] == k).to_numpy()) for k in ("train", "test")}
    y = (tab["label"].astype(str) == positive).to_numpy().astype(int)
    for k, idx in part.items():
        if len(np.unique(y[idx])) < 2:
            raise InputError(f"monitor.csv: the probe's {k} part holds one class only; give "
                             "more labelled patients of each class")
    return ProbeData(load_arrays(prepared, part["train"]), y[part["train"]],
                     load_arrays(prepared, part["test"]), y[part["test"]], positive,
                     len(prepared.quarantined))
