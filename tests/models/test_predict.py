"""fast_predict: one traced function per model, the last batch padded to one shape."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from imaging_tl.models import build_transfer_model, fast_predict
from imaging_tl.models.predict import PREDICT_FN_ATTRIBUTE

SIZE = 32


@pytest.fixture(scope="module")
def model():
    return build_transfer_model("efficientnet_lite0", "multiclass", ["a", "b", "c"],
                                weights=None, input_size=SIZE)


def test_same_numbers_as_calling_the_model(model):
    x = np.random.default_rng(0).random((7, SIZE, SIZE, 3), np.float32)
    out = fast_predict(model, x, batch_size=3)  # batches of 3, 3 and 1 (padded to 3)
    assert out.shape == (7, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.asarray(model(x, training=False)), rtol=1e-5,
                               atol=1e-6)
    # a float64 list in, float32 out
    again = fast_predict(model, x.astype(np.float64).tolist(), batch_size=4)
    np.testing.assert_allclose(again, out, rtol=1e-5, atol=1e-6)


def test_one_trace_for_every_call(model):
    x = np.random.default_rng(1).random((5, SIZE, SIZE, 3), np.float32)
    fast_predict(model, x, batch_size=2)
    fn = getattr(model, PREDICT_FN_ATTRIBUTE)
    fast_predict(model, x[:1], batch_size=8)
    assert getattr(model, PREDICT_FN_ATTRIBUTE) is fn
    assert fn.experimental_get_tracing_count() == 1


def test_empty_input_keeps_the_output_width(model):
    out = fast_predict(model, np.zeros((0, SIZE, SIZE, 3), np.float32))
    assert out.shape == (0, 3) and out.dtype == np.float32
    # batch_size=len(x) is how the Keras engine calls it; 0 must not break the loop
    assert fast_predict(model, np.zeros((0, SIZE, SIZE, 3)), batch_size=0).shape == (0, 3)
    with pytest.raises(ValueError, match="batch_size=0"):
        fast_predict(model, np.zeros((2, SIZE, SIZE, 3)), batch_size=0)


def test_any_keras_model():
    inputs = keras.Input((4,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(fast_predict(plain, x, batch_size=2), np.asarray(plain(x)),
                               rtol=1e-6)
