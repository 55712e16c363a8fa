"""The fast paths of the input pipeline keep the cache's guarantees: the look-up index (warm
re-runs hash nothing, yet never serve a stale entry) and the batched tf.data reader."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imaging_tl import read_scan
from imaging_tl.data import ArrayCache, Prepared, prepare
from imaging_tl.stages import Pipeline, Resize, ToRGB, Window


def pipe() -> Pipeline:
    return Pipeline([Window(center=40, width=400), Resize(16), ToRGB()])


@pytest.fixture(scope="module")
def settled(tmp_path_factory, make_dicom) -> pd.DataFrame:
    """Four files whose last change is older than the index's one-second racy window."""
    d = tmp_path_factory.mktemp("settled")
    paths = [str(make_dicom(d / f"s{i}.dcm", 200 + i, patient=f"P{i}")) for i in range(4)]
    time.sleep(1.1)
    return pd.DataFrame({"path": paths, "group": [f"P{i}" for i in range(4)]})


def index_of(cache: ArrayCache, namespace: str) -> dict:
    return json.loads((cache.root / namespace / f"index-{cache.hash}.json").read_text())


def test_warm_rerun_reuses_indexed_keys_and_entries(settled: pd.DataFrame, tmp_path: Path):
    cache = ArrayCache(tmp_path / "cache")
    first = prepare(settled, pipe(), cache=cache, executor="serial")
    assert first.stats["decoded"] == 4
    idx = index_of(cache, first.namespace)
    assert sorted(idx["files"]) == sorted(settled["path"]) and len(idx["entries"]) == 4
    # The index is what a new run trusts: a key planted for an unchanged file is used as is
    # (a miss here), and an indexed entry is served without its JSON file.
    planted = dict(idx)
    planted["files"] = {**idx["files"], settled["path"][0]: idx["files"][settled["path"][0]][:5]
                        + ["0" * 32]}
    (cache.root / first.namespace / f"index-{cache.hash}.json").write_text(json.dumps(planted))
    Path(first.table["cache_file"][1]).with_suffix(".json").unlink()
    again = prepare(settled, pipe(), cache=ArrayCache(tmp_path / "cache"), executor="serial")
    assert again.stats["decoded"] == 1 and again.stats["hits"] == 3
    for i in range(4):
        np.testing.assert_array_equal(again.load(i), first.load(i))


def test_rewrite_with_restored_mtime_is_seen_through_the_index(
    settled: pd.DataFrame, tmp_path: Path, make_dicom
) -> None:
    table = settled.copy()
    target = tmp_path / "moving.dcm"
    ids = {"patient": "M", "sop": "1.2.826.0.1.3680043.8.498.1", "study": "1.2.3"}  # one size
    make_dicom(target, 300, **ids)
    time.sleep(1.1)
    table.loc[0, "path"] = str(target)
    cache = ArrayCache(tmp_path / "cache")
    before = prepare(table, pipe(), cache=cache, executor="serial")
    assert str(target) in index_of(cache, before.namespace)["files"]
    st = target.stat()
    make_dicom(target, 301, **ids)  # same size, new pixels, the old mtime put back:
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the ctime tells
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    after = prepare(table, pipe(), cache=ArrayCache(tmp_path / "cache"), executor="serial")
    assert after.stats["decoded"] == 1 and after.stats["hits"] == 3
    np.testing.assert_array_equal(after.load(0), pipe()(read_scan(target)).pixels)
    assert not np.array_equal(after.load(0), before.load(0))


def test_stale_or_damaged_index_is_only_a_hint(settled: pd.DataFrame, tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "cache")
    first = prepare(settled, pipe(), cache=cache, executor="serial")
    Path(first.table["cache_file"][2]).unlink()  # an entry the index still lists
    again = prepare(settled, pipe(), cache=ArrayCache(tmp_path / "cache"), executor="serial")
    assert again.stats["decoded"] == 1
    np.testing.assert_array_equal(again.load(2), first.load(2))
    # A stale hint found by a look-up leaves the saved index (it is not merged back in).
    key = Path(again.table["cache_file"][3]).stem
    Path(again.table["cache_file"][3]).unlink()
    looker = ArrayCache(tmp_path / "cache")
    looker.file_key(settled["path"][3], first.namespace)  # loads the index
    assert looker.get(first.namespace, key) is None
    looker.save_index(first.namespace)
    assert key not in index_of(cache, first.namespace)["entries"]
    assert len(index_of(cache, first.namespace)["entries"]) == 3
    (cache.root / first.namespace / f"index-{cache.hash}.json").write_text("{not json")
    third = prepare(settled, pipe(), cache=ArrayCache(tmp_path / "cache"), executor="serial")
    assert third.stats["decoded"] == 1 and third.stats["hits"] == 3
    assert index_of(cache, first.namespace)["format"] >= 2  # rewritten whole
    # index=False neither reads nor writes it (many small concurrent runs).
    assert cache.clear() == 4
    off = prepare(settled, pipe(), cache=ArrayCache(tmp_path / "cache"), executor="serial",
                  index=False)
    assert off.stats["decoded"] == 4
    assert not (cache.root / off.namespace / f"index-{cache.hash}.json").exists()


def test_cleared_namespace_forgets_its_index(settled: pd.DataFrame, tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "cache")
    prepare(settled, pipe(), cache=cache, executor="serial")
    cache.clear()
    # Same cache object: its in-memory index must not resurrect the deleted entries.
    assert prepare(settled, pipe(), cache=cache, executor="serial").stats["decoded"] == 4


tf = pytest.importorskip("tensorflow")


def test_batched_reader_mixes_grey_and_colour_rows(
    tmp_path: Path, make_dicom, pydicom_test_dir: Path
) -> None:
    from imaging_tl.data.tfdata import make_dataset

    grey = [str(make_dicom(tmp_path / f"g{i}.dcm", i, patient=f"G{i}")) for i in range(3)]
    colour = [str(pydicom_test_dir / n) for n in ("SC_rgb_rle.dcm", "SC_rgb_small_odd.dcm")]
    table = pd.DataFrame({"path": grey + colour, "group": list("abcde")})
    raw = Pipeline([Resize(20, mode="stretch"), ToRGB()])
    prepared = prepare(table, raw, cache=ArrayCache(tmp_path / "c"), executor="serial",
                       audit=False)
    assert prepared.table["tiled"].tolist() == [3, 3, 3, 0, 0]
    expected = np.stack([prepared.load(i) for i in range(5)])
    got = [b.numpy() for b in make_dataset(prepared, split=None, batch_size=2, labels=False,
                                           check_range=False)]
    assert [b.shape for b in got] == [(2, 20, 20, 3), (2, 20, 20, 3), (1, 20, 20, 3)]
    np.testing.assert_array_equal(np.concatenate(got), expected)
    dropped = list(make_dataset(prepared, split=None, batch_size=2, labels=False,
                                check_range=False, drop_remainder=True))
    assert len(dropped) == 2


def test_grey_rows_stay_one_channel_until_the_last_op(tmp_path: Path, make_dicom) -> None:
    from imaging_tl.data.tfdata import make_dataset

    paths = [str(make_dicom(tmp_path / f"s{i}.dcm", 50 + i, patient=f"S{i}")) for i in range(5)]
    table = pd.DataFrame({"path": paths, "group": paths, "label": list("ababa")})
    prepared = prepare(table, pipe(), cache=ArrayCache(tmp_path / "c"), executor="serial")
    ds = make_dataset(prepared, split=None, batch_size=3, repeat=True, shuffle=False)
    batches = [tuple(t.numpy() for t in b) for b in ds.take(4)]  # 12 = 2 epochs + 2
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    for k in range(12):
        np.testing.assert_array_equal(images[k], prepared.load(k % 5))
        assert labels[k] == (k % 5) % 2
    # each channel is an exact copy of the cached grey image
    np.testing.assert_array_equal(images[..., 1], images[..., 0])
    np.testing.assert_array_equal(images[..., 2], images[..., 0])
    # a damaged entry is named, not silently read short
    Path(prepared.table["cache_file"][1]).write_bytes(b"\x93NUMPY")
    with pytest.raises(Exception, match="cache entry truncated"):
        list(make_dataset(Prepared(prepared.table, prepared.quarantined, prepared.namespace,
                                   prepared.cache), split=None, batch_size=3, check_range=False))
