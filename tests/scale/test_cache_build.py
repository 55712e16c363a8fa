"""The cache build on Dask: entries byte-identical to the local prepare(), bad files
quarantined with their reason, a dying worker's batch retried, and `imaging-tl run` on the
same config finding every entry warm."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("distributed")

from imaging_tl.data import prepare  # noqa: E402
from imaging_tl.scale import build_cache_dask  # noqa: E402
from imaging_tl.stages import Pipeline, Resize, ToRGB, Window  # noqa: E402

BROKEN = ["MR_truncated.dcm", "JPEG-lossy.dcm", "badVR.dcm"]
COLOUR = ["SC_rgb_rle.dcm", "ExplVR_BigEnd.dcm"]  # Window refuses colour: a stage error


@pytest.fixture(scope="module")
def archive_table(pydicom_test_dir, pydicom_data_dir, tmp_path_factory) -> pd.DataFrame:
    """Real DICOM files (plain, compressed, big endian, colour, multi-frame, broken) and a
    file that is not an image; two frames of a multi-frame file are two rows."""
    root = tmp_path_factory.mktemp("archive")
    names = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm",
             "MR_small_jp2klossless.dcm", *COLOUR, *BROKEN]
    rows = []
    for n in names:
        shutil.copy(pydicom_test_dir / n, root / n)
        rows.append((str(root / n), None))
    for n in ("RG1_UNCI.dcm", "emri_small_RLE.dcm"):
        shutil.copy(pydicom_data_dir / n, root / n)
    rows.append((str(root / "RG1_UNCI.dcm"), None))
    rows += [(str(root / "emri_small_RLE.dcm"), f) for f in (0, 3)]  # 10 frames
    (root / "notes.txt").write_text("not an image\n")
    rows.append((str(root / "notes.txt"), None))
    return pd.DataFrame({"path": [r[0] for r in rows],
                         "frame": pd.array([r[1] for r in rows], dtype="Int64")})


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline([Window(mode="range"), Resize(32), ToRGB()])


def tree(root: Path) -> dict[str, bytes]:
    """Every file of a cache but its look-up index (a hint whose records depend on timing:
    a file changed within the last second is not indexed)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("index-")}


def test_dask_entries_are_byte_identical_to_local_prepare(archive_table, pipe, tmp_path,
                                                          dask_cluster_client):
    local = prepare(archive_table, pipe, cache=tmp_path / "local", workers=2)
    dist = build_cache_dask(archive_table, pipe, cache=tmp_path / "dask",
                            client=dask_cluster_client, files_per_task=3, progress=False)
    a, b = tree(tmp_path / "local"), tree(tmp_path / "dask")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert sum(k.endswith(".npy") for k in a) == len(local.table) == 8
    # the same Prepared as the local path: rows, order, shapes, hashes, quarantine
    cols = ["path", "frame", "offset", "shape", "tiled", "content_hash", "dhash"]
    pd.testing.assert_frame_equal(dist.table[cols], local.table[cols])
    pd.testing.assert_frame_equal(dist.quarantined, local.quarantined)
    names = set(dist.quarantined["path"].map(lambda p: Path(p).name))
    assert names == {*BROKEN, *COLOUR, "notes.txt"}
    assert dist.quarantined["reason"].str.len().min() > 10  # each with its reason
    assert dist.stats["decoded"] == local.stats["decoded"] == len(archive_table)
    assert dist.stats["tasks"] == 5 and dist.stats["files"] == 13  # frames of a file together
    summary = dist.summary()
    assert "0 from cache, 14 decoded, 6 quarantined" in summary
    assert all(f"quarantined {p}" in summary for p in dist.quarantined["path"])


def test_second_build_decodes_nothing(archive_table, pipe, tmp_path, dask_cluster_client):
    build_cache_dask(archive_table, pipe, cache=tmp_path / "c", client=dask_cluster_client,
                     progress=False)
    again = build_cache_dask(archive_table, pipe, cache=tmp_path / "c",
                             client=dask_cluster_client, progress=False)
    assert again.stats["decoded"] == 0
    assert again.stats["hits"] == len(again.table) == 8
    assert len(again.quarantined) == 6  # remembered, not decoded again
    # the local path agrees: every entry is warm
    assert prepare(archive_table, pipe, cache=tmp_path / "c").stats["decoded"] == 0


def test_a_dying_worker_batch_is_retried(archive_table, pipe, tmp_path, dask_cluster_client):
    marker = str(tmp_path / "killed")

    class DieOnce:
        """The real pipeline, but the first call on any worker kills that worker process.
        (Local class: pickled by value, the workers cannot import this test module.)"""

        def __init__(self, inner: Pipeline) -> None:
            self.inner = inner
            self.stages = inner.stages  # the same decode plan (and cache keys) as inner

        def fingerprint(self) -> str:
            return self.inner.fingerprint()

        def to_config(self):
            return self.inner.to_config()

        def __call__(self, scan, meta=None):
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)
            return self.inner(scan, meta)

    table = archive_table.iloc[:4]
    dist = build_cache_dask(table, DieOnce(pipe), cache=tmp_path / "dask",
                            client=dask_cluster_client, files_per_task=2, retries=2,
                            progress=False)
    assert os.path.exists(marker)  # a worker really died
    prepare(table, pipe, cache=tmp_path / "local", executor="serial")
    assert len(dist.table) == 4 and dist.quarantined.empty
    assert tree(tmp_path / "dask") == tree(tmp_path / "local")
    dask_cluster_client.wait_for_workers(2, timeout=60)  # the nanny restarts it


def test_entries_this_process_cannot_see_are_an_error(archive_table, pipe, tmp_path,
                                                      dask_cluster_client):
    from imaging_tl.data import ArrayCache
    from imaging_tl.data.prepare import CacheWriteError

    elsewhere = tmp_path / "worker-disk"

    class SeenElsewhere(ArrayCache):
        """On the workers the cache folder is another disk (a cache_dir that is not shared)."""

        def __reduce__(self):
            return (ArrayCache, (str(elsewhere),))

    with pytest.raises(CacheWriteError, match="cannot see"):
        build_cache_dask(archive_table.iloc[:3], pipe, cache=SeenElsewhere(tmp_path / "here"),
                         client=dask_cluster_client, progress=False)
    assert not list((tmp_path / "here").rglob("*.npy"))  # nothing decoded here instead


def test_strict_names_the_bad_file(archive_table, pipe, tmp_path, dask_cluster_client):
    from imaging_tl.data import BadFileError

    with pytest.raises(BadFileError, match="SC_rgb_rle.dcm: ValueError: Window"):
        build_cache_dask(archive_table, pipe, cache=tmp_path / "c", strict=True,
                         client=dask_cluster_client, progress=False)
    # the first bad file in table order, as the local path names it
    with pytest.raises(BadFileError, match="SC_rgb_rle.dcm: ValueError: Window"):
        prepare(archive_table, pipe, cache=tmp_path / "local", strict=True)
    assert len(list((tmp_path / "c").rglob("*.npy"))) == 8  # the good files are cached


def test_table_without_path_column_is_refused(pipe, tmp_path, dask_cluster_client):
    with pytest.raises(ValueError, match="'path' column"):
        build_cache_dask(pd.DataFrame({"file": ["a.dcm"]}), pipe, cache=tmp_path,
                         client=dask_cluster_client)


# -- the command: build, then `run` finds every entry warm ------------------------------------
@pytest.fixture(scope="module")
def tiny_config_file(tmp_path_factory) -> Path:
    """A run config on synthetic radiographs written as real DICOM/PNG (not patient data)."""
    from imaging_tl.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("tiny")
    generate_dataset(root / "data", n_patients=12, images_per_patient=2, seed=5, size=64,
                     difficulty="easy")
    cfg = {
        "name": "tiny", "seed": 0, "output": str(root / "runs"),
        "cache_dir": str(root / "cache"), "workers": 1,
        "data": {"csv": str(root / "data" / "labels.csv"), "label_column": "label",
                 "group_column": "patient_id"},
        "task": {"positive": "nodule"},
        "split": {"val": 0.25, "test": 0.25},
        "model": {"input_size": 32},
        "train": {"batch_size": 8, "phases": [{"name": "head", "epochs": 1}]},
        "evaluate": {"bootstrap": 20, "gradcam": 0},
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cli_cache_build_on_workers_then_run_decodes_nothing(tiny_config_file, capsys):
    from imaging_tl.cli import main

    cache = Path(yaml.safe_load(tiny_config_file.read_text())["cache_dir"])
    assert main(["cache", "build", str(tiny_config_file), "--workers", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "prepared 24 samples: 0 from cache, 24 decoded, 0 quarantined" in out
    assert "24 of 24 samples ready" in out
    assert len(list(cache.rglob("*.npy"))) == 24
    # the run itself: real data, real weights, real (one-epoch) training
    assert main(["run", str(tiny_config_file), "--quiet"]) == 0
    run_dir = next((tiny_config_file.parent / "runs").iterdir())
    info = json.loads((run_dir / "run.json").read_text())
    assert info["prepare"]["decoded"] == 0 and info["prepare"]["hits"] == 24
    assert len(list(cache.rglob("*.npy"))) == 24  # nothing new written


def test_cli_cache_build_local_equals_scheduler(tiny_config_file, tmp_path, capsys,
                                                dask_cluster_client):
    from imaging_tl.cli import main

    args = ["cache", "build", str(tiny_config_file), "--quiet", "--set"]
    assert main([*args, f"cache_dir={tmp_path / 'local'}"]) == 0
    assert "0 from cache, 24 decoded" in capsys.readouterr().out
    address = dask_cluster_client.scheduler.address  # an existing cluster
    assert main([*args, f"cache_dir={tmp_path / 'dask'}", "--scheduler", address,
                 "--files-per-task", "5"]) == 0
    assert tree(tmp_path / "local") == tree(tmp_path / "dask")
    assert main([*args, f"cache_dir={tmp_path / 'local'}"]) == 0
    assert "24 from cache, 0 decoded" in capsys.readouterr().out.splitlines()[-2]


def test_cli_cache_build_reports_bad_input(tmp_path, capsys):
    from imaging_tl.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {csv: missing.csv}\nmodel: {input_size: -3}\n")
    assert main(["cache", "build", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imaging-tl cache:") and "input_size" in err
    with pytest.raises(SystemExit) as info:
        main(["cache", "build", str(bad), "--workers", "2", "--scheduler", "tcp://x:1"])
    assert info.value.code == 2
    assert main(["cache", "info", "--dir", str(tmp_path / "none")]) == 0


def test_unreachable_scheduler_is_a_usage_error(tiny_config_file, capsys):
    import dask

    from imaging_tl.cli import main

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert main(["cache", "build", str(tiny_config_file), "--scheduler",
                     "tcp://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "--scheduler tcp://127.0.0.1:1: cannot connect" in err and "Traceback" not in err


@pytest.mark.slow
def test_every_real_dicom_file_builds_identically(pydicom_test_dir, pydicom_data_dir, tmp_path,
                                                  dask_cluster_client):
    """All of pydicom's and pydicom-data's files (every transfer syntax, multi-frame as the
    whole stack, the broken ones) with a colour-safe pipeline: same entries, same quarantine."""
    from imaging_tl.stages import ToGrey

    files = sorted(str(p) for d in (pydicom_test_dir, pydicom_data_dir) for p in d.rglob("*")
                   if p.is_file() and p.suffix == ".dcm")
    table = pd.DataFrame({"path": files})
    pipe = Pipeline([ToGrey(), Window(mode="header", fallback="percentile"), Resize(48),
                     ToRGB()])
    local = prepare(table, pipe, cache=tmp_path / "local")
    dist = build_cache_dask(table, pipe, cache=tmp_path / "dask", client=dask_cluster_client,
                            progress=False)
    assert len(local.table) > 100
    assert tree(tmp_path / "local") == tree(tmp_path / "dask")
    pd.testing.assert_frame_equal(dist.quarantined, local.quarantined)


def test_cli_cache_build_on_a_scheduler_follows_data_decode(tiny_config_file, tmp_path, capsys,
                                                            dask_cluster_client):
    from imaging_tl.cli import main

    address = dask_cluster_client.scheduler.address
    args = ["cache", "build", str(tiny_config_file), "--quiet", "--set",
            f"cache_dir={tmp_path / 'c'}", "--set", "data.decode=full"]
    assert main([*args, "--scheduler", address]) == 0
    capsys.readouterr()
    assert main(args) == 0  # the local build with the same plan finds every entry
    assert "24 from cache, 0 decoded" in capsys.readouterr().out
