"""The transfer model: flat graph, head, freezing, normalisation, masked loss, save/load."""

from __future__ import annotations

import json
import zipfile

import keras
import numpy as np
import pytest

from imaging_tl.models import build_transfer_model, get_spec
from imaging_tl.models.contract import CONTRACT_ENTRY, ModelContract, read_contract
from imaging_tl.models.custom_objects import InputNormalization, MaskedBinaryCrossentropy
from imaging_tl.models.transfer import (
    backbone_layers,
    feature_extractor,
    head_model,
    load_transfer_model,
    save_transfer_model,
    set_freeze,
)
from imaging_tl.stages.normalize import get_scheme

SIZE = 32


@pytest.fixture(scope="module")
def random_model():
    """Random-weight Lite0 transfer model (shape/freeze tests do not need ImageNet)."""
    return build_transfer_model("efficientnet_lite0", "binary", ["normal", "abnormal"],
                                weights=None, input_size=SIZE, head={"hidden": (16, 8)})


def test_flat_graph_with_named_layers(random_model):
    names = [layer.name for layer in random_model.layers]
    assert names[:3] == ["image", "input_normalization", "stem_conv"]
    assert names[-5:] == ["head_pool", "head_dense_1", "head_dense_2", "head_dropout",
                          "head_output"]
    assert not any(isinstance(layer, keras.Model) for layer in random_model.layers)
    assert set(get_spec("efficientnet_lite0").freeze_points) <= set(names)
    assert random_model.input_shape == (None, SIZE, SIZE, 3)
    assert random_model.get_layer("head_dropout").rate == pytest.approx(0.2)


@pytest.mark.parametrize("task, classes, units, activation", [
    ("binary", 2, 1, "sigmoid"),
    ("multiclass", ["a", "b", "c"], 3, "softmax"),
    ("multilabel", 4, 4, "sigmoid"),
])
def test_task_outputs(task, classes, units, activation):
    m = build_transfer_model("efficientnet_lite0", task, classes, weights=None, input_size=SIZE,
                             head={"dropout": 0.0})
    out = m.get_layer("head_output")
    assert out.units == units and out.activation.__name__ == activation
    p = np.asarray(m(np.random.default_rng(0).random((2, SIZE, SIZE, 3), np.float32)))
    assert p.shape == (2, units) and np.all((p >= 0) & (p <= 1))
    if task == "multiclass":
        np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-5)
    assert m.imaging_tl_contract.task == task
    assert len(m.imaging_tl_contract.label_names) == (2 if task == "binary" else units)


@pytest.mark.parametrize("kwargs, match", [
    ({"task": "regression"}, "task="),
    ({"classes": 3}, "binary task has 2"),
    ({"classes": ["a", "a"]}, "duplicate"),
    ({"freeze": "no_such_layer"}, "freeze points"),
    ({"freeze": 1.5}, "fraction"),
    ({"head": {"pooling": "median"}}, "pooling"),
    ({"head": {"units": 3}}, "unknown keys"),
    ({"head": {"dropout": 1.0}}, "dropout"),
])
def test_bad_arguments_name_the_parameter(kwargs, match):
    args = {"backbone": "efficientnet_lite0", "task": "binary", "classes": 2,
            "weights": None, "input_size": SIZE, **kwargs}
    with pytest.raises(ValueError, match=match):
        build_transfer_model(**args)


def test_freeze_settings(random_model):
    bb = backbone_layers(random_model)
    bn = [layer for layer in bb if isinstance(layer, keras.layers.BatchNormalization)]
    heads = [layer for layer in random_model.layers if layer.name.startswith("head_")]

    set_freeze(random_model, "all")
    assert not any(layer.trainable for layer in bb)
    assert all(layer.trainable for layer in heads)

    set_freeze(random_model, "none")
    assert all(layer.trainable for layer in bb if layer not in bn)
    assert not any(layer.trainable for layer in bn)  # frozen BatchNorm by default

    n = set_freeze(random_model, "block5c_add")
    names = [layer.name for layer in bb]
    assert n == names.index("block5c_add") + 1
    assert not any(layer.trainable for layer in bb[:n])
    assert all(layer.trainable for layer in bb[n:] if layer not in bn)

    set_freeze(random_model, "block5c_add", train_batchnorm=True)
    assert all(layer.trainable for layer in bb[n:])
    assert not any(layer.trainable for layer in bb[:n])

    n = set_freeze(random_model, 0.5)
    assert n == round(0.5 * len(bb))
    set_freeze(random_model, "all")


def test_input_normalization_matches_the_stage_constants():
    x = np.random.default_rng(1).random((2, 4, 4, 3), np.float32)
    for name in ("efficientnet_lite", "caffe", "imagenet", "minus_one_one", "zero_255"):
        s = get_scheme(name)
        layer = InputNormalization(name, s.mean, s.std, s.bgr)
        np.testing.assert_allclose(np.asarray(layer(x)), s.apply(x), rtol=1e-5, atol=1e-4)


def test_model_normalises_inside(lite0_backbone):
    m = build_transfer_model("efficientnet_lite0", "binary", 2, input_size=SIZE)
    x = np.random.default_rng(2).random((2, SIZE, SIZE, 3), np.float32)
    feats = np.asarray(feature_extractor(m)(x))
    expected = np.asarray(lite0_backbone((x * 255 - 127) / 128)).mean(axis=(1, 2))
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-5)


def test_head_model_shares_the_head(random_model):
    x = np.random.default_rng(3).random((3, SIZE, SIZE, 3), np.float32)
    h = head_model(random_model)
    assert h.get_layer("head_output") is random_model.get_layer("head_output")
    np.testing.assert_allclose(np.asarray(h(feature_extractor(random_model)(x))),
                               np.asarray(random_model(x)), rtol=1e-5, atol=1e-6)


def test_masked_loss_ignores_missing_labels():
    loss = MaskedBinaryCrossentropy()
    p = np.array([[0.8, 0.3, 0.6]], np.float32)
    full = float(loss(np.array([[1, 0, 1]], np.float32), p))
    np.testing.assert_allclose(full, -np.mean(np.log([0.8, 0.7, 0.6])), rtol=1e-5)
    missing = float(loss(np.array([[1, -1, np.nan]], np.float32), p))
    np.testing.assert_allclose(missing, -np.log(0.8), rtol=1e-5)
    none = float(loss(np.array([[-1, -1, -1]], np.float32), p))
    assert none == 0.0
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, MaskedBinaryCrossentropy)


def test_save_load_identical_predictions_and_contract(tmp_path):
    m = build_transfer_model("efficientnet_lite0", "multilabel", ["a", "b", "c"],
                             input_size=SIZE, head={"hidden": (8,)})
    m.compile(optimizer="adam", loss=MaskedBinaryCrossentropy())
    m.imaging_tl_contract.threshold = 0.3
    m.imaging_tl_contract.preprocessing = {"stages": [{"name": "Resize", "size": SIZE}]}
    x = np.random.default_rng(4).random((4, SIZE, SIZE, 3), np.float32)
    expected = m.predict(x, verbose=0)
    path = tmp_path / "run" / "model.keras"
    beside = save_transfer_model(m, path)
    assert beside == path.with_name("contract.json")
    with zipfile.ZipFile(path) as zf:
        inside = json.loads(zf.read(CONTRACT_ENTRY))
    assert inside == json.loads(beside.read_text())
    assert inside["label_names"] == ["a", "b", "c"] and inside["threshold"] == 0.3
    assert inside["input_size"] == [SIZE, SIZE] and inside["normalization"] == "efficientnet_lite"

    loaded = load_transfer_model(path)  # plain keras.models.load_model, no custom_objects
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    assert loaded.imaging_tl_contract == m.imaging_tl_contract
    beside.unlink()
    assert read_contract(path).threshold == 0.3  # from inside the file

    with pytest.raises(ValueError, match=".keras"):
        save_transfer_model(m, tmp_path / "model.h5")
    with pytest.raises(FileNotFoundError):
        load_transfer_model(tmp_path / "missing.keras")


def test_contract_checks_batches():
    c = ModelContract("efficientnet_lite0", "binary", ["a", "b"], [SIZE, SIZE],
                      "efficientnet_lite")
    c.check_batch(np.zeros((1, SIZE, SIZE, 3), np.float32))
    with pytest.raises(ValueError, match="expects"):
        c.check_batch(np.zeros((1, SIZE, SIZE), np.float32))
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        c.check_batch(np.full((1, SIZE, SIZE, 3), 200.0, np.float32))


def test_keras_application_backbone_is_flat_too():
    m = build_transfer_model("mobilenet_v2", "multiclass", 3, weights=None, input_size=96,
                             freeze="block_12_add")
    names = [layer.name for layer in m.layers]
    assert names[:3] == ["image", "input_normalization", "Conv1"]
    assert not any(isinstance(layer, keras.Model) for layer in m.layers)
    assert m.get_layer("input_normalization").scheme == "minus_one_one"
    bb = backbone_layers(m)
    cut = [layer.name for layer in bb].index("block_12_add") + 1
    assert not any(layer.trainable for layer in bb[:cut])
    assert m.get_layer("block_15_expand").trainable
