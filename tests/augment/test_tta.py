"""Test-time augmentation: seeded, independent of batching, presets only (no vertical flip)."""

from __future__ import annotations

import numpy as np
import pytest

from imaging_tl.augment import PRESETS, tta_predict


def _images(n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    grey = rng.random((n, 32, 32)).astype(np.float32)
    return np.repeat(grey[..., None], 3, axis=-1)  # radiographs after to_rgb


def _top_half_mean(b: np.ndarray) -> np.ndarray:
    """A 'model' that sees where the bright rows are: a vertical flip would change it."""
    return b[:, :16].mean(axis=(1, 2, 3))[:, None]


def test_the_same_seed_gives_the_same_probabilities_whatever_the_batching():
    x = _images()
    a = tta_predict(_top_half_mean, x, 5, seed=7)
    assert np.array_equal(a, tta_predict(_top_half_mean, x, 5, seed=7))
    # in two chunks, each image keyed by its position: identical
    parts = [tta_predict(_top_half_mean, x[:2], 5, seed=7, index=[0, 1]),
             tta_predict(_top_half_mean, x[2:], 5, seed=7, index=range(2, 6))]
    assert np.array_equal(a, np.concatenate(parts))
    assert not np.array_equal(a, tta_predict(_top_half_mean, x, 5, seed=8))
    plain = _top_half_mean(x).astype(np.float32)
    assert np.array_equal(tta_predict(_top_half_mean, x, 0), plain)
    assert not np.allclose(a, plain)  # the copies do differ from the image


def test_presets_never_flip_vertically():
    for name, transforms in PRESETS.items():
        assert not any("Vertical" in t["name"] or t["name"] == "Transpose"
                       for t in transforms), name
    with pytest.raises(ValueError, match="n must be >= 0"):
        tta_predict(_top_half_mean, _images(), -1)
