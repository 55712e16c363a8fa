"""The report says when its figures rest on a small sample, beside the metrics table."""

from __future__ import annotations

import numpy as np

from imaging_tl import evaluate as ev
from imaging_tl.report import write_report


def test_tiny_test_split_is_flagged_and_a_collapsed_interval_is_not_printed(tmp_path):
    y, s = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])
    m = ev.evaluate(y, s, groups=["a", "b", "c", "d"], operating_point="fixed",
                    class_names=["normal", "nodule"], n_bootstraps=100)
    page = write_report(tmp_path, metrics=m).read_text()
    table = page[page.index("<h2>Test metrics</h2>"):page.index("<h2>Plots</h2>")]
    assert "Small sample" in table
    assert "test split: 2 positive and 2 negative images for nodule (fewer than 10 each)" \
        in table and "test split: 4 patients (fewer than 20)" in table
    assert "too few cases for an interval" in table
    assert "1.000 \u2013 1.000" not in table and "1.000-1.000" not in page


def test_a_large_split_shows_no_caution(tmp_path):
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 30)
    s = np.clip(0.4 * y + 0.6 * rng.random(60), 0, 1)
    m = ev.evaluate(y, s, groups=np.arange(60) // 2, operating_point="fixed",
                    n_bootstraps=100)
    page = write_report(tmp_path, metrics=m).read_text()
    assert "Small sample" not in page and "too few cases" not in page
    lo, hi = m["roc_auc"]["ci"]
    assert f"{lo:.3f} \u2013 {hi:.3f}" in page
