"""Domain-pretrained weights files through the real loading path.

RadImageNet ships whole tf.keras models saved as HDF5 (``model_weights/<layer>/<layer>/
kernel:0``); torchxrayvision's DenseNet121 as a torch state dict (once re-saved as one).
The tests write files of those layouts (same layer names and shapes, random values), load
them with ``build_backbone(name, weights=path)`` / the config keys, and check that every
weight arrived bit-identically and that the backbone's normalisation scheme is applied.
"""

from __future__ import annotations

import re

import h5py
import numpy as np
import pytest

from imaging_tl.config import load_config
from imaging_tl.models import WeightsFileError, build_backbone, build_transfer_model, get_spec
from imaging_tl.models.keras_apps import WeightsUnavailableError, keras_weights_file
from imaging_tl.models.weights.domain import domain_weights_dir, xrv_key_map
from imaging_tl.models.weights.integrity import sha256_of
from imaging_tl.models.weights.torch_pickle import UnsafePickleError
from imaging_tl.models.weights.torch_writer import write_torch_state_dict
from imaging_tl.stages.normalize import get_scheme

_AUTO = re.compile(r"^(conv2d|batch_normalization|activation|max_pooling2d|"
                   r"average_pooling2d|concatenate)(_\d+)?$")
_TF2_DENSENET_STEM = {"conv1_conv": "conv1/conv", "conv1_bn": "conv1/bn",
                      "conv1_relu": "conv1/relu"}


def tf2_names(model, densenet: bool) -> list[str]:
    """The layer names tf.keras 2 gave the same architecture in a fresh session."""
    counts: dict[str, int] = {}
    names = []
    for layer in model.layers:
        m = _AUTO.match(layer.name)
        if m:
            n = counts.get(m.group(1), 0)
            counts[m.group(1)] = n + 1
            names.append(m.group(1) + (f"_{n}" if n else ""))
        else:
            names.append(_TF2_DENSENET_STEM.get(layer.name, layer.name) if densenet
                         else layer.name)
    return names


def randomize(model, seed: int = 0) -> list[list[np.ndarray]]:
    """Random weights (variances positive) in every layer; returns them in layer order."""
    rng = np.random.default_rng(seed)
    out = []
    for layer in model.layers:
        if not layer.weights:
            continue
        values = [np.abs(rng.standard_normal(tuple(w.shape))).astype("float32") + 0.5
                  if "variance" in w.name else
                  rng.standard_normal(tuple(w.shape)).astype("float32") for w in layer.weights]
        layer.set_weights(values)
        out.append(values)
    return out


def write_tf2_h5(path, model, densenet: bool = False) -> None:
    """A whole-model tf.keras 2 HDF5 file of ``model``'s weights (RadImageNet's layout)."""
    names = tf2_names(model, densenet)
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.6.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = b'{"class_name": "Functional", "config": {}}'
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [n.encode() for n in names]
        g.attrs["backend"] = b"tensorflow"
        g.attrs["keras_version"] = b"2.6.0"
        for layer, name in zip(model.layers, names, strict=True):
            lg = g.require_group(name)
            weight_names = [f"{name}/{w.name}:0" for w in layer.weights]
            lg.attrs["weight_names"] = [w.encode() for w in weight_names]
            for wn, w in zip(weight_names, layer.weights, strict=True):
                lg.create_dataset(wn, data=np.asarray(w.numpy()))


def assert_backbone_weights(model, expected: list[list[np.ndarray]]) -> None:
    got = [[w.numpy() for w in layer.weights] for layer in model.layers
           if layer.weights and not layer.name.startswith("head_")]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        for a, b in zip(g, e, strict=True):
            np.testing.assert_array_equal(a, b)  # bit-identical


@pytest.fixture(scope="module")
def radimagenet_resnet50(tmp_path_factory):
    """A file of RadImageNet-ResNet50_notop.h5's layout with random values."""
    path = tmp_path_factory.mktemp("radimagenet") / "RadImageNet-ResNet50_notop.h5"
    source = build_backbone("resnet50", weights=None, input_shape=(32, 32, 3))
    values = randomize(source)
    write_tf2_h5(path, source)
    return path, values


def test_radimagenet_file_loads_bit_identically_with_its_scheme(radimagenet_resnet50):
    path, values = radimagenet_resnet50
    with h5py.File(path) as f:  # the layout the other tools read: model_weights/l/l/kernel:0
        assert f["model_weights/conv1_conv/conv1_conv/kernel:0"].shape == (7, 7, 3, 64)
    model = build_backbone("radimagenet_resnet50", weights=path, input_shape=(32, 32, 3))
    assert_backbone_weights(model, values)

    spec = get_spec("radimagenet_resnet50")
    assert spec.normalization == "radimagenet" and spec.feature_dim == 2048
    net = build_transfer_model("radimagenet_resnet50", "binary", 2, weights=path,
                               input_size=32, weights_sha256=sha256_of(path))
    assert net.imaging_tl_contract.normalization == "radimagenet"
    assert_backbone_weights(net, values)  # built on the normalised tensor: same weights
    import keras

    x = np.random.default_rng(1).random((1, 32, 32, 3)).astype("float32")
    normed = keras.Model(net.input, net.get_layer("input_normalization").output)(x)
    # RadImageNet: caffe on [0, 255], then / 255 -> BGR(x) - mean / 255
    expected = x[..., ::-1] - np.array([103.939, 116.779, 123.68], np.float32) / 255
    np.testing.assert_allclose(np.asarray(normed), expected, atol=1e-6)
    np.testing.assert_allclose(get_scheme("radimagenet").apply(x[0]), expected[0], atol=1e-6)


def test_config_keys_pin_the_file(radimagenet_resnet50, tmp_path):
    path, values = radimagenet_resnet50
    digest = sha256_of(path)
    cfg = load_config({"data": {"folder": str(tmp_path)}, "task": {"type": "binary"},
                       "model": {"backbone": "radimagenet_resnet50", "weights": str(path),
                                 "weights_sha256": digest, "normalization": "radimagenet",
                                 "input_size": 32}})
    assert cfg.model.normalization == "radimagenet"
    # what the pipeline's build step does with those keys
    net = build_transfer_model(cfg.model.backbone, "binary", 2, weights=cfg.model.weights,
                               input_size=32, weights_sha256=cfg.model.weights_sha256)
    assert_backbone_weights(net, values)
    wrong = "0" * 64
    with pytest.raises(WeightsFileError) as err:
        build_backbone("radimagenet_resnet50", weights=path, weights_sha256=wrong,
                       input_shape=(32, 32, 3))
    assert str(path) in str(err.value) and wrong in str(err.value) and digest in str(err.value)
    with pytest.raises(ValueError, match="weights_sha256"):
        load_config({"data": {"folder": str(tmp_path)},
                     "model": {"weights": str(path), "weights_sha256": digest[:8]}})


def test_missing_domain_file_says_what_to_download_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGING_TL_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(WeightsFileError) as err:
        build_backbone("radimagenet_densenet121", input_shape=(32, 32, 3))
    msg = str(err.value)
    assert "RadImageNet-DenseNet121_notop.h5" in msg and "BMEII-AI/RadImageNet" in msg
    assert str(tmp_path / "cache" / "weights" / "RadImageNet-DenseNet121_notop.h5") in msg
    assert "model.weights" in msg and "model.weights_sha256" in msg
    with pytest.raises(WeightsFileError, match="RadImageNet-IRV2_notop.h5"):
        build_backbone("radimagenet_inception_resnet_v2", weights=tmp_path / "nope.h5")


def test_default_place_and_wrong_backbone(radimagenet_resnet50, tmp_path, monkeypatch):
    path, values = radimagenet_resnet50
    monkeypatch.setenv("IMAGING_TL_CACHE_DIR", str(tmp_path))
    domain_weights_dir().mkdir(parents=True)
    (domain_weights_dir() / path.name).write_bytes(path.read_bytes())
    model = build_backbone("radimagenet_resnet50", input_shape=(32, 32, 3))  # "imagenet"
    assert_backbone_weights(model, values)
    with pytest.raises(WeightsFileError, match="set model.backbone: radimagenet_resnet50"):
        build_backbone("resnet50", weights=path, input_shape=(32, 32, 3))
    other = tmp_path / "other.h5"
    other.write_bytes(path.read_bytes())
    with pytest.raises(WeightsFileError, match="holds weights for 106 layers"):
        build_backbone("mobilenet_v2", weights=other, input_shape=(32, 32, 3))


def test_radimagenet_densenet121_tf2_names_load_by_order(tmp_path):
    path = tmp_path / "RadImageNet-DenseNet121_notop.h5"
    source = build_backbone("densenet121", weights=None, input_shape=(32, 32, 3))
    values = randomize(source, seed=3)
    write_tf2_h5(path, source, densenet=True)
    with h5py.File(path) as f:  # tf.keras 2 named DenseNet's stem conv1/conv
        assert "model_weights/conv1/conv/conv1/conv/kernel:0" in f
    model = build_backbone("radimagenet_densenet121", weights=path, input_shape=(32, 32, 3))
    assert_backbone_weights(model, values)


def xrv_state_dict(rng) -> dict[str, np.ndarray]:
    """torchxrayvision DenseNet121's state dict: same names and shapes, random values."""
    sd: dict[str, np.ndarray] = {}

    def conv(prefix, out, inp, k):
        sd[f"{prefix}.weight"] = rng.standard_normal((out, inp, k, k)).astype("float32")

    def bn(prefix, c):
        for k in ("weight", "bias", "running_mean"):
            sd[f"{prefix}.{k}"] = rng.standard_normal(c).astype("float32")
        sd[f"{prefix}.running_var"] = rng.random(c).astype("float32") + 0.5
        sd[f"{prefix}.num_batches_tracked"] = np.int64(1000)

    conv("features.conv0", 64, 1, 7)
    bn("features.norm0", 64)
    c = 64
    for b, n in enumerate((6, 12, 24, 16), start=1):
        for i in range(1, n + 1):
            p = f"features.denseblock{b}.denselayer{i}"
            bn(f"{p}.norm1", c)
            conv(f"{p}.conv1", 128, c, 1)
            bn(f"{p}.norm2", 128)
            conv(f"{p}.conv2", 32, 128, 3)
            c += 32
        if b < 4:
            bn(f"features.transition{b}.norm", c)
            conv(f"features.transition{b}.conv", c // 2, c, 1)
            c //= 2
    bn("features.norm5", c)
    sd["classifier.weight"] = rng.standard_normal((18, c)).astype("float32")
    sd["classifier.bias"] = np.zeros(18, "float32")
    return sd


def test_xrv_densenet121_state_dict_converts_bit_identically(tmp_path):
    sd = xrv_state_dict(np.random.default_rng(5))
    path = write_torch_state_dict(tmp_path / "xrv-densenet121-res224-all.pt", sd)
    model = build_backbone("xrv_densenet121", weights=path, input_shape=(32, 32, 3))
    for layer, (prefix, kind) in xrv_key_map().items():
        got = model.get_layer(layer).get_weights()
        if kind == "bn":
            for a, k in zip(got, ("weight", "bias", "running_mean", "running_var"), strict=True):
                np.testing.assert_array_equal(a, sd[f"{prefix}.{k}"])
        elif kind == "conv":
            np.testing.assert_array_equal(got[0], sd[f"{prefix}.weight"].transpose(2, 3, 1, 0))
        else:  # the grey stem spread over RGB: same response to a grey image
            k = sd[f"{prefix}.weight"].transpose(2, 3, 1, 0)
            np.testing.assert_array_equal(got[0], np.repeat(k / np.float32(3), 3, axis=2))
            np.testing.assert_allclose(got[0].sum(axis=2), k[:, :, 0], rtol=1e-5, atol=1e-6)
    assert len(xrv_key_map()) == len([la for la in model.layers if la.weights])
    spec = get_spec("xrv_densenet121")
    assert spec.normalization == "xrv"
    grey = np.array([0.0, 0.5, 1.0], np.float32)
    assert get_scheme("xrv").apply(grey).tolist() == [-1024.0, 0.0, 1024.0]


def test_xrv_whole_pickled_model_is_refused_with_the_conversion(tmp_path):
    import zipfile

    path = tmp_path / "xrv.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02ctorchxrayvision.models\nDenseNet\n)\x81.")
    with pytest.raises(UnsafePickleError, match="state_dict"):
        build_backbone("xrv_densenet121", weights=path, input_shape=(32, 32, 3))


def test_inception_backbones_are_registered_offline():
    for name, size, dim in (("inception_v3", 299, 2048), ("inception_resnet_v2", 299, 1536)):
        spec = get_spec(name)
        assert (spec.input_size, spec.feature_dim, spec.normalization) == (size, dim,
                                                                           "minus_one_one")
        assert get_spec(f"radimagenet_{name}").freeze_points == spec.freeze_points
    m = build_backbone("inception_v3", weights=None, input_shape=(75, 75, 3))
    names = [la.name for la in m.layers]
    points = get_spec("inception_v3").freeze_points
    assert [names.index(p) for p in points] == sorted(names.index(p) for p in points)
    assert m.output_shape[-1] == 2048
    url, local = keras_weights_file("inception_v3", include_top=False)
    if local.exists():
        pytest.skip(f"{local} exists: Keras would not download")
    try:
        build_backbone("inception_v3", weights="imagenet", input_shape=(75, 75, 3))
    except WeightsUnavailableError as exc:
        assert url in str(exc) and str(local) in str(exc)
    else:
        pytest.skip("this machine has internet access; the offline error cannot be observed")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["inception_v3", "inception_resnet_v2"])
def test_radimagenet_inception_files_load_bit_identically(tmp_path, arch):
    tag = {"inception_v3": "InceptionV3", "inception_resnet_v2": "IRV2"}[arch]
    path = tmp_path / f"RadImageNet-{tag}_notop.h5"
    source = build_backbone(arch, weights=None, input_shape=(75, 75, 3))
    values = randomize(source, seed=7)
    write_tf2_h5(path, source)
    model = build_backbone(f"radimagenet_{arch}", weights=path, input_shape=(75, 75, 3))
    assert_backbone_weights(model, values)
