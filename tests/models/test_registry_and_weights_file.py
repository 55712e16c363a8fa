"""Registry and the restricted .pth reader: no TensorFlow needed."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imaging_tl.data.cache import default_cache_dir as cache_dir
from imaging_tl.models import UnknownBackboneError, WeightsFileError, get_spec, list_backbones
from imaging_tl.models.efficientnet_lite import lite_block_plan
from imaging_tl.models.weights.lite import lite_weights_source
from imaging_tl.models.weights.torch_pickle import UnsafePickleError, read_legacy_state_dict
from imaging_tl.stages.normalize import SCHEMES


def test_registry_lists_required_backbones_with_known_schemes():
    names = list_backbones()
    for n in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
              "efficientnet_b0", "resnet50", "densenet121", "mobilenet_v2", "inception_v3",
              "inception_resnet_v2", "radimagenet_resnet50", "radimagenet_densenet121",
              "radimagenet_inception_v3", "radimagenet_inception_resnet_v2",
              "xrv_densenet121"):
        assert n in names
        spec = get_spec(n)
        assert spec.normalization in SCHEMES
        assert len(spec.freeze_points) >= 5
    assert [get_spec(f"efficientnet_lite{i}").input_size for i in range(3)] == [224, 240, 260]


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(UnknownBackboneError, match="did you mean 'efficientnet_lite0'"):
        get_spec("efficientnet_lite00")
    with pytest.raises(KeyError):
        get_spec("vgg16")


def test_block_plans_match_the_shipped_state_dicts():
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        sd = read_legacy_state_dict(lite_weights_source(name))
        plan = lite_block_plan(name)
        assert len(plan) == len({k.split(".")[1] for k in sd if k.startswith("_blocks.")})
        for b in plan:
            w = sd[f"_blocks.{b.index}._project_conv.weight"]
            assert w.shape[:2] == (b.filters_out, b.filters_in * b.expansion)
            assert sd[f"_blocks.{b.index}._depthwise_conv.weight"].shape[2] == b.kernel


def test_reader_returns_float_arrays_with_torch_layout():
    sd = read_legacy_state_dict(lite_weights_source("efficientnet_lite0"))
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_fc.weight"].shape == (1000, 1280)
    assert sd["_bn0.num_batches_tracked"].dtype == np.int64
    var = sd["_bn0.running_var"]
    assert var.min() >= 0 and var.max() > 1  # real statistics (dead channels have 0)


def _legacy_file(path: Path, payload: bytes) -> Path:
    buf = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(obj, buf, protocol=2)
    buf.write(payload)
    pickle.dump([], buf, protocol=2)
    path.write_bytes(buf.getvalue())
    return path


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_reader_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    evil = _legacy_file(tmp_path / "evil.pth", pickle.dumps(_RunsCommand(marker), protocol=2))
    with pytest.raises(UnsafePickleError, match="system"):
        read_legacy_state_dict(evil)
    assert not marker.exists()


@pytest.mark.parametrize("obj", [
    __import__("collections").Counter(a=1),
    np.zeros(3),
    Path("x"),
])
def test_reader_refuses_any_other_class(tmp_path, obj):
    f = _legacy_file(tmp_path / "other.pth", pickle.dumps(obj, protocol=2))
    with pytest.raises(UnsafePickleError, match="refusing to unpickle"):
        read_legacy_state_dict(f)


def test_reader_checks_sha256_prefix_and_truncation(tmp_path):
    data = lite_weights_source("efficientnet_lite0").read_bytes()
    renamed = tmp_path / "efficientnet-lite0-deadbeef.pth"
    renamed.write_bytes(data)
    with pytest.raises(WeightsFileError, match="sha256"):
        read_legacy_state_dict(renamed)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsFileError, match="truncated"):
        read_legacy_state_dict(cut)
    with pytest.raises(WeightsFileError, match="not found"):
        read_legacy_state_dict(tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a pickle")
    with pytest.raises(WeightsFileError):
        read_legacy_state_dict(garbage)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("IMAGING_TL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "imaging_tl"
    monkeypatch.setenv("IMAGING_TL_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"


def test_importing_models_does_not_import_tensorflow():
    code = ("import sys, imaging_tl.models as m; m.list_backbones(); "
            "m.get_spec('resnet50'); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_each_family_declares_its_own_entries():
    from imaging_tl.models import efficientnet_lite, keras_apps, normalization_scheme

    assert [s.name for s in efficientnet_lite.SPECS] == [f"efficientnet_lite{i}" for i in range(3)]
    domain = list(keras_apps.DOMAIN_WEIGHTS)
    assert [s.name for s in keras_apps.SPECS] == list(keras_apps.KERAS_APPLICATIONS) + domain
    assert {keras_apps.architecture_of(n) for n in domain} <= set(keras_apps.KERAS_APPLICATIONS)
    assert list_backbones() == [s.name for s in (*efficientnet_lite.SPECS, *keras_apps.SPECS)]
    assert {s.family for s in efficientnet_lite.SPECS} == {"efficientnet_lite"}
    assert {s.family for s in keras_apps.SPECS} == {"keras_applications"}
    assert normalization_scheme("ResNet-50".replace("-", "")) == "caffe"
    with pytest.raises(UnknownBackboneError):
        normalization_scheme("vgg16")


def test_importing_the_registry_does_not_import_tensorflow():
    code = ("import sys, imaging_tl.models.registry; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False False"
