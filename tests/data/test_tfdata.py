"""tf.data batches from the cache: contract, determinism, augmentation, balance, weights."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imaging_tl.data import ArrayCache, Prepared, prepare
from imaging_tl.stages import Normalize, Pipeline, Resize, ToRGB, Window

tf = pytest.importorskip("tensorflow")
from imaging_tl.data.tfdata import make_dataset  # noqa: E402


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, make_dicom) -> Prepared:
    d = tmp_path_factory.mktemp("tfdata")
    n = 20
    paths = [str(make_dicom(d / f"s{i}.dcm", 100 + i, patient=f"P{i}")) for i in range(n)]
    table = pd.DataFrame({
        "path": paths, "group": [f"P{i}" for i in range(n)],
        "label": ["abnormal"] * 4 + ["normal"] * 16,  # imbalanced 1:4
        "split": ["train"] * 15 + ["val"] * 5,
    })
    table.attrs["label_columns"] = ["label"]
    pipe = Pipeline([Window(center=40, width=400), Resize(24), ToRGB()])
    return prepare(table, pipe, cache=ArrayCache(d / "cache"), executor="serial")


def collect(ds) -> list[tuple[np.ndarray, ...]]:
    return [tuple(t.numpy() for t in batch) for batch in ds]


def test_batches_follow_the_model_input_contract(prepared: Prepared) -> None:
    batches = collect(make_dataset(prepared, split="val", batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 24, 24, 3), (1, 24, 24, 3)]
    images = np.concatenate([b[0] for b in batches])
    assert images.dtype == np.float32 and images.min() >= 0 and images.max() <= 1
    val = np.flatnonzero(prepared.table["split"] == "val")
    # No shuffling outside training: rows in table order, pixels as cached.
    for i, row in enumerate(val):
        np.testing.assert_array_equal(images[i], prepared.load(row))
    # Grey repeated to RGB is stored once and broadcast back.
    assert prepared.table["tiled"].eq(3).all()
    assert np.load(prepared.table["cache_file"][0]).shape == (24, 24, 1)
    labels = np.concatenate([b[1] for b in batches])
    assert labels.dtype == np.float32 and labels.tolist() == [1.0] * 5  # 'normal' = classes[1]


def test_same_seed_same_batches_other_seed_other_order(prepared: Prepared) -> None:
    def run(seed: int) -> list:
        return collect(make_dataset(prepared, split="train", batch_size=5, seed=seed,
                                    augment="heavy"))

    # The per-image seed stream combines make_dataset's seed with TensorFlow's global seed
    # (a run sets both from its config seed); fix the global one so that the outcome does not
    # depend on which tests ran before.
    tf.random.set_seed(0)
    a, b, c = run(7), run(7), run(8)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x[0], y[0])
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))
    # Augmentation changed the pixels (train only) and kept the contract.
    plain = np.stack([prepared.load(i) for i in range(15)])
    augmented = np.concatenate([x[0] for x in a])
    assert augmented.min() >= 0 and augmented.max() <= 1
    unchanged = [any(np.array_equal(img, p) for p in plain) for img in augmented]
    # On these mostly saturated windowed images "heavy" leaves about one image in five
    # unchanged (1-6 of 15 over global seeds 0-3 and 42); most must change.
    assert sum(unchanged) <= 7


def test_augmentation_only_on_the_training_split(prepared: Prepared) -> None:
    with pytest.raises(ValueError, match="only the training split is augmented"):
        make_dataset(prepared, split="val", augment="light")


def test_length_is_known_with_augmentation_and_balance(prepared: Prepared) -> None:
    # Keras warns "ran out of data" (and re-counts every first epoch) when tf.data cannot
    # tell the number of batches; augmentation's unbatch and balanced sampling hide it.
    for kwargs, batches in (({}, 4), ({"augment": "light"}, 4), ({"balanced": True}, 4),
                            ({"augment": "light", "drop_remainder": True}, 3)):
        ds = make_dataset(prepared, split="train", batch_size=4, seed=0, **kwargs)
        assert int(ds.cardinality()) == batches, kwargs
        assert len(collect(ds)) == batches, kwargs


def test_class_balanced_sampling_and_weights(prepared: Prepared) -> None:
    ds = make_dataset(prepared, split="train", batch_size=15, seed=0, balanced=True, repeat=True)
    labels = np.concatenate([b[1] for b in collect(ds.take(20))])
    assert len(labels) == 300 and abs(labels.mean() - 0.5) < 0.1  # 4 vs 11 in the table
    ds = make_dataset(prepared, split="train", batch_size=15, class_weight="balanced")
    images, y, w = collect(ds)[0]
    assert np.allclose(w[y == 0], 15 / (2 * 4)) and np.allclose(w[y == 1], 15 / (2 * 11))


def test_out_of_contract_cache_is_refused(prepared: Prepared, tmp_path: Path) -> None:
    table = prepared.table.drop(columns=["cache_file", "offset", "shape", "content_hash",
                                         "dhash"])
    pipe = Pipeline([Window(center=40, width=400), Resize(24), ToRGB(), Normalize("imagenet")])
    normalised = prepare(table, pipe, cache=ArrayCache(tmp_path / "c"), executor="serial",
                         audit=False)
    with pytest.raises(ValueError, match="input contract is float32 in \\[0, 1\\]"):
        make_dataset(normalised, split="train")


def test_kfold_training_folds(prepared: Prepared) -> None:
    folds = prepared.table.drop(columns="split").assign(fold=[i % 4 for i in range(20)])
    kp = Prepared(folds, prepared.quarantined, prepared.namespace, prepared.cache)
    train = make_dataset(kp, split=[0, 1, 2], training=True, augment="light", batch_size=32)
    assert collect(train)[0][0].shape == (15, 24, 24, 3)
    val = collect(make_dataset(kp, split=3, batch_size=32))[0]
    assert val[0].shape == (5, 24, 24, 3)
    with pytest.raises(ValueError, match="training=True"):
        make_dataset(kp, split=[0, 1, 2], augment="light")


@pytest.fixture(scope="module")
def brightness_coded(tmp_path_factory, make_dicom) -> Prepared:
    """24 uniform scans whose brightness encodes their row (HU -900 + 75 * row) and random
    labels of 3 classes (not ordered by brightness): any image-label mix-up shows."""
    d = tmp_path_factory.mktemp("brightness")
    n = 24
    rng = np.random.default_rng(5)
    labels = list(rng.permutation(["a", "b", "c"] * (n // 3)))
    paths = [str(make_dicom(d / f"s{i}.dcm", np.full((32, 32), 124 + 75 * i, np.int16),
                            patient=f"P{i}")) for i in range(n)]
    table = pd.DataFrame({"path": paths, "group": [f"P{i}" for i in range(n)],
                          "label": labels, "split": ["train"] * 20 + ["val"] * 4})
    table.attrs["label_columns"] = ["label"]
    pipe = Pipeline([Window(center=0, width=2000), Resize(16), ToRGB()])
    with warnings.catch_warnings():  # uniform scans all look alike to the leakage audit
        warnings.simplefilter("ignore")
        return prepare(table, pipe, cache=ArrayCache(d / "cache"), executor="serial")


def _rows_from_pixels(images: np.ndarray) -> np.ndarray:
    hu = images.reshape(len(images), -1).mean(axis=1) * 2000 - 1000
    rows = (hu + 900) / 75
    np.testing.assert_allclose(rows, np.round(rows), atol=0.05)  # uniform scans stay uniform
    return np.round(rows).astype(int)


@pytest.mark.parametrize("balanced", [False, True])
def test_shuffled_training_batches_keep_images_and_labels_paired(brightness_coded, balanced):
    table = brightness_coded.table
    classes = sorted(set(table["label"]))
    ds = make_dataset(brightness_coded, split="train", batch_size=6, seed=3,
                      class_weight="balanced", balanced=balanced)
    train = set(np.flatnonzero(table["split"] == "train"))
    orders = []
    for _ in range(2):  # two epochs: reshuffled each time
        rows_seen = []
        for images, y, w in collect(ds):
            rows = _rows_from_pixels(images)
            assert set(rows) <= train  # never a validation scan
            got = np.argmax(y, axis=1) if y.ndim == 2 else y.astype(int)
            want = [classes.index(table["label"][r]) for r in rows]
            assert got.tolist() == want  # each label is the label of the image beside it
            counts = table["label"][table["split"] == "train"].value_counts()
            expected_w = [20 / (3 * counts[table["label"][r]]) for r in rows]
            np.testing.assert_allclose(w, expected_w, rtol=1e-6)  # and so is each weight
            rows_seen.extend(rows.tolist())
        assert len(rows_seen) == 20
        if not balanced:
            assert sorted(rows_seen) == sorted(train)  # every training scan once per epoch
        orders.append(rows_seen)
    assert orders[0] != sorted(orders[0]) and orders[0] != orders[1]  # really shuffled


def test_a_fifo_in_place_of_a_cache_entry_is_an_error_not_a_hang(prepared: Prepared,
                                                                  tmp_path: Path) -> None:
    import copy
    import os

    fifo = tmp_path / "entry.npy"
    os.mkfifo(fifo)
    hostile = copy.copy(prepared)
    hostile.table = prepared.table.copy()
    hostile.table.loc[hostile.table.index[0], "cache_file"] = str(fifo)
    from imaging_tl.data.cache import CacheIntegrityError

    with pytest.raises(CacheIntegrityError, match="entry.npy: cache entry is not a regular"):
        make_dataset(hostile, split="train", shuffle=False, batch_size=4)  # its range check
    ds = make_dataset(hostile, split="train", shuffle=False, batch_size=4, check_range=False)
    with pytest.raises(tf.errors.OpError, match="not a regular file"):
        collect(ds)  # the batched reader


def test_the_streaming_form_gives_the_same_batches_with_nothing_of_the_full_table(
        prepared: Prepared) -> None:
    slim = prepared.streaming()
    assert set(slim.table.columns) == {"cache_file", "offset", "tiled", "checksum", "shape"}
    # new objects: no string of the full table stays alive through the slim one
    assert not any(a is b for a, b in zip(slim.table["cache_file"],
                                          prepared.table["cache_file"], strict=True))
    assert len({id(s) for s in slim.table["shape"]}) == 1  # one shape tuple for every row
    full = collect(make_dataset(prepared, split=None, training=True, labels=False,
                                batch_size=6, seed=3, drop_remainder=True))
    same = collect(make_dataset(slim, split=None, training=True, labels=False,
                                batch_size=6, seed=3, drop_remainder=True, check_range=False))
    assert len(full) == len(same) == 3
    for a, b in zip(full, same, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    # the input range is checked on the full table, which names the file
    from imaging_tl.data.tfdata import check_input_range

    check_input_range(prepared.table)
