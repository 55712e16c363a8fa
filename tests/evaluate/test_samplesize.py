"""Small-sample honesty: the exact thresholds, and intervals that cannot be formed."""

from __future__ import annotations

import numpy as np

from imaging_tl import evaluate as ev
from imaging_tl.evaluate.samplesize import NO_INTERVAL, small_sample_notes, split_counts


def _counts(pos: int, neg: int, patients: int) -> dict:
    return {"images": pos + neg, "patients": patients,
            "classes": {"nodule": {"positives": pos, "negatives": neg}}}


def test_thresholds_are_exact_fewer_than_10_10_20():
    assert small_sample_notes(_counts(10, 10, 20)) == []
    assert small_sample_notes(_counts(9, 10, 20)) == [
        "test split: 9 positive images for nodule (fewer than 10)"]
    assert small_sample_notes(_counts(10, 9, 20)) == [
        "test split: 9 negative images for nodule (fewer than 10)"]
    assert small_sample_notes(_counts(10, 10, 19)) == ["test split: 19 patients (fewer than 20)"]
    assert small_sample_notes(_counts(10, 10, None)) == []  # no patient key: not counted


def test_four_test_images_print_no_interval_and_a_caution():
    # the case: a perfect AUC on 4 test images printed "1.000 (95% CI 1.000-1.000)"
    y, s = np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8])
    m = ev.evaluate(y, s, groups=["a", "b", "c", "d"], val_true=y, val_score=s,
                    val_groups=["e", "f", "g", "h"], class_names=["normal", "nodule"],
                    n_bootstraps=200)
    text = ev.format_estimate(m["roc_auc"])
    assert text == f"1.000 ({NO_INTERVAL})" and "1.000-1.000" not in text
    assert m["sample_size"]["test"] == {"images": 4, "patients": 4, "classes": {
        "nodule": {"positives": 2, "negatives": 2}}}
    assert m["small_sample"] == [
        "test split: 2 positive and 2 negative images for nodule (fewer than 10 each)",
        "test split: 4 patients (fewer than 20)",
        "validation split: 2 positive and 2 negative images for nodule (fewer than 10 each)",
        "validation split: 4 patients (fewer than 20)"]


def test_multiclass_counts_each_class_against_the_rest_and_patient_level_counts_patients():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [30, 30, 8])
    s = rng.dirichlet(np.ones(3), len(y))
    m = ev.evaluate(y, s, task="multiclass", groups=np.arange(len(y)) // 2,
                    class_names=["a", "b", "c"], n_bootstraps=50)
    assert m["small_sample"] == ["test split: 8 positive images for c (fewer than 10)"]
    agg = ev.evaluate(y, s, task="multiclass", groups=np.arange(len(y)) // 2,
                      class_names=["a", "b", "c"], n_bootstraps=0, aggregate="mean")
    assert agg["sample_size"]["test"]["patients"] == 34
    assert "test split: 4 positive patients for c (fewer than 10)" in agg["small_sample"]


def test_a_large_enough_split_has_no_caution_and_a_real_interval():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 40)
    s = np.clip(0.3 * y + 0.7 * rng.random(80), 0, 1)
    m = ev.evaluate(y, s, groups=np.arange(80) // 2, operating_point="fixed",
                    n_bootstraps=200)
    assert m["small_sample"] == []
    assert "95% CI" in ev.format_estimate(m["roc_auc"])
    assert split_counts([[1, -1], [0, 1]], "multilabel", class_names=["x", "y"])[
        "classes"]["y"] == {"positives": 1, "negatives": 0}
