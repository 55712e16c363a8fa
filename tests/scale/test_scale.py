"""Dask LocalCluster(2): the same census rows and predictions as the single-process run, and
a killed worker neither loses nor duplicates rows."""

from __future__ import annotations

import os
import shutil
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from imaging_tl.scale import census_dask, dask_client, map_batches  # noqa: E402


@pytest.fixture(scope="module")
def archive(pydicom_test_dir, tmp_path_factory) -> Path:
    """Real DICOM files (good, compressed and broken ones) and a non-image file."""
    root = tmp_path_factory.mktemp("archive")
    names = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm",
             "MR_small_jp2klossless.dcm", "MR_truncated.dcm", "JPEG-lossy.dcm", "badVR.dcm",
             "rtplan.dcm", "SC_rgb_rle.dcm", "SC_rgb_jpeg.dcm", "ExplVR_BigEnd.dcm"]
    for i, n in enumerate(names):
        sub = root / f"series{i % 3}"
        sub.mkdir(exist_ok=True)
        shutil.copy(pydicom_test_dir / n, sub / n)
    (root / "series0" / "notes.txt").write_text("not an image\n")
    return root


def test_census_on_two_workers_equals_the_plain_census(archive, tmp_path,
                                                        dask_cluster_client):
    from imaging_tl.io.census import run_census

    plain = run_census(archive, tmp_path / "plain.csv", progress=False)
    dist = census_dask(archive, tmp_path / "dask.csv", client=dask_cluster_client,
                       batch_size=3, progress=False)
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
    assert dist.format().replace("dask.csv", "plain.csv") == plain.format()  # same lint
    df = pd.read_csv(tmp_path / "dask.csv")
    assert len(df) == 13 and (df["status"] != "ok").sum() >= 3  # bad files are rows
    assert not list(tmp_path.glob("*.tmp*"))  # atomic: no temporary left behind


def test_killed_worker_loses_and_duplicates_nothing(tmp_path, dask_cluster_client):
    def die_once(batch: list[str], marker: str) -> list[str]:
        # (nested: pickled by value, the workers cannot import this test module)
        # the first attempt of the batch holding "b" kills its worker process outright
        if "b" in batch and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return [f"row:{x}" for x in batch]

    items = list("abcdefghij")
    marker = str(tmp_path / "killed")
    out = map_batches(dask_cluster_client, partial(die_once, marker=marker), items,
                      batch_size=2, retries=2)
    assert os.path.exists(marker)  # a worker really died
    assert out == [f"row:{x}" for x in items]
    dask_cluster_client.wait_for_workers(2, timeout=180)  # the nanny restarts it (slow on CI)


def test_cluster_arguments_are_checked():
    with pytest.raises(ValueError, match="exactly one of workers"):
        with dask_client():
            pass
    with pytest.raises(ValueError, match="workers=0"):
        with dask_client(workers=0):
            pass


def test_cli_census_workers(archive, tmp_path, capsys):
    from imaging_tl.cli import main

    out = tmp_path / "c.csv"
    assert main(["census", str(archive), "--out", str(out), "--workers", "2", "--quiet"]) == 0
    assert "Census of" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == 13


def _tiny_model(tmp_path: Path) -> Path:
    """A Lite0 transfer model at 32 px saved with its preprocessing contract."""
    from imaging_tl.models import build_transfer_model, save_transfer_model
    from imaging_tl.stages import Pipeline, Resize, ToRGB, Window

    model = build_transfer_model("efficientnet_lite0", "binary", ["no", "yes"], input_size=32)
    pipe = Pipeline([Window(mode="range"), Resize(32), ToRGB()])
    contract = model.imaging_tl_contract
    contract.preprocessing = {"stages": pipe.to_config(), "fingerprint": pipe.fingerprint()}
    path = tmp_path / "model.keras"
    save_transfer_model(model, path, contract)
    return path


def test_predict_on_the_shared_cluster_equals_predict_files(archive, tmp_path,
                                                            dask_cluster_client):
    # Keras engine: nothing to export, so the session's cluster serves (the slow test below
    # covers an exported engine on a cluster of its own)
    from imaging_tl.pipeline import predict_files
    from imaging_tl.scale import predict_dask

    mp = _tiny_model(tmp_path)
    one = predict_files(mp, [archive], engine="keras")
    two = predict_dask(mp, [archive], engine="keras", files_per_task=4, progress=False,
                       client=dask_cluster_client)
    assert list(two["path"]) == list(one["path"])  # input order, no row lost or repeated
    assert list(two["status"]) == list(one["status"])
    assert list(two["reason"]) == list(one["reason"])  # bad files are rows with their reason
    np.testing.assert_allclose(two["prob_yes"].to_numpy(float), one["prob_yes"].to_numpy(float),
                               atol=1e-6)
    assert (one["status"] == "ok").sum() >= 4 and (one["status"] != "ok").sum() >= 3


@pytest.mark.slow
def test_predict_on_two_workers_equals_predict_files(archive, tmp_path, monkeypatch):
    from imaging_tl.pipeline import predict_files
    from imaging_tl.scale import predict_dask

    monkeypatch.setenv("IMAGING_TL_CACHE_DIR", str(tmp_path / "cache"))
    mp = _tiny_model(tmp_path)
    one = predict_files(mp, [archive], engine="onnxruntime")
    # its own cluster: the workers must inherit IMAGING_TL_CACHE_DIR (the engine export)
    two = predict_dask(mp, [archive], workers=2, engine="onnxruntime", files_per_task=3,
                       progress=False)
    assert list(two["path"]) == list(one["path"])
    assert list(two["status"]) == list(one["status"]) and list(two["reason"]) == list(
        one["reason"])
    np.testing.assert_allclose(two["prob_yes"].to_numpy(float), one["prob_yes"].to_numpy(float),
                               atol=1e-6)
    assert (one["status"] == "ok").sum() >= 4


def test_batch_tasks_keep_pydicom_messages_off_the_terminal(pydicom_test_dir, caplog):
    import logging

    from imaging_tl.io import ScanReadError, read_scan
    from imaging_tl.scale import quiet_readers

    # caplog's handler sits on the root logger, as a Dask worker's logging set-up does
    level = logging.getLogger("pydicom").level
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ScanReadError):  # its decoders fail and pydicom logs each one
        read_scan(pydicom_test_dir / "JPEG-lossy.dcm")
    assert any(r.name.startswith("pydicom") for r in caplog.records)  # the noise is real
    caplog.clear()
    with quiet_readers(), pytest.raises(ScanReadError) as err:
        read_scan(pydicom_test_dir / "JPEG-lossy.dcm")
    assert not [r for r in caplog.records if r.name.startswith("pydicom")]
    assert "JPEG-lossy.dcm" in str(err.value)  # the reason still names the file
    assert logging.getLogger("pydicom").level == level  # restored after the task
