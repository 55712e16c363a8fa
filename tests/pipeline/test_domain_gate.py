"""The domain gate on the session's tiny trained run: fitted on its training split, stored
beside the model, applied by ``predict`` (flag and strict), counted in the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from imaging_tl.evaluate.domain import DOMAIN_FILE, fit_reference, load_reference

OTHER = ["MR_small.dcm", "US1_UNCR.dcm"]


def _other_files():
    return [get_testdata_file(f, download=False) for f in OTHER]


def _test_files(run):
    splits = run.run_dir / "splits.csv"
    import pandas as pd

    s = pd.read_csv(splits)
    return list(s.loc[s["split"] == "test", "path"])


def test_run_stores_the_gate_and_reports_it(finished_run):
    rd = finished_run.run_dir
    ref = load_reference(rd / DOMAIN_FILE)
    assert ref.mean.shape == (1280,) and ref.threshold > 0
    contract = json.loads((rd / "contract.json").read_text())
    assert contract["domain"]["colour"] == ["grey"] and contract["domain"]["size_range"]
    gate = json.loads((rd / "metrics.json").read_text())["domain_gate"]
    assert gate["test_images"] > 0 and gate["false_flag_rate"] == 0.05
    html = (rd / "report.html").read_text()
    assert f"Domain gate: would flag {gate['test_flagged']} of {gate['test_images']} test" in html


def test_predict_flags_mr_and_ultrasound_and_passes_its_own_test_images(finished_run):
    from imaging_tl.pipeline import predict_files

    own = _test_files(finished_run)
    df = predict_files(finished_run.run_dir / "model.keras", [*_other_files(), *own])
    other, mine = df.iloc[:2], df.iloc[2:]
    assert (other["domain"] == "out_of_domain").all(), other[["path", "domain_reason"]]
    assert other["domain_reason"].str.len().gt(0).all()
    assert (other["status"] == "ok").all()  # the default flags, and still predicts
    assert (mine["status"] == "ok").all()
    # the threshold lets through 95% of validation images; a handful of test images
    # may pass it by chance, but never most of them
    assert (mine["domain"] == "out_of_domain").mean() <= max(0.05, 1 / len(mine))


def test_strict_gate_skips_flagged_files(finished_run):
    from imaging_tl.pipeline import predict_files

    df = predict_files(finished_run.run_dir / "model.keras", _other_files(), domain="strict")
    assert (df["status"] == "skipped").all()
    assert df.filter(like="prob_").isna().all().all()


def test_reference_file_is_checked_when_read(tmp_path):
    np.savez(tmp_path / "bad.npz", mean=np.zeros(4), components=np.zeros((3, 2)),
             eigenvalues=np.zeros(2), scalars=np.ones(4))
    with pytest.raises(ValueError, match="malformed domain reference"):
        load_reference(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a domain reference"):
        load_reference(tmp_path / "junk.npz")


def test_reference_round_trips_and_sets_its_false_flag_rate(tmp_path):
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(8, 64))
    train, val = (rng.normal(size=(n, 8)) @ basis + rng.normal(size=(n, 64)) * 0.1
                  for n in (300, 400))
    ref = fit_reference(train, val, false_flag_rate=0.1)
    fresh = rng.normal(size=(3000, 8)) @ basis + rng.normal(size=(3000, 64)) * 0.1
    assert 0.05 < ref.flags(fresh).mean() <= 0.13
    again = load_reference(ref.save(tmp_path / DOMAIN_FILE))
    np.testing.assert_allclose(again.distance(val[:5]), ref.distance(val[:5]), rtol=1e-4)
    shifted = rng.normal(size=(50, 8)) @ basis + rng.normal(size=(50, 64)) * 0.5
    assert ref.flags(shifted).mean() > 0.9  # off the training subspace
