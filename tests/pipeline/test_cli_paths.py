"""The README's command paths through the ``imaging-tl`` command itself (a fresh process,
as a user runs it), on the session's one tiny finished run; each checks what the command
wrote, not only its exit code.

The command is started as ``python -m imaging_tl.cli`` with this interpreter (as in
``tests/cli``): the same ``main`` the installed ``imaging-tl`` script calls (checked below),
and it runs the package under test even where another copy is installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def imaging_tl(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "imaging_tl.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=os.environ.copy())
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def test_the_entry_point_is_the_cli_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["imaging-tl"] == "imaging_tl.cli:main"


@pytest.fixture(scope="module")
def test_rows(finished_run) -> pd.DataFrame:
    """The run's test split as written in predictions.csv (absolute paths, Keras outputs)."""
    pred = pd.read_csv(finished_run.run_dir / "predictions.csv")
    return pred[pred["split"] == "test"].reset_index(drop=True)


def test_evaluate_data_on_the_test_split_reproduces_the_run_auc(finished_run, test_rows,
                                                                tiny_data, tmp_path):
    labels = pd.read_csv(tiny_data / "labels.csv")
    labels["path"] = [str(tiny_data / p) for p in labels["path"]]
    ext = labels[labels["path"].isin(set(test_rows["path"]))]
    assert len(ext) == len(test_rows) >= 4
    ext.to_csv(tmp_path / "external.csv", index=False)
    out = tmp_path / "ext.json"
    done = imaging_tl("evaluate", str(finished_run.run_dir), "--data",
                      str(tmp_path / "external.csv"), "--bootstrap", "20", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    m = json.loads(out.read_text())
    assert m["n_images"] == len(ext)
    assert m["evaluated_on"].endswith("external.csv")
    # the same images and model as the run's own test evaluation: the same AUC
    assert m["roc_auc"]["value"] == pytest.approx(finished_run.metrics["roc_auc"]["value"],
                                                  abs=1e-6)
    assert f"{len(ext)} images, roc_auc {m['roc_auc']['value']:.3f}" in done.stdout
    assert str(out) in done.stdout


@pytest.fixture(scope="module")
def cluster_address():
    """A local Dask cluster of 2 worker processes, reached by its address (``--scheduler``)."""
    pytest.importorskip("distributed")
    from imaging_tl.scale import dask_client

    with dask_client(workers=2) as client:
        client.wait_for_workers(2, timeout=120)
        yield client.scheduler.address


def test_predict_on_a_scheduler_equals_the_run_predictions(finished_run, test_rows,
                                                           cluster_address, tmp_path):
    files = list(test_rows["path"][:4])
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(Path(next(p for p in test_rows["path"] if p.endswith(".dcm")))
                       .read_bytes()[:300])
    out = tmp_path / "pred.csv"
    done = imaging_tl("predict", str(finished_run.run_dir), *files, str(broken), "--engine",
                      "keras", "--scheduler", cluster_address, "--out", str(out),
                      "--domain", "off")
    assert done.returncode == 0, done.stderr[-3000:]
    df = pd.read_csv(out, keep_default_na=False)
    assert (df["domain"] == "").all()  # the workers got --domain off (flag fills "ok")
    assert list(df["path"]) == [*files, str(broken)]  # input order, the bad file a row
    assert list(df["status"]) == ["ok"] * 4 + ["error"] and df["reason"].iloc[-1]
    np.testing.assert_allclose(df["prob_nodule"][:4].astype(float),
                               test_rows["prob_nodule"][:4], atol=1e-5)
    assert "broken.dcm" in done.stderr


def test_census_on_a_scheduler_with_decode_equals_the_plain_census(tiny_data, cluster_address,
                                                                    tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    dcms = sorted(tiny_data.rglob("*.dcm"))[:6]
    for i, p in enumerate(dcms):
        (folder / f"s{i}.dcm").write_bytes(p.read_bytes())
    data = dcms[0].read_bytes()  # header intact, pixel data cut short
    (folder / "cut.dcm").write_bytes(data[: len(data) - 2000])
    plain, clustered = tmp_path / "plain.csv", tmp_path / "cluster.csv"
    a = imaging_tl("census", str(folder), "--out", str(plain), "--decode", "--quiet")
    b = imaging_tl("census", str(folder), "--out", str(clustered), "--decode", "--quiet",
                   "--scheduler", cluster_address)
    assert a.returncode == 0 and b.returncode == 0, a.stderr[-2000:] + b.stderr[-2000:]
    one, two = (pd.read_csv(p, keep_default_na=False).sort_values("path", ignore_index=True)
                for p in (plain, clustered))
    pd.testing.assert_frame_equal(one, two)
    assert len(one) == 7
    cut = one[one["path"].str.endswith("cut.dcm")].iloc[0]
    assert cut["status"] == "error" and cut["reason"]
    ok = one[one["status"] == "ok"]
    assert len(ok) == 6 and ok["decoded"].astype(str).eq("True").all()  # pixels decoded
    assert "Census of" in b.stdout


@pytest.mark.slow
def test_predict_on_local_workers_equals_the_run_predictions(finished_run, test_rows,
                                                             tmp_path):
    # --workers starts its own cluster (the same dask_client as census --workers, which the
    # default run covers); here the whole predict path on it
    files = list(test_rows["path"][:4])
    out = tmp_path / "pred.csv"
    done = imaging_tl("predict", str(finished_run.run_dir), *files, "--engine", "keras",
                      "--workers", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    df = pd.read_csv(out, keep_default_na=False)
    assert list(df["path"]) == files and list(df["status"]) == ["ok"] * 4
    np.testing.assert_allclose(df["prob_nodule"].astype(float), test_rows["prob_nodule"][:4],
                               atol=1e-5)
