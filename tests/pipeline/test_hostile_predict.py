"""predict on hostile inputs: non-finite data and odd names are error rows, never status=ok."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from imaging_tl.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_non_finite_outputs_become_error_rows():
    from imaging_tl.pipeline.predict import _drop_non_finite  # noqa: PLC2701 - unit under test

    out = pd.DataFrame({"path": ["a", "b", "c"], "status": "ok", "reason": ""})
    x = np.zeros((3, 2), np.float32)
    p = np.array([[0.2], [np.nan], [np.inf]])
    x2, p2, keep = _drop_non_finite(x, p, [0, 1, 2], out)
    assert keep == [0] and len(x2) == 1 and p2.tolist() == [[0.2]]
    assert out["status"].tolist() == ["ok", "error", "error"]
    assert "NaN" in out.loc[1, "reason"]


def test_predict_nan_rescale_odd_name_and_fifo(finished_run, tmp_path):
    pred = pd.read_csv(finished_run.run_dir / "predictions.csv")
    dcm = next(p for p in pred["path"] if p.endswith(".dcm"))
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(dcm, folder / "good.dcm")
    ds = pydicom.dcmread(dcm)
    ds.RescaleSlope, ds.RescaleIntercept = "NaN", "0"
    ds.save_as(folder / "nan.dcm")
    odd = os.path.join(folder, os.fsdecode(b"odd\xff.dcm"))
    try:
        shutil.copy(dcm, odd)
    except (UnicodeEncodeError, OSError):
        pytest.skip("this file system refuses non-UTF-8 names")
    fifo = folder / "pipe.dcm"
    os.mkfifo(fifo)
    out = tmp_path / "pred.csv"
    code = main(["predict", str(finished_run.run_dir / "model.keras"), str(folder),
                 str(fifo), "--out", str(out)])
    assert code == 0
    df = pd.read_csv(out, keep_default_na=False).set_index("path")
    names = {Path(p).name: r for p, r in df.iterrows()}
    assert names["nan.dcm"]["status"] == "error"
    assert "RescaleSlope" in names["nan.dcm"]["reason"]
    assert names["pipe.dcm"]["status"] == "error" and "FIFO" in names["pipe.dcm"]["reason"]
    assert names["odd\\xff.dcm"]["status"] == "ok"  # predicted, written readably
    assert names["good.dcm"]["status"] == "ok"
    ok = df[df["status"] == "ok"]
    assert np.isfinite(ok["prob_nodule"].astype(float)).all()
