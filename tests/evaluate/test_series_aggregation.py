"""One aggregation for patients and series: hand-computed cases, and series-level metrics
with a planted positive series and patient-bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_tl.evaluate import evaluate
from imaging_tl.evaluate.aggregation import aggregate_by_group, aggregate_scores

SCORES = [0.1, 0.5, 0.9, 0.2, 0.4]  # group 0: 0.1 0.5 0.9; group 1: 0.2 0.4
CODES = [0, 0, 0, 1, 1]


@pytest.mark.parametrize("how, top_k, expected", [
    ("max", 3, [0.9, 0.4]),
    ("mean", 3, [0.5, 0.3]),
    ("top_k_mean", 2, [0.7, 0.3]),          # (0.9 + 0.5) / 2; group 1 has only 2
    ("top_k_mean", 1, [0.9, 0.4]),          # top-1 is the max
    ("noisy_or", 3, [1 - 0.9 * 0.5 * 0.1, 1 - 0.8 * 0.6]),  # 0.955, 0.52
])
def test_each_rule_by_hand(how, top_k, expected):
    got = aggregate_scores(SCORES, CODES, 2, how, top_k).ravel()
    assert got == pytest.approx(expected, abs=1e-12)


def test_noisy_or_of_a_certain_slice_is_certain_and_multiclass_renormalises():
    assert aggregate_scores([1.0, 0.3], [0, 0], 1, "noisy_or").item() == 1.0
    y, s, _ = aggregate_by_group([2, 2], [[0.2, 0.2, 0.6], [0.5, 0.3, 0.2]], ["a", "a"],
                                 task="multiclass", how="top_k_mean", top_k=1)
    assert s[0] == pytest.approx([0.5 / 1.4, 0.3 / 1.4, 0.6 / 1.4]) and y.tolist() == [2]
    with pytest.raises(ValueError, match="noisy_or"):
        aggregate_by_group([0], [[0.5, 0.5]], ["a"], task="multiclass", how="noisy_or")
    with pytest.raises(ValueError, match="expected one of"):
        aggregate_scores([0.5], [0], 1, "median")


def _series_data(rng, n_series, positive):
    """Slices of ``n_series`` series (2 per patient), 6 slices each; a positive series has
    two high slices among low ones."""
    y, s, series, patients = [], [], [], []
    for k in range(n_series):
        pos = k in positive
        scores = rng.uniform(0.0, 0.3, 6)
        if pos:
            scores[2:4] = rng.uniform(0.8, 0.9, 2)
        y += [int(pos)] * 6
        s += scores.tolist()
        series += [f"s{k}"] * 6
        patients += [f"p{k // 2}"] * 6
    return np.array(y), np.array(s), np.array(series), np.array(patients)


def test_series_level_metrics_with_a_planted_positive_series():
    rng = np.random.default_rng(0)
    y, s, ser, pat = _series_data(rng, 12, positive={1, 4, 6, 9})
    vy, vs, vser, vpat = _series_data(rng, 8, positive={0, 3, 5})
    m = evaluate(y, s, groups=pat, val_true=vy, val_score=vs, val_groups=vpat,
                 aggregate="max", units=ser, val_units=vser, n_bootstraps=200, seed=1)
    assert m["level"] == "series" and m["n_series"] == 12 and m["n_patients"] == 6
    assert m["n_images"] == 72 and m["bootstrap"]["resampling"] == "patient"
    assert m["roc_auc"]["value"] == 1.0  # the planted series rank first by their max
    assert m["sample_size"]["test"]["patients"] == 6
    # the mean dilutes two positive slices of six: still separable here, but lower scores
    mean = evaluate(y, s, groups=pat, val_true=vy, val_score=vs, val_groups=vpat,
                    aggregate="mean", units=ser, val_units=vser, n_bootstraps=0)
    assert mean["operating_point"]["threshold"] < m["operating_point"]["threshold"]
    slice_level = evaluate(y, s, groups=pat, val_true=vy, val_score=vs, val_groups=vpat,
                           n_bootstraps=0)
    assert slice_level["level"] == "image" and slice_level["roc_auc"]["value"] < 1.0
