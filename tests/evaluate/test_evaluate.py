"""Metrics against hand-computed values, bootstrap behaviour, calibration, aggregation."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from imaging_tl import evaluate as ev

# A small table worked out by hand.
#   score : .10 .20 .35 .40 .60 .65 .80 .90
#   label :  0   0   1   0   1   0   1   1
Y = np.array([0, 0, 1, 0, 1, 0, 1, 1])
S = np.array([0.10, 0.20, 0.35, 0.40, 0.60, 0.65, 0.80, 0.90])


def test_binary_metrics_hand_computed():
    m = ev.binary_metrics(Y, S, threshold=0.5, n_bootstraps=0)
    # pairs (pos, neg) with pos > neg: .35>{.1,.2}=2, .6>{.1,.2,.4}=3, .8 and .9 > all 4 -> 13/16
    assert m["roc_auc"]["value"] == pytest.approx(13 / 16)
    # AP: ranks from the top: .9 P(1/1) .8 P(2/2) .65 N .6 P(3/4) .4 N .35 P(4/6)
    assert m["pr_auc"]["value"] == pytest.approx((1 + 1 + 3 / 4 + 4 / 6) / 4)
    # threshold .5 -> predicted positive: .6 .65 .8 .9 -> TP 3, FP 1, FN 1, TN 3
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]
    for k in ("sensitivity", "specificity", "ppv", "npv", "accuracy", "f1"):
        assert m[k]["value"] == pytest.approx(0.75), k
    assert m["roc_auc"]["ci"] == [None, None]  # no bootstrap asked for


def test_thresholds_hand_computed():
    # Youden: at .6 sens 3/4 spec 3/4 (J=.5); at .35 sens 4/4 spec 2/4 (J=.5); at .8
    # sens 2/4 spec 4/4 (J=.5): ties -> first (highest) threshold reaching the max J.
    assert ev.choose_threshold(Y, S) == pytest.approx(0.8)
    # sensitivity >= .75 first reached at .6 (3 of 4 positives at or above)
    assert ev.choose_threshold(Y, S, "sensitivity", target_sensitivity=0.75) == 0.6
    assert ev.choose_threshold(Y, S, "sensitivity", target_sensitivity=1.0) == 0.35
    assert ev.choose_threshold(Y, S, "fixed", threshold=0.3) == 0.3
    with pytest.raises(ValueError, match="operating_point"):
        ev.choose_threshold(Y, S, "best")
    with pytest.raises(ValueError, match="both classes"):
        ev.choose_threshold([1, 1], [0.2, 0.3])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_forms_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60), 1)  # many ties
    w = rng.integers(0, 4, (5, 60)).astype(float)
    auc = ev.weighted_roc_auc(y, s, w)
    ap = ev.weighted_average_precision(y, s, w)
    for b in range(5):
        assert auc[b] == pytest.approx(roc_auc_score(y, s, sample_weight=w[b]))
        assert ap[b] == pytest.approx(average_precision_score(y, s, sample_weight=w[b]))


def test_weighted_auc_undefined_without_a_class():
    w = np.zeros((1, 8))
    w[0, Y == 1] = 1
    assert np.isnan(ev.weighted_roc_auc(Y, S, w)[0])


def test_multiclass_hand_computed():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([
        [0.7, 0.2, 0.1],
        [0.4, 0.5, 0.1],  # class 0 predicted 1
        [0.2, 0.7, 0.1],
        [0.1, 0.8, 0.1],
        [0.1, 0.2, 0.7],
        [0.6, 0.1, 0.3],  # class 2 predicted 0
    ])
    m = ev.multiclass_metrics(y, p, class_names=["a", "b", "c"], n_bootstraps=0)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["balanced_accuracy"]["value"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["accuracy"]["value"] == pytest.approx(4 / 6)
    # class a vs rest: positives .7 .4 ; negatives .2 .1 .1 .6 -> (4 + 3)/8
    assert m["roc_auc_per_class"]["a"]["value"] == pytest.approx(7 / 8)
    # class c vs rest: positives .7 .3 ; negatives .1 .1 .1 .1 -> 8/8
    assert m["roc_auc_per_class"]["c"]["value"] == pytest.approx(1.0)
    per = [m["roc_auc_per_class"][k]["value"] for k in "abc"]
    assert m["roc_auc_macro"]["value"] == pytest.approx(np.mean(per))
    onehot = np.eye(3)[y]
    assert m["roc_auc_micro"]["value"] == pytest.approx(roc_auc_score(onehot, p, average="micro"))


def test_multiclass_bootstrap_ci_brackets_point():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 150)
    logits = rng.normal(0, 1, (150, 3)) + 1.5 * np.eye(3)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = ev.multiclass_metrics(y, p, n_bootstraps=300)
    for key in ("roc_auc_macro", "roc_auc_micro", "balanced_accuracy", "accuracy"):
        lo, hi = m[key]["ci"]
        assert lo < m[key]["value"] < hi, key


def test_multilabel_ignores_missing_labels():
    y = np.array([[1, 0], [0, -1], [1, 1], [0, np.nan], [1, 0], [0, 1]])
    p = np.array([[.9, .2], [.3, .99], [.6, .7], [.4, .0], [.2, .5], [.5, .8]])
    m = ev.multilabel_metrics(y, p, label_names=["effusion", "nodule"], n_bootstraps=200)
    # label 1 observed rows 0, 2, 4, 5: positives .7 .8, negatives .2 .5 -> 1.0
    assert m["roc_auc_per_label"]["nodule"]["value"] == 1.0
    assert m["n_observed"] == [6, 4]
    # label 0: positives .9 .6 .2, negatives .3 .4 .5: 2*3 + 0 = 6/9
    assert m["roc_auc_per_label"]["effusion"]["value"] == pytest.approx(6 / 9)
    assert m["roc_auc_macro"]["value"] == pytest.approx((1 + 6 / 9) / 2)
    # the missing rows' scores (.99, .0) would change label 1's AUC if they were used
    assert roc_auc_score([0, 0, 1, 0, 0, 1], p[:, 1]) != 1.0


def test_ece_hand_computed():
    # bins [0, .5], (.5, 1]: bin 1 conf .2 obs 0; bin 2 conf (.6+.7+.9)/3 obs 2/3
    r = ev.reliability_data([0, 1, 0, 1], [0.2, 0.6, 0.7, 0.9], n_bins=2)
    expected = (1 * 0.2 + 3 * abs(2 / 3 - 2.2 / 3)) / 4
    assert r["ece"] == pytest.approx(expected)
    assert r["count"] == [1, 3]
    assert r["observed"][1] == pytest.approx(2 / 3)
    # multiclass: top-label confidence vs accuracy
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    r = ev.reliability_data([0, 1, 1], p, task="multiclass", n_bins=5)
    # bin (.8, 1]: .9 right -> |1 - .9|; bin (.6, .8]: .8 wrong, .7 right -> conf .75 acc .5
    assert r["ece"] == pytest.approx((1 * 0.1 + 2 * 0.25) / 3)


def test_temperature_scaling_recovers_and_keeps_ranking():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(int)
    p = 1 / (1 + np.exp(-2.0 * z))  # over-confident by a factor 2
    t = ev.fit_temperature(y, p)
    assert t == pytest.approx(2.0, rel=0.1)
    q = ev.apply_temperature(p, t)
    assert roc_auc_score(y, q) == pytest.approx(roc_auc_score(y, p))
    assert ev.expected_calibration_error(y, q) < ev.expected_calibration_error(y, p) / 3
    # multiclass: probabilities stay a distribution
    pm = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    qm = ev.apply_temperature(pm, 3.0, task="multiclass")
    assert np.allclose(qm.sum(1), 1) and np.all(qm.argmax(1) == pm.argmax(1))
    with pytest.raises(ValueError, match="temperature"):
        ev.apply_temperature(p, 0.0)


def test_aggregate_by_group_max_and_mean():
    y = [0, 1, 0, 0, -1]
    s = [0.2, 0.9, 0.1, 0.3, 0.5]
    g = ["p2", "p2", "p1", "p1", "p3"]
    ya, sa, keys = ev.aggregate_by_group(y[:4], s[:4], g[:4], how="max")
    assert keys.tolist() == ["p1", "p2"] and ya.tolist() == [0, 1]
    assert sa.tolist() == [0.3, 0.9]
    _, sm, _ = ev.aggregate_by_group(y[:4], s[:4], g[:4], how="mean")
    assert sm == pytest.approx([0.2, 0.55])
    # multilabel: missing stays missing unless an image of the patient has the label
    yl = np.array([[1, -1], [0, -1], [-1, 0], [0, 1]])
    ya, _, _ = ev.aggregate_by_group(yl, np.zeros((4, 2)), ["a", "a", "b", "b"],
                                     task="multilabel")
    assert ya.tolist() == [[1, -1], [0, 1]]


def test_aggregate_multiclass_conflict_does_not_name_patients():
    p = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError) as err:
        ev.aggregate_by_group([0, 1], p, ["SMITH^JOHN", "SMITH^JOHN"], task="multiclass")
    assert "SMITH" not in str(err.value) and "1 patient" in str(err.value)


def test_group_weights_keep_patients_together():
    g = np.repeat(np.arange(10), 3)
    w = ev.bootstrap_weights(30, 50, groups=g, seed=0)
    assert np.all(w.reshape(50, 10, 3).std(axis=2) == 0)
    assert np.all(w.sum(axis=1) == 30)  # 10 patients of 3 images each are drawn


def _binormal(rng, n_pos, n_neg, d):
    return (np.r_[np.ones(n_pos), np.zeros(n_neg)].astype(int),
            np.r_[rng.normal(d, 1, n_pos), rng.normal(0, 1, n_neg)])


def test_bootstrap_ci_covers_true_auc_at_nominal_rate():
    """Binormal scores, d = 1: true AUC = Phi(d / sqrt 2). 95% CIs cover it ~95% of the time."""
    rng = np.random.default_rng(42)
    d = 1.0
    true_auc = norm.cdf(d / math.sqrt(2))
    reps, covered = 200, 0
    for r in range(reps):
        y, s = _binormal(rng, 60, 60, d)
        m = ev.binary_metrics(y, s, 0.5, n_bootstraps=400, seed=r, curves=False)
        lo, hi = m["roc_auc"]["ci"]
        covered += lo <= true_auc <= hi
    rate = covered / reps
    # percentile bootstrap is slightly liberal at n=120; binomial SE at 200 reps ~ 0.015
    assert 0.88 <= rate <= 0.99, rate


def test_patient_resampling_is_wider_than_image_resampling():
    """20 patients x 15 near-identical images: images are not independent evidence."""
    rng = np.random.default_rng(0)
    n_pat, per = 20, 15
    lab = np.r_[np.ones(n_pat // 2), np.zeros(n_pat // 2)].astype(int)
    pat_score = rng.normal(lab * 1.0, 1.0)
    y = np.repeat(lab, per)
    s = np.repeat(pat_score, per) + rng.normal(0, 0.05, n_pat * per)
    g = np.repeat(np.arange(n_pat), per)
    img = ev.binary_metrics(y, s, 0.5, n_bootstraps=500, curves=False)
    pat = ev.binary_metrics(y, s, 0.5, groups=g, n_bootstraps=500, curves=False)
    w_img = np.diff(img["roc_auc"]["ci"])[0]
    w_pat = np.diff(pat["roc_auc"]["ci"])[0]
    assert img["roc_auc"]["value"] == pat["roc_auc"]["value"]
    assert w_pat > 2.0 * w_img, (w_img, w_pat)


def test_evaluate_binary_uses_validation_threshold_and_is_json():
    rng = np.random.default_rng(1)
    yv, sv = _binormal(rng, 40, 60, 1.5)
    yt, st = _binormal(rng, 40, 60, 1.5)
    sv, st = 1 / (1 + np.exp(-sv)), 1 / (1 + np.exp(-st))
    g = np.repeat(np.arange(50), 2)
    m = ev.evaluate(yt, st, groups=g, val_true=yv, val_score=sv, n_bootstraps=200,
                    operating_point="sensitivity", target_sensitivity=0.9,
                    temperature_scaling=True)
    text = json.dumps(m, allow_nan=False)
    assert json.loads(text)["task"] == "binary"
    op = m["operating_point"]
    assert op["chosen_on"] == "validation" and op["validation_sensitivity"] >= 0.9
    assert m["bootstrap"]["resampling"] == "patient" and m["n_patients"] == 50
    assert m["calibration"]["temperature"] > 0
    assert "ece_calibrated" in m["calibration"]
    # the chosen threshold is the one applied to test
    assert m["threshold"] == op["threshold"]
    tn, fp = m["confusion_matrix"][0]
    assert m["specificity"]["value"] == pytest.approx(tn / (tn + fp))
    curves = m["curves"]
    lo, hi = np.array(curves["roc"]["band_low"]), np.array(curves["roc"]["band_high"])
    assert len(lo) == len(curves["grid"]) == 101 and np.all(lo <= hi + 1e-12)
    assert 0 <= curves["operating_point"]["fpr"] <= 1


def test_evaluate_refuses_to_fit_on_test():
    with pytest.raises(ValueError, match="validation"):
        ev.evaluate(Y, S)
    with pytest.raises(ValueError, match="validation"):
        ev.evaluate(Y, S, operating_point="fixed", temperature_scaling=True)
    m = ev.evaluate(Y, S, operating_point="fixed", threshold=0.5, n_bootstraps=0)
    assert m["operating_point"]["chosen_on"] == "fixed"


def test_evaluate_patient_level_aggregation():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.6, 0.2, 0.9, 0.3, 0.4])
    g = ["a", "a", "b", "b", "c", "d"]
    m = ev.evaluate(y, s, groups=g, aggregate="max", operating_point="fixed",
                    threshold=0.5, n_bootstraps=0)
    # patients: a (0, .6) b (1, .9) c (0, .3) d (1, .4) -> AUC: .9>all, .4>.3 only -> 3/4
    assert m["level"] == "patient" and m["n"] == 4
    assert m["roc_auc"]["value"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="groups"):
        ev.evaluate(y, s, aggregate="max", operating_point="fixed")


def test_evaluate_multiclass_and_multilabel_json():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 60)
    p = rng.dirichlet(np.ones(3), 60)
    m = ev.evaluate(y, p, task="multiclass", class_names=["a", "b", "c"],
                    val_true=y, val_score=p, temperature_scaling=True, n_bootstraps=50)
    json.dumps(m, allow_nan=False)
    assert set(m["roc_auc_per_class"]) == {"a", "b", "c"}
    yl = rng.integers(-1, 2, (60, 2))
    m = ev.evaluate(yl, rng.random((60, 2)), task="multilabel", n_bootstraps=50)
    json.dumps(m, allow_nan=False)
    assert m["class_names"] == ["label_0", "label_1"]


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="task"):
        ev.evaluate(Y, S, task="regression")
    with pytest.raises(ValueError, match="0 or 1"):
        ev.binary_metrics([0, 2], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="rows"):
        ev.binary_metrics([0, 1, 1], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="class_names"):
        ev.multiclass_metrics([0, 1], np.eye(2), class_names=["a"])
    with pytest.raises(ValueError, match="NaN"):
        ev.binary_metrics([0, 1], [0.1, np.nan], 0.5)
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        ev.binary_metrics([0, 1], np.zeros((2, 3)), 0.5)
    # Keras' (n, 1) sigmoid output and a two-column softmax are accepted as they come
    a = ev.binary_metrics(Y, S[:, None], 0.5, n_bootstraps=0)["roc_auc"]["value"]
    b = ev.binary_metrics(Y, np.c_[1 - S, S], 0.5, n_bootstraps=0)["roc_auc"]["value"]
    assert a == b == pytest.approx(13 / 16)


def test_evaluate_predictions_csv(tmp_path):
    rng = np.random.default_rng(2)
    n = 80
    lab = rng.integers(0, 2, n)
    df = pd.DataFrame({
        "path": [f"img{i}.dcm" for i in range(n)],
        "split": np.where(np.arange(n) < 40, "val", "test"),
        "group": np.arange(n) // 2,
        "label": np.where(lab == 1, "pneumonia", "normal"),
        "prob_pneumonia": np.clip(lab * 0.3 + rng.random(n) * 0.7, 0, 1),
    })
    path = tmp_path / "predictions.csv"
    df.to_csv(path, index=False)
    m = ev.evaluate_predictions(path, task="binary", class_names=["normal", "pneumonia"],
                                n_bootstraps=100)
    test = df[df.split == "test"]
    assert m["roc_auc"]["value"] == pytest.approx(
        roc_auc_score(test.label == "pneumonia", test.prob_pneumonia))
    assert m["bootstrap"]["resampling"] == "patient"
    assert m["operating_point"]["chosen_on"] == "validation"
    with pytest.raises(ValueError, match="prob_effusion"):
        ev.evaluate_predictions(df, task="binary", class_names=["normal", "effusion"])


def test_patient_bootstrap_covers_clustered_auc_where_image_bootstrap_fails():
    """Patients with 5 correlated images each: only the patient bootstrap keeps coverage."""
    rng = np.random.default_rng(7)
    d, sd_img, n_pat, per = 1.0, 0.3, 40, 5
    # all (pos, neg) pairs come from different patients: AUC = P(u+ + e > u- + e')
    true_auc = norm.cdf(d / math.sqrt(2 * (1 + sd_img**2)))
    reps = 120
    cover = {"image": 0, "patient": 0}
    for r in range(reps):
        lab = (np.arange(n_pat) % 2).astype(int)
        u = rng.normal(d * lab, 1.0)
        y = np.repeat(lab, per)
        s = np.repeat(u, per) + rng.normal(0, sd_img, n_pat * per)
        g = np.repeat(np.arange(n_pat), per)
        for kind, groups in (("image", None), ("patient", g)):
            lo, hi = ev.binary_metrics(y, s, 0.5, groups=groups, n_bootstraps=250, seed=r,
                                       curves=False)["roc_auc"]["ci"]
            cover[kind] += lo <= true_auc <= hi
    rate = {k: v / reps for k, v in cover.items()}
    # percentile intervals from 40 clusters run a little liberal (~0.92 here)
    assert 0.85 <= rate["patient"] <= 0.99, rate
    assert rate["image"] < 0.75, rate


def test_weight_blocks_do_not_depend_on_block_size():
    from imaging_tl.evaluate import weight_blocks

    g = np.arange(50) // 3
    for groups in (None, g):
        small = np.concatenate(list(weight_blocks(50, 37, groups=groups, seed=3,
                                                   max_cells=120)))
        whole = ev.bootstrap_weights(50, 37, groups=groups, seed=3)
        assert small.shape == (37, 50) and np.array_equal(small, whole)


def test_single_class_test_set_gives_null_auc_not_a_crash():
    m = ev.evaluate(np.zeros(10, int), np.linspace(0, 1, 10), operating_point="fixed",
                    threshold=0.5, n_bootstraps=50)
    assert m["roc_auc"] == {"value": None, "ci": [None, None]}
    assert m["specificity"]["value"] == 0.5 and m["sensitivity"]["value"] is None
    assert "curves" not in m
    json.dumps(m, allow_nan=False)


def test_temperature_only_changes_the_calibration_section():
    """The threshold must stay on the model's own scale: the saved contract applies it there."""
    rng = np.random.default_rng(4)
    yv, sv = _binormal(rng, 50, 50, 1.0)
    yt, st = _binormal(rng, 50, 50, 1.0)
    sv, st = 1 / (1 + np.exp(-3 * sv)), 1 / (1 + np.exp(-3 * st))  # over-confident
    kw = dict(val_true=yv, val_score=sv, n_bootstraps=50)
    plain = ev.evaluate(yt, st, **kw)
    scaled = ev.evaluate(yt, st, temperature_scaling=True, **kw)
    assert scaled["threshold"] == plain["threshold"]
    assert scaled["roc_auc"] == plain["roc_auc"]
    assert scaled["calibration"]["temperature"] > 1.5
    assert scaled["calibration"]["ece_calibrated"] < scaled["calibration"]["ece"]
    y = rng.integers(0, 3, 90)
    p = rng.dirichlet(np.ones(3) * 0.5, 90)
    a = ev.evaluate(y, p, task="multiclass", val_true=y, val_score=p, n_bootstraps=0)
    b = ev.evaluate(y, p, task="multiclass", val_true=y, val_score=p, n_bootstraps=0,
                    temperature_scaling=True)
    assert a["roc_auc_per_class"] == b["roc_auc_per_class"]
