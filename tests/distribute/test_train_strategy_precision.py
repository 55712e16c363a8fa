"""train() in mixed precision (bfloat16 on CPU with a float32 output; float16 with Keras'
loss scaling) and under a strategy (the custom distributed step equals Keras' fit)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from imaging_tl.models import build_transfer_model
from imaging_tl.train import Phase, train


def _build(policy: str) -> keras.Model:
    before = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy(policy)
        return build_transfer_model("efficientnet_lite0", "binary", ["a", "b"], weights=None,
                                    input_size=32, seed=0)
    finally:
        keras.mixed_precision.set_global_policy(before)


def _data(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, 32, 32, 3), dtype=np.float32), np.array([0, 1] * (n // 2))


def test_mixed_bfloat16_trains_on_cpu_with_a_float32_output():
    m = _build("mixed_bfloat16")
    assert keras.mixed_precision.global_policy().name == "float32"  # process unchanged
    assert m.get_layer("head_output").compute_dtype == "float32"
    assert any(layer.compute_dtype == "bfloat16" for layer in m.layers)
    x, y = _data()
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(type(self.model.optimizer).__name__)

    res = train(m, (x, y), (x, y), batch_size=4, callbacks=[Spy()], phases=[
        Phase("head", epochs=1, learning_rate=1e-2),
        Phase("finetune", epochs=1, learning_rate=1e-3, freeze="block6d_add")])
    assert seen == ["Adam", "Adam"]  # bfloat16 has float32's range: no loss scaling
    assert [r["cached_features"] for r in res.history] == [True, False]
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["val_loss"]) for r in res.history)
    out = m(x[:2], training=False)
    assert out.dtype == "float32"
    assert float(keras.ops.max(keras.ops.abs(out - 0.5))) < 0.5  # probabilities


def test_mixed_float16_trains_with_loss_scaling():
    m = _build("mixed_float16")
    assert m.get_layer("head_output").compute_dtype == "float32"
    x, y = _data(8)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(type(self.model.optimizer).__name__)

    res = train(m, (x, y), None, batch_size=4, phases=[Phase("head", epochs=2)],
                callbacks=[Spy()])
    assert seen == ["LossScaleOptimizer"] * 2
    assert all(np.isfinite(r["loss"]) for r in res.history)
    assert m(x[:1]).dtype == "float32"


@pytest.mark.slow  # ~30 s; the default run compares the step with one device in
# tests/distribute/test_distribute.py (two mirrored CPUs) and the two-worker run
def test_the_distributed_step_matches_keras_fit():
    """train() under a (one-device) MirroredStrategy takes the custom distributed step, on
    array inputs with class weights (the generator path): same history and weights as
    Keras' fit without a strategy."""
    import tensorflow as tf

    x, y = _data(10)
    y = np.array([0, 1, 1, 1, 0, 1, 1, 0, 1, 1])  # unbalanced: class weights matter
    phases = [Phase("head", epochs=2, learning_rate=0.05, optimizer="sgd", patience=1),
              Phase("finetune", epochs=1, learning_rate=0.01, optimizer="sgd",
                    freeze="block6d_add")]
    plain = _build("float32")
    ref = train(plain, (x, y), (x, y), batch_size=4, phases=phases, class_weight="balanced")
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        dist = _build("float32")
    res = train(dist, (x, y), (x, y), batch_size=4, phases=phases, class_weight="balanced",
                strategy=strategy)
    for a, b in zip(ref.history, res.history, strict=True):
        assert a["cached_features"] == b["cached_features"]
        for key in ("loss", "val_loss", "val_auc", "accuracy"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
    for a, b in zip(plain.weights, dist.weights, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-5)
