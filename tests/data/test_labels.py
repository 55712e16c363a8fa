"""Class weights and per-sample weights: one implementation (data/labels.py)."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_tl.data import class_weights, sample_weights


def test_balanced_class_weights_are_n_over_k_count():
    y = np.array([0, 0, 0, 1], np.float32)
    assert class_weights(y, "binary", "balanced") == {0: 4 / 6, 1: 2.0}
    assert sample_weights(y, "binary", "balanced").tolist() == pytest.approx([4 / 6] * 3 + [2])


def test_multiclass_one_hot_and_sparse_agree_and_absent_classes_weigh_one():
    sparse = np.array([0, 2, 2, 2], np.int32)
    one_hot = np.eye(3, dtype=np.float32)[sparse]
    assert class_weights(sparse, "multiclass", "balanced") == \
        class_weights(one_hot, "multiclass", "balanced")
    assert class_weights(sparse, "multiclass", {2: 0.5}) == {2: 0.5}
    assert sample_weights(sparse, "multiclass", {2: 0.5}).tolist() == [1.0, 0.5, 0.5, 0.5]


def test_no_weights_and_refusals():
    y = np.array([0, 1], np.float32)
    assert class_weights(y, "binary", None) is None and sample_weights(y, "binary", None) is None
    with pytest.raises(ValueError, match="multilabel"):
        class_weights(np.zeros((2, 2)), "multilabel", "balanced")
    with pytest.raises(ValueError, match="expected 'balanced' or a dict"):
        sample_weights(y, "binary", "inverse")
