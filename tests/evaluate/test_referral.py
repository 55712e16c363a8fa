"""The referral curve: referring the uncertain cases helps when the uncertainty is real."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_tl.evaluate import referral_curve
from imaging_tl.evaluate.referral import REFERRAL_FRACTIONS


def test_referring_the_cases_an_honest_uncertainty_flags_raises_the_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    hard = rng.random(400) < 0.3  # these cases get noise, and say so
    s = np.where(hard, rng.random(400), np.clip(0.7 * y + 0.3 * rng.random(400), 0, 1))
    honest = referral_curve(y, s, hard + 0.01 * rng.random(400), threshold=0.5)
    blind = referral_curve(y, s, rng.random(400), threshold=0.5)
    assert honest["fraction_referred"] == list(REFERRAL_FRACTIONS)
    assert honest["n_retained"][0] == 400 and honest["n_retained"][-1] == 200
    assert honest["roc_auc"][6] > honest["roc_auc"][0] + 0.1  # 30 % referred: the hard ones
    assert abs(blind["roc_auc"][6] - blind["roc_auc"][0]) < 0.05
    assert honest["sensitivity"][6] >= honest["sensitivity"][0]


def test_ties_and_bad_input():
    y, s = np.array([0, 1, 0, 1]), np.array([0.2, 0.8, 0.6, 0.4])
    c = referral_curve(y, s, np.zeros(4), threshold=0.5, fractions=[0.0, 0.25])
    # all tied: the first case (a negative at 0.2) is referred, leaving 1 of 2 pairs right
    assert c["n_retained"] == [4, 3] and c["roc_auc"] == [0.75, 0.5]
    with pytest.raises(ValueError, match="fractions must be in"):
        referral_curve(y, s, np.zeros(4), threshold=0.5, fractions=[1.0])
    with pytest.raises(ValueError, match="3 uncertainties"):
        referral_curve(y, s, np.zeros(3), threshold=0.5)
