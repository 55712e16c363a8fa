"""Multi-label evaluation with missing labels: every label on its own known rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from imaging_tl import evaluate as ev


def _data(seed: int = 0, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (n, 3)).astype(float)
    s = np.clip(0.35 * y + 0.65 * rng.random((n, 3)), 0, 1)
    y[rng.random((n, 3)) < 0.3] = -1  # about 30% missing, differently per label
    y[rng.random(n) < 0.1, 1] = np.nan  # NaN is missing too
    return y, s


def test_per_label_auc_equals_sklearn_on_known_rows():
    y, s = _data()
    m = ev.multilabel_metrics(y, s, label_names=["a", "b", "c"], n_bootstraps=0)
    for k, name in enumerate("abc"):
        known = np.isfinite(y[:, k]) & (y[:, k] >= 0)
        want = roc_auc_score(y[known, k], s[known, k])
        assert m["roc_auc_per_label"][name]["value"] == pytest.approx(want, abs=1e-12)
        assert m["n_observed"][k] == known.sum()
        assert m["n_missing"][k] == len(y) - known.sum()
        assert m["n_positive"][k] == int((y[known, k] == 1).sum())


def test_missing_rows_do_not_enter_the_value_or_the_bootstrap_ci():
    y, s = _data(1)
    missing = ~(np.isfinite(y) & (y >= 0))
    other = s.copy()
    other[missing] = 1.0 - other[missing]  # scores of missing cells changed wholesale
    groups = np.arange(len(y)) // 2
    a = ev.multilabel_metrics(y, s, groups=groups, n_bootstraps=200, seed=3)
    b = ev.multilabel_metrics(y, other, groups=groups, n_bootstraps=200, seed=3)
    assert a["roc_auc_per_label"] == b["roc_auc_per_label"]
    assert a["roc_auc_macro"] == b["roc_auc_macro"]
    lo, hi = a["roc_auc_per_label"]["label_0"]["ci"]
    assert lo < a["roc_auc_per_label"]["label_0"]["value"] < hi


def test_calibration_and_evaluate_skip_missing_cells():
    y, s = _data(2)
    known = np.isfinite(y) & (y >= 0)
    pooled = ev.reliability_data(y[known], s[known], task="binary", n_bins=5)
    r = ev.reliability_data(y, s, task="multilabel", n_bins=5)
    assert r["ece"] == pytest.approx(pooled["ece"]) and r["count"] == pooled["count"]
    m = ev.evaluate(y[60:], s[60:], task="multilabel", val_true=y[:60], val_score=s[:60],
                    temperature_scaling=True, n_bootstraps=20)
    assert m["n_missing"] == (~known[60:]).sum(axis=0).tolist()
    assert m["calibration"]["temperature"] > 0


def test_a_label_without_known_negatives_is_undefined_not_a_crash():
    y = np.array([[1, 0], [1, -1], [-1, 1], [1, 0]], float)
    s = np.array([[.9, .2], [.3, .9], [.6, .7], [.4, .1]])
    m = ev.multilabel_metrics(y, s, n_bootstraps=20)
    assert m["roc_auc_per_label"]["label_0"]["value"] is None
    assert m["roc_auc_per_label"]["label_1"]["value"] == 1.0
    assert m["roc_auc_macro"]["value"] == 1.0  # macro over the labels that are defined
