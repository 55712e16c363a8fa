"""2.5-D samples: each slice cached once, the stacked channels equal the neighbouring
slices (edges repeated), and tf.data streams the same arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imaging_tl.data import prepare
from imaging_tl.data.series import from_series
from imaging_tl.data.stacking import split_stack
from imaging_tl.stages import Pipeline, Resize, Stack, ToRGB, Window

SERIES = Path(__file__).resolve().parents[2] / "sample_dicoms" / "ct_series"
SLICE_STAGES = [Window(preset="lung"), Resize(16)]


@pytest.fixture(scope="module")
def two_series():
    table = from_series(SERIES, csv=SERIES / "series_labels.csv")
    keep = table["series"].isin(table["series"].unique()[:2])
    return table[keep].sample(frac=1.0, random_state=0).reset_index(drop=True)  # shuffled


def _by_slice(prepared):
    t = prepared.table
    return {(s, k): i for i, (s, k) in enumerate(zip(t["series"], t["slice"], strict=True))}


def test_stacked_channels_are_the_neighbouring_slices(two_series, tmp_path):
    plain = prepare(two_series, Pipeline(SLICE_STAGES), cache=tmp_path, executor="serial")
    stacked = prepare(two_series, Pipeline([*SLICE_STAGES, Stack([-1, 0, 2])]),
                      cache=tmp_path, executor="serial")
    assert stacked.stats["hits"] == len(two_series)  # the slices were cached once, reused
    assert stacked.shape == (16, 16, 3) and plain.shape == (16, 16)
    at = _by_slice(plain)
    for i, (series, k) in enumerate(zip(stacked.table["series"], stacked.table["slice"],
                                        strict=True)):
        x = stacked.load(i)
        for c, off in enumerate((-1, 0, 2)):
            j = at[(series, min(max(k + off, 0), 7))]  # past the ends: the nearest slice
            assert np.array_equal(x[..., c], plain.load(j))
    entries = [p for p in Path(tmp_path).rglob("*.npy")]
    assert len(entries) == len(two_series)  # one array per slice, none per stack


def test_tf_data_streams_the_same_stacked_batches(two_series, tmp_path):
    from imaging_tl.data.tfdata import make_dataset

    prepared = prepare(two_series, Pipeline([*SLICE_STAGES, Stack()]), cache=tmp_path,
                       executor="serial")
    batches = list(make_dataset(prepared, split=None, batch_size=5, labels=False,
                                shuffle=False))
    streamed = np.concatenate([b.numpy() for b in batches])
    assert streamed.shape == (16, 16, 16, 3)
    expected = np.stack([prepared.load(i) for i in range(len(prepared.table))])
    assert np.array_equal(streamed, expected)


def test_stack_must_come_last():
    with pytest.raises(ValueError, match="stack: must be the last preprocessing stage"):
        split_stack(Pipeline([Window(preset="lung"), Stack(), ToRGB()]))


def test_offsets_in_mm_use_the_series_spacing(two_series, tmp_path):
    plain = prepare(two_series, Pipeline(SLICE_STAGES), cache=tmp_path, executor="serial")
    mm = prepare(two_series, Pipeline([*SLICE_STAGES, Stack([-10, 0, 10], unit="mm")]),
                 cache=tmp_path, executor="serial")
    assert set(two_series["slice_spacing"]) == {5.0}  # 10 mm = 2 slices
    at = _by_slice(plain)
    for i, (series, k) in enumerate(zip(mm.table["series"], mm.table["slice"], strict=True)):
        x = mm.load(i)
        assert np.array_equal(x[..., 0], plain.load(at[(series, max(k - 2, 0))]))
        assert np.array_equal(x[..., 2], plain.load(at[(series, min(k + 2, 7))]))
