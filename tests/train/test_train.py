"""Phased training on real ImageNet weights with small inputs (64 x 64)."""

from __future__ import annotations

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf

from imaging_tl.models import build_transfer_model
from imaging_tl.models.transfer import backbone_layers
from imaging_tl.train import Phase, TrainResult, default_phases, train

SIZE = 64


def stripes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generated two-class task: horizontal (0) vs vertical (1) stripes, random period,
    phase, contrast and noise. Float32 RGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    rng.shuffle(y)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    x = np.empty((n, SIZE, SIZE, 3), np.float32)
    for i in range(n):
        coord = xx if y[i] else yy
        period, phase, contrast = rng.uniform(6, 14), rng.uniform(0, 6.3), rng.uniform(0.2, 0.5)
        grey = 0.5 + contrast * np.sin(2 * np.pi * coord / period + phase)
        grey = grey + rng.normal(0, 0.05, grey.shape)
        x[i] = np.clip(grey, 0, 1)[..., None]
    return x, y


@pytest.fixture(scope="module")
def data():
    return stripes(32, seed=0), stripes(16, seed=1)


@pytest.fixture(scope="module")
def shared_model():
    """One model for tests whose assertions do not depend on the head's starting point."""
    return _model()


def _model(seed: int = 0, **kw) -> keras.Model:
    return build_transfer_model("efficientnet_lite0", "binary", ["horizontal", "vertical"],
                                input_size=SIZE, seed=seed, **kw)


def _snapshot(model: keras.Model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [w.numpy().copy() for w in layer.weights]
            for layer in model.layers if layer.weights}


def _changed(before, after) -> set[str]:
    return {name for name in before
            if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name],
                                                             strict=True))}


class CountingFlip:
    """A deterministic stand-in for an Augmenter that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        self.calls += 1
        return image[:, ::-1] if self.calls % 2 else image


def test_phase1_changes_the_head_and_nothing_of_the_backbone(data):
    (x, y), val = data
    model = _model(head={"hidden": (8,)})
    before = _snapshot(model)
    # on-the-fly augmentation: not cached, the frozen base (and its BatchNorm) runs in fit
    flip = CountingFlip()
    result = train(model, (x, y), val, phases=[Phase(epochs=2, learning_rate=1e-2)],
                   batch_size=16, augment=flip)
    changed = _changed(before, _snapshot(model))
    assert changed == {"head_dense_1", "head_output"}
    assert [r["cached_features"] for r in result.history] == [False, False]
    assert flip.calls >= 2 * len(x)  # every epoch sees augmented images


def test_fixed_augmented_views_are_cached(data, shared_model):
    (x, y), val = data
    flip = CountingFlip()
    result = train(shared_model, (x, y), val, phases=[Phase(epochs=3)], batch_size=16,
                   augment=flip, augment_views=2)
    assert flip.calls == 2 * len(x)  # two views computed once, reused over 3 epochs
    assert [r["cached_features"] for r in result.history] == [True] * 3
    with pytest.raises(ValueError, match="augment_views"):
        train(shared_model, (x, y), phases=[Phase(epochs=1)], augment=flip,
              cache_features=True)


def test_phase2_changes_exactly_the_unfrozen_layers(data, tmp_path):
    from imaging_tl.train.checkpoint import load_arrays
    from imaging_tl.train.features import layer_views

    (x, y), val = data
    model = _model()
    train(model, (x, y), val, phases=[Phase(epochs=1, learning_rate=1e-2)], batch_size=16)
    bb = backbone_layers(model)
    names = [layer.name for layer in bb]
    cut = names.index("block6d_add") + 1
    bn = {layer.name for layer in bb if isinstance(layer, keras.layers.BatchNormalization)}
    weighted = {layer.name for layer in bb if layer.weights}

    before = _snapshot(model)
    start = [v.numpy() for v in model.variables]  # the dropout's seed state too
    # a frozen phase after the fine-tune: its checkpoint keeps carrying the tuned layers
    phases = [Phase("finetune", epochs=1, learning_rate=1e-3, freeze="block6d_add"),
              Phase("head", epochs=1, learning_rate=1e-3)]
    whole = train(model, (x, y), val, batch_size=16, phases=phases, checkpoint_dir=tmp_path)
    changed = _changed(before, _snapshot(model))
    expected = (set(names[cut:]) & weighted) - bn
    assert expected  # block7a convs and top_conv
    assert changed - {"head_output"} == expected  # no BatchNorm, nothing below the cut
    assert [r["cached_features"] for r in whole.history] == [False, True]

    with np.load(tmp_path / "last.npz") as z:
        saved = {k.split(":", 1)[1].split("/")[0] for k in z if not k.startswith("opt:")}
    assert expected | {"head_output", "seed_generator"} == saved  # not the frozen layers
    fresh = _model(seed=99)
    for v, w in zip(fresh.variables, start, strict=True):
        v.assign(w)
    load_arrays(fresh, tmp_path / "last.npz")
    for a, b in zip(model.weights, fresh.weights, strict=True):
        np.testing.assert_array_equal(b.numpy(), a.numpy(), err_msg=a.path)

    # the same phases on the boundary's output computed once (cross-validation's shared
    # fine-tune input): the same batches, so the same weights as running the whole model
    other = _model()
    for v, w in zip(other.variables, start, strict=True):
        v.assign(w)
    boundary = ("block6d_add", layer_views(other, "block6d_add", x, 1),
                layer_views(other, "block6d_add", val[0], 1)[0])
    res = train(other, (x, y), val, phases=phases, batch_size=16, boundary=boundary)
    assert [r["cached_features"] for r in res.history] == [True, True]
    for a, b in zip(model.weights, other.weights, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), atol=1e-4, err_msg=a.path)


def test_a_frozen_phase_checkpoints_its_head_only(data, shared_model, tmp_path):
    (x, y), val = data
    train(shared_model, (x, y), val, phases=[Phase(epochs=1, learning_rate=1e-2)],
          batch_size=16, checkpoint_dir=tmp_path)
    with np.load(tmp_path / "last.npz") as z:
        saved = {k.split(":", 1)[1].split("/")[0] for k in z if not k.startswith("opt:")}
    assert saved == {"head_output", "seed_generator"}


@pytest.mark.slow
def test_train_batchnorm_moves_only_unfrozen_batchnorm(data):
    (x, y), _ = data
    model = _model()
    names = [layer.name for layer in backbone_layers(model)]
    cut = names.index("block6d_add") + 1
    weighted = {layer.name for layer in backbone_layers(model) if layer.weights}
    before = _snapshot(model)
    train(model, (x, y), None, batch_size=16,
          phases=[Phase("finetune", epochs=1, learning_rate=1e-3, freeze="block6d_add",
                        train_batchnorm=True)])
    changed = _changed(before, _snapshot(model))
    assert changed - {"head_output"} == set(names[cut:]) & weighted


def test_feature_cache_gives_the_end_to_end_result(data):
    (x, y), val = data
    weights, histories = [], []
    for cache in (False, True):
        model = _model(seed=3, head={"hidden": (16,), "dropout": 0.3})
        r = train(model, (x, y), val, phases=[Phase(epochs=3, learning_rate=5e-3)],
                  batch_size=8, seed=11, cache_features=cache)
        weights.append([w.numpy() for w in model.trainable_weights])
        histories.append(r.history)
    assert [r["cached_features"] for r in histories[1]] == [True] * 3
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for ra, rb in zip(*histories, strict=True):
        for key in ("loss", "val_loss", "val_auc"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-5)


def test_tiny_task_learns_from_pretrained_features(data):
    (x, y), (xv, yv) = data
    model = _model(seed=5)
    result = train(model, (x, y), (xv, yv), phases=[Phase(epochs=6, learning_rate=1e-2)],
                   batch_size=8)
    assert result.history[-1]["val_accuracy"] >= 0.9 or result.best[0]["value"] >= 0.95
    accuracy = np.mean((model.predict(xv, verbose=0)[:, 0] > 0.5) == yv)
    assert accuracy >= 0.9


def test_early_stopping_and_best_weights(data, shared_model):
    (x, y), val = data
    model = shared_model
    result = train(model, (x, y), val, batch_size=16,
                   phases=[Phase(epochs=10, learning_rate=1e-12, patience=1)])
    assert len(result.history) == 3  # best at 1, no improvement at 2 and 3 -> stop
    assert result.best[0]["stopped_early"] and result.best[0]["epoch"] == 1
    assert result.best[0]["monitor"] == "val_auc"


def test_checkpoints_and_resume(data, tmp_path):
    (x, y), val = data

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    # both phases frozen (cached features) to stay fast; resume logic is the same
    phases = [Phase(epochs=3, learning_rate=1e-2), Phase("second", epochs=1, learning_rate=1e-3)]
    model = _model()
    with pytest.raises(KeyboardInterrupt):
        train(model, (x, y), val, phases=phases, batch_size=16, checkpoint_dir=tmp_path,
              callbacks=[Crash()])
    assert (tmp_path / "last.npz").is_file() and (tmp_path / "state.json").is_file()

    fresh = _model(seed=99)  # weights come from the checkpoint
    result = train(fresh, (x, y), val, phases=phases, batch_size=16, checkpoint_dir=tmp_path,
                   resume=True)
    assert [(r["phase"], r["epoch"]) for r in result.history] == [(0, 1), (0, 2), (0, 3),
                                                                  (1, 1)]
    with pytest.raises(ValueError, match="checkpoint_dir"):
        train(fresh, (x, y), phases=phases, resume=True)


def test_resume_reproduces_the_uninterrupted_run(data, tmp_path):
    # issue 22 class 10: optimiser state, dropout seed state and data order come back
    (x, y), val = data

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    phases = [Phase(epochs=3, learning_rate=1e-2), Phase("second", epochs=1, learning_rate=1e-3)]
    whole = train(_model(), (x, y), val, phases=phases, batch_size=16,
                  checkpoint_dir=tmp_path / "a")
    ref = [v.numpy() for v in whole_model_weights(tmp_path / "a")]
    with pytest.raises(KeyboardInterrupt):
        train(_model(), (x, y), val, phases=phases, batch_size=16,
              checkpoint_dir=tmp_path / "b", callbacks=[Crash()])
    fresh = _model(seed=99)
    resumed = train(fresh, (x, y), val, phases=phases, batch_size=16,
                    checkpoint_dir=tmp_path / "b", resume=True)
    assert resumed.optimizer_restored is True
    for a, b in zip(ref, [v.numpy() for v in fresh.weights], strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=0)
    assert [r["val_loss"] for r in resumed.history] == pytest.approx(
        [r["val_loss"] for r in whole.history], abs=1e-5)
    assert [(b["phase"], b["epoch"]) for b in resumed.best] == \
        [(b["phase"], b["epoch"]) for b in whole.best]
    # resuming a finished phase keeps its best epoch in the result (run.json best_epochs:
    # the pipeline checkpoints each phase in its own folder)
    again = train(_model(seed=7), (x, y), val, phases=phases, batch_size=16,
                  checkpoint_dir=tmp_path / "b", resume=True)
    assert [(b["phase"], b["epoch"]) for b in again.best] == [(1, whole.best[1]["epoch"])]


def whole_model_weights(ckdir):
    """The final weights of a finished train() call, from its checkpoint (last.npz)."""
    m = _model(seed=5)
    from imaging_tl.train.checkpoint import load_arrays

    load_arrays(m, ckdir / "last.npz")
    return m.weights


def test_multiclass_multilabel_and_class_weights(data):
    (x, y), _ = data
    mc = build_transfer_model("efficientnet_lite0", "multiclass", 3, input_size=SIZE)
    y3 = np.arange(len(x)) % 3
    r = train(mc, (x, y3), (x, y3), phases=[Phase(epochs=1)], batch_size=16,
              class_weight="balanced")
    assert np.isfinite(r.history[0]["loss"]) and "val_accuracy" in r.history[0]

    ml = build_transfer_model("efficientnet_lite0", "multilabel", ["a", "b"], input_size=SIZE)
    ym = np.stack([y, 1 - y], axis=1).astype(np.float32)
    ym[::3, 1] = np.nan
    ym[::5, 0] = -1
    r = train(ml, (x, ym), (x, ym), phases=[Phase(epochs=2, learning_rate=1e-2)],
              batch_size=16)
    assert np.isfinite(r.history[-1]["val_loss"]) and r.best[0]["monitor"] == "val_loss"
    with pytest.raises(ValueError, match="multilabel"):
        train(ml, (x, ym), phases=[Phase(epochs=1)], class_weight="balanced")


def test_tf_data_input_cached(data, shared_model):
    (x, y), (xv, yv) = data
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    vds = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(16)
    r = train(shared_model, ds, vds, phases=[Phase(epochs=2)], cache_features=True)
    assert r.history[0]["cached_features"] is True
    assert np.isfinite(r.history[-1]["val_loss"]) and r.feature_seconds > 0


def test_bad_input_is_named(data, shared_model):
    (x, y), _ = data
    with pytest.raises(ValueError, match="train_data: 32 images but 3 labels"):
        train(shared_model, (x, y[:3]), phases=[Phase(epochs=1)])
    with pytest.raises(ValueError, match=r"train_data: images must be \(N, H, W, 3\)"):
        train(shared_model, (x[..., 0], y), phases=[Phase(epochs=1)])
    with pytest.raises(ValueError, match="imaging_tl_contract"):
        train(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), (x, y))
    with pytest.raises(ValueError, match="schedule"):
        Phase(schedule="linear")


def test_schedules_and_default_phases(tmp_path):
    p = Phase(epochs=4, learning_rate=1.0, schedule="cosine", warmup_epochs=0)
    assert [p.lr_at(e) for e in range(4)] == pytest.approx([1.0, 0.8535534, 0.5, 0.1464466])
    w = Phase(epochs=4, learning_rate=1.0, warmup_epochs=2)
    assert [w.lr_at(e) for e in range(3)] == pytest.approx([0.1, 0.55, 1.0])
    assert Phase(learning_rate=1.0, schedule="step", step_epochs=2).lr_at(5) == 0.25
    phases = default_phases("efficientnet_lite0", unfreeze_stages=2)
    assert [ph.freeze for ph in phases] == ["all", "block5c_add"]
    assert phases[1].learning_rate < phases[0].learning_rate

    r = TrainResult([{"phase": 0, "epoch": 1, "loss": 0.5},
                     {"phase": 1, "epoch": 1, "loss": 0.4, "val_auc": 0.9}])
    with open(r.to_csv(tmp_path / "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["val_auc"] == "0.9" and rows[0]["val_auc"] == ""


@pytest.mark.slow
def test_features_are_recomputed_after_the_backbone_changed(data):
    (x, y), (xv, yv) = data
    model = _model()
    result = train(model, (x, y), (xv, yv), batch_size=16, phases=[
        Phase(epochs=1, learning_rate=1e-2),
        Phase("finetune", epochs=1, learning_rate=1e-3, freeze="block6d_add"),
        Phase("head again", epochs=1, learning_rate=1e-3)])
    assert [r["cached_features"] for r in result.history] == [True, False, True]
    # the last phase's validation loss must be that of the current backbone
    current = model.evaluate(xv, yv, verbose=0, return_dict=True)["loss"]
    assert result.history[-1]["val_loss"] == pytest.approx(current, rel=1e-4)
