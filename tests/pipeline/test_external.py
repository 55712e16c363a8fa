"""External validation of the tiny run's model on another simulated site: the
internal-vs-external page, and recalibration on a share of the new site's patients."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from imaging_tl.cli import main
from imaging_tl.pipeline import InputError, reevaluate
from imaging_tl.synthetic import Population, generate_dataset


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    """60 patients of the 'public' site (other exposure, framing and noise than the
    training site), DICOM only, with ages, scanners and institutions."""
    root = tmp_path_factory.mktemp("external")
    generate_dataset(root, n_patients=60, images_per_patient=2, seed=21, size=80,
                     difficulty="easy", site="public", png_fraction=0,
                     population=Population())
    return root / "labels.csv"


def test_recalibration_lowers_the_ece_on_a_shifted_external_set(finished_run, external,
                                                                tmp_path, capsys):
    out = tmp_path / "ext.json"
    assert main(["evaluate", str(finished_run.run_dir), "--data", str(external),
                 "--bootstrap", "50", "--recalibrate", "0.4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"recalibrated on \d+ patients, evaluated on \d+: threshold", printed)
    m = json.loads(out.read_text())
    r = m["recalibration"]
    assert r["fit"]["patients"] + r["evaluated"]["patients"] == 60
    assert 0.3 < r["fit"]["patients"] / 60 < 0.5  # the fraction, in whole patients
    assert r["ece_after"] < r["ece_before"], r  # the shifted site's calibration improves
    assert r["before"]["n_images"] == r["after"]["n_images"] == r["evaluated"]["images"]
    page = (finished_run.run_dir / "external-labels.html").read_text()
    assert "page -> " in printed and printed.strip().endswith("external-labels.html")
    for part in ("Internal vs external", "ROC curves overlaid", "before (the run's threshold)",
                 "Subgroups, external", "Subgroups, internal test"):
        assert part in page, part
    assert page.count("data:image/png;base64,") == 1 and "<script" not in page
    assert "SYNTHETIC GENERAL" not in page  # institutions only as site codes


def test_recalibration_without_external_data_or_with_a_bad_fraction_is_refused(
        finished_run, external):
    with pytest.raises(InputError, match="--recalibrate needs --data"):
        reevaluate(finished_run.run_dir, recalibrate=0.4)
    with pytest.raises(InputError, match="between 0 and 1"):
        reevaluate(finished_run.run_dir, data=external, recalibrate=1.5, n_bootstraps=0)
    assert np.isfinite(reevaluate(finished_run.run_dir, data=external,
                                  n_bootstraps=0)["roc_auc"]["value"])
