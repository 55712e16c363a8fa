"""Subgroup figures: counts, paired differences to overall, too-small groups, worst group."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_tl.evaluate import evaluate, subgroup_metrics


def _scores(shift: bool, seed: int = 0):
    """200 patients x 2 images, vendors A/B by patient; B's scores are noise if ``shift``."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(200), 2)
    y = np.repeat(rng.integers(0, 2, 200), 2)
    vendor = np.where(patients % 2 == 0, "A", "B")
    s = 1 / (1 + np.exp(-(2.5 * y - 1.25 + rng.normal(0, 1, 400))))
    if shift:
        s = np.where(vendor == "B", rng.random(400), s)
    return y, s, vendor, patients


def test_a_planted_shift_is_detected_and_a_null_one_is_not():
    for shift in (True, False):
        y, s, vendor, patients = _scores(shift)
        out = subgroup_metrics(y, s, {"manufacturer": vendor}, threshold=0.5,
                               groups=patients, n_bootstraps=300, seed=0)
        b = {g["group"]: g for g in out["attributes"]["manufacturer"]}["B"]
        lo, hi = b["roc_auc_diff"]["ci"]
        if shift:
            assert hi < 0, b["roc_auc_diff"]  # B is worse than overall, and we can tell
            assert out["worst_group_auc"]["group"] == "B"
        else:
            assert lo < 0 < hi, b["roc_auc_diff"]


def test_counts_overall_and_the_paired_difference():
    y, s, vendor, patients = _scores(True)
    out = subgroup_metrics(y, s, {"manufacturer": vendor, "sex": np.where(
        patients < 3, "F", None)}, threshold=0.5, groups=patients, n_bootstraps=100, seed=3)
    m = evaluate(y, s, groups=patients, operating_point="fixed", threshold=0.5,
                 n_bootstraps=100, seed=3)
    for k in ("roc_auc", "sensitivity", "specificity"):  # same figures, same resamples
        assert out["overall"][k]["value"] == pytest.approx(m[k]["value"])
    a = {g["group"]: g for g in out["attributes"]["manufacturer"]}["A"]
    assert a["images"] == 200 and a["patients"] == 100
    assert a["positives"] == int(y[vendor == "A"].sum())
    assert a["roc_auc_diff"]["value"] == pytest.approx(a["roc_auc"]["value"]
                                                       - out["overall"]["roc_auc"]["value"])
    sex = out["attributes"]["sex"]
    assert [g["group"] for g in sex] == ["F", "unknown"]  # unknown last
    assert sex[0]["too_small"] and sex[0]["images"] == 6


def test_only_groups_large_enough_count_for_the_worst_group():
    y = np.tile([0, 1], 30)
    s = np.where(np.arange(60) < 50, y * 0.6 + 0.2, 1 - y)  # the last 10 images: inverted
    site = np.where(np.arange(60) < 50, "big", "small")
    out = subgroup_metrics(y, s, {"site": site}, threshold=0.5, n_bootstraps=0)
    small = {g["group"]: g for g in out["attributes"]["site"]}["small"]
    assert small["too_small"] and small["roc_auc"]["value"] == 0.0
    assert out["worst_group_auc"]["group"] == "big"
    with pytest.raises(ValueError, match="has 3 values for 60 images"):
        subgroup_metrics(y, s, {"site": ["a", "b", "c"]}, threshold=0.5)
