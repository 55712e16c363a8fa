"""The array cache: never stale, atomic, quarantines bad files; prepare() and the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imaging_tl.cli import main
from imaging_tl.data import ArrayCache, BadFileError, prepare
from imaging_tl.stages import Pipeline, Resize, ToRGB, Window


def pipe(size: int = 32, center: float = 40) -> Pipeline:
    return Pipeline([Window(center=center, width=400), Resize(size), ToRGB()])


@pytest.fixture
def table(tmp_path: Path, make_dicom) -> pd.DataFrame:
    paths = [make_dicom(tmp_path / "in" / f"s{i}.dcm", i, patient=f"P{i}") for i in range(6)]
    return pd.DataFrame({"path": [str(p) for p in paths], "group": [f"P{i}" for i in range(6)],
                         "label": ["a", "b"] * 3})


def test_unchanged_rerun_decodes_nothing(table: pd.DataFrame, tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "cache")
    first = prepare(table, pipe(), cache=cache, workers=2)
    assert first.stats["decoded"] == 6 and first.stats["hits"] == 0
    again = prepare(table, pipe(), cache=cache, workers=2)
    assert again.stats["decoded"] == 0 and again.stats["hits"] == 6
    assert again.shape == (32, 32, 3)
    for i in range(6):
        a = again.load(i)
        assert a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
        np.testing.assert_array_equal(a, first.load(i))
    # The cached array is what the pipeline gives on the file.
    from imaging_tl import read_scan

    np.testing.assert_array_equal(again.load(0), pipe()(read_scan(table["path"][0])).pixels)


def test_stage_parameter_change_never_reuses_an_entry(table: pd.DataFrame, tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "cache")
    base = prepare(table, pipe(), cache=cache, executor="serial")
    other = prepare(table, pipe(center=41), cache=cache, executor="serial")
    assert other.stats["decoded"] == 6
    assert not np.array_equal(base.load(0), other.load(0))
    assert prepare(table, pipe(size=40), cache=cache, executor="serial").stats["decoded"] == 6
    assert len(cache.info().namespaces) == 3


def test_changed_file_is_decoded_again(table: pd.DataFrame, tmp_path: Path, make_dicom) -> None:
    cache = ArrayCache(tmp_path / "cache")
    before = prepare(table, pipe(), cache=cache, executor="serial")
    target = Path(table["path"][2])
    st = target.stat()
    import pydicom

    old = pydicom.dcmread(target, stop_before_pixels=True)  # its UIDs keep the size equal
    make_dicom(target, 99, patient="P2", sop=old.SOPInstanceUID,
               study=old.StudyInstanceUID)  # same size, new pixels ...
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the old mtime restored
    assert target.stat().st_size == st.st_size
    after = prepare(table, pipe(), cache=cache, executor="serial")
    assert after.stats["decoded"] == 1 and after.stats["hits"] == 5
    assert not np.array_equal(before.load(2), after.load(2))


def test_interrupted_write_is_not_trusted(table: pd.DataFrame, tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    table.iloc[:1].to_csv(tmp_path / "one.csv", index=False)
    # A real interruption: the kernel kills the writer (SIGXFSZ) in the middle of writing
    # the 16 kB array file, after its metadata file is complete.
    script = textwrap.dedent(f"""
        import resource, signal
        import pandas as pd
        from imaging_tl.data import ArrayCache, prepare
        from imaging_tl.stages import Pipeline, Resize, ToRGB, Window
        table = pd.read_csv({str(tmp_path / "one.csv")!r})
        p = Pipeline([Window(center=40, width=400), Resize(64), ToRGB()])
        cache = ArrayCache({str(cache_dir)!r})
        cache.namespace(p.fingerprint(), p.to_config())
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8_000, 8_000))
        prepare(table, p, cache=cache, executor="serial")
        print("not interrupted")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -25, proc.stderr  # SIGXFSZ
    left = [p.name for p in cache_dir.rglob("*") if p.is_file() and p.parent.parent.name == "e"]
    assert any(n.endswith(".tmp") for n in left) and not any(n.endswith(".npy") for n in left)
    cache = ArrayCache(cache_dir)
    assert cache.info().temporary == 1
    p = Pipeline([Window(center=40, width=400), Resize(64), ToRGB()])
    run = prepare(table.iloc[:1], p, cache=cache, executor="serial")
    assert run.stats["decoded"] == 1 and run.load(0).shape == (64, 64, 3)
    cache.clear()
    assert cache.info().entries == 0 and cache.info().temporary == 0


def test_damaged_entry_is_a_miss(table: pd.DataFrame, tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path / "cache")
    first = prepare(table, pipe(), cache=cache, executor="serial")
    expected = first.load(0)
    npy = Path(first.table["cache_file"][0])
    npy.write_bytes(npy.read_bytes()[:-100])
    again = prepare(table, pipe(), cache=cache, executor="serial")
    assert again.stats["decoded"] == 1
    np.testing.assert_array_equal(again.load(0), expected)


def test_bad_files_are_quarantined_with_their_reason(
    table: pd.DataFrame, tmp_path: Path, pydicom_test_dir: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(pydicom_test_dir / "MR_truncated.dcm", bad / "truncated.dcm")
    shutil.copy(pydicom_test_dir / "rtplan.dcm", bad / "plan.dcm")
    (bad / "notes.dcm").write_text("not an image")
    extra = pd.DataFrame({"path": [str(bad / n) for n in
                                   ("truncated.dcm", "plan.dcm", "notes.dcm", "gone.dcm")],
                          "group": ["x1", "x2", "x3", "x4"], "label": ["a"] * 4})
    full = pd.concat([table, extra], ignore_index=True)
    cache = ArrayCache(tmp_path / "cache")
    run = prepare(full, pipe(), cache=cache, workers=2)
    assert len(run.table) == 6 and run.stats["quarantined"] == 4
    why = dict(zip(run.quarantined["path"].map(lambda p: Path(p).name),
                   run.quarantined["reason"], strict=True))
    assert why["truncated.dcm"].startswith("CorruptPixelDataError")
    assert why["plan.dcm"].startswith("NoPixelDataError")
    assert why["notes.dcm"].startswith("NotAnImageError")
    assert "cannot open" in why["gone.dcm"]
    assert "quarantined" in run.summary() and "truncated.dcm" in run.summary()
    # Remembered: the next run does not decode them again, and still lists them.
    again = prepare(full, pipe(), cache=cache, workers=2)
    assert again.stats["decoded"] == 0 and again.stats["quarantined"] == 4
    assert prepare(full, pipe(), cache=cache, retry_quarantined=True,
                   executor="serial").stats["decoded"] == 3
    with pytest.raises(BadFileError, match="truncated.dcm: CorruptPixelDataError"):
        prepare(full, pipe(size=16), cache=cache, strict=True, executor="serial")


def test_processes_threads_and_serial_give_the_same_arrays(
    table: pd.DataFrame, tmp_path: Path
) -> None:
    runs = [prepare(table, pipe(), cache=ArrayCache(tmp_path / k), executor=k, workers=2)
            for k in ("process", "thread", "serial")]
    for i in range(len(table)):
        np.testing.assert_array_equal(runs[0].load(i), runs[1].load(i))
        np.testing.assert_array_equal(runs[0].load(i), runs[2].load(i))
    assert runs[0].table["content_hash"].equals(runs[2].table["content_hash"])


def test_prepare_audits_a_split_table(table: pd.DataFrame, tmp_path: Path) -> None:
    from imaging_tl.data import LeakageError

    leaky = table.assign(split=["train", "train", "train", "test", "test", "test"])
    leaky = pd.concat([leaky, leaky.iloc[[0]].assign(split="test", group="Q")],
                      ignore_index=True)
    with pytest.raises(LeakageError, match="file .* in 2 splits"):
        prepare(leaky, pipe(), cache=ArrayCache(tmp_path / "c"), executor="serial")


def test_cli_cache_info_and_clear(
    table: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cache_dir = tmp_path / "cache"
    prepare(table, pipe(), cache=ArrayCache(cache_dir), executor="serial")
    assert main(["cache", "info", "--dir", str(cache_dir)]) == 0
    out = capsys.readouterr().out
    assert "6 entries" in out and "window" in out
    assert main(["cache", "clear", "--dir", str(cache_dir)]) == 0
    assert "6 cached arrays" in capsys.readouterr().out
    assert ArrayCache(cache_dir).info().entries == 0
    # A folder that is not a cache is never deleted.
    assert main(["cache", "clear", "--dir", str(tmp_path / "in")]) == 2
    assert (tmp_path / "in" / "s0.dcm").exists()


def test_entry_corrupted_in_place_is_evicted_and_recomputed(
    table: pd.DataFrame, tmp_path: Path, capfd
) -> None:
    # issue 22 class 10: same size, different bytes -> the checksum catches it
    cache = ArrayCache(tmp_path / "cache")
    first = prepare(table, pipe(), cache=cache, executor="serial")
    expected = first.load(0)
    npy = Path(first.table["cache_file"][0])
    data = bytearray(npy.read_bytes())
    data[-8:] = np.float32([7.0, 7.0]).tobytes()
    npy.write_bytes(bytes(data))
    capfd.readouterr()
    for fresh in (True, False):  # a new cache object (entry files) and the warm index
        c = ArrayCache(tmp_path / "cache") if fresh else cache
        again = prepare(table, pipe(), cache=c, executor="serial")
        err = capfd.readouterr().err
        if fresh:
            assert again.stats["decoded"] == 1 and again.stats["hits"] == 5
            assert f"cache entry {npy}" in err and "failed its checksum" in err
            assert str(tmp_path / "cache") in err and table["path"][0] in err
            assert len(c.evicted) == 1
            np.testing.assert_array_equal(again.load(0), expected)
            npy.write_bytes(bytes(data))  # corrupt it again for the indexed path
        else:
            assert again.stats["decoded"] == 1 and "failed its checksum" in err
            np.testing.assert_array_equal(again.load(0), expected)


def test_load_names_a_corrupted_entry(table: pd.DataFrame, tmp_path: Path) -> None:
    from imaging_tl.data.cache import CacheIntegrityError, load_entry

    cache = ArrayCache(tmp_path / "cache")
    first = prepare(table.head(1), pipe(), cache=cache, executor="serial")
    import json

    row = first.table.iloc[0]
    npy = Path(row["cache_file"])
    checksum = json.loads(npy.with_suffix(".json").read_text())["checksum"]
    load_entry(npy, int(row["tiled"]), checksum)  # intact: fine
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    with pytest.raises(CacheIntegrityError, match=rf"{npy}: cache entry changed"):
        load_entry(npy, int(row["tiled"]), checksum)


def test_cache_files_get_the_usual_mode(table: pd.DataFrame, tmp_path: Path) -> None:
    from imaging_tl.data.cache import file_mode

    cache = ArrayCache(tmp_path / "cache")
    first = prepare(table.head(1), pipe(), cache=cache, executor="serial")
    npy = Path(first.table["cache_file"][0])
    for f in (npy, npy.with_suffix(".json")):
        assert f.stat().st_mode & 0o777 == file_mode()
