"""Normalize and the scheme table; Pipeline config, YAML, fingerprint; the stage registry."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

import imaging_tl.models.registry  # noqa: F401 - lets Normalize take backbone names
from imaging_tl import __version__, read_scan
from imaging_tl.io import Scan
from imaging_tl.stages import (
    CLAHE,
    CenterCrop,
    Color,
    CropForeground,
    MultiWindow,
    Normalize,
    PadToSquare,
    Pipeline,
    Resize,
    Stack,
    ToGrey,
    ToRGB,
    Window,
    get_scheme,
    list_schemes,
    list_stages,
    stage_from_config,
)

RGB = np.array([[[0.0, 0.5, 1.0]]], np.float32)


def test_schemes_match_the_published_formulas():
    x255 = RGB * 255
    lite = Normalize("efficientnet_lite")(RGB)
    np.testing.assert_allclose(lite, (x255 - 127) / 128, atol=1e-6)
    np.testing.assert_allclose(
        Normalize("imagenet")(RGB),
        (RGB - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225],
        atol=1e-5,
    )
    np.testing.assert_allclose(Normalize("minus_one_one")(RGB), RGB * 2 - 1, atol=1e-6)
    np.testing.assert_allclose(Normalize("zero_255")(RGB), x255, atol=1e-4)
    # Keras "caffe": RGB -> BGR, then subtract the BGR ImageNet means (in 0..255)
    caffe = x255[..., ::-1] - [103.939, 116.779, 123.68]
    np.testing.assert_allclose(Normalize("caffe")(RGB), caffe, atol=1e-4)
    assert get_scheme("caffe").bgr and not get_scheme("imagenet").bgr
    assert list_schemes() == ["caffe", "efficientnet_lite", "imagenet", "minus_one_one",
                              "radimagenet", "xrv", "zero_255"]


@pytest.mark.parametrize(
    ("backbone", "scheme"),
    [
        ("efficientnet_lite0", "efficientnet_lite"),
        ("efficientnet_lite2", "efficientnet_lite"),
        ("efficientnet_b0", "zero_255"),
        ("resnet50", "caffe"),
        ("densenet121", "imagenet"),
        ("mobilenet_v2", "minus_one_one"),
    ],
)
def test_backbone_names_use_the_declared_scheme(backbone, scheme):
    stage = Normalize(backbone)
    assert stage.resolved == scheme
    assert get_scheme(backbone) == get_scheme(scheme)
    np.testing.assert_array_equal(stage(RGB), Normalize(scheme)(RGB))
    assert stage.to_config() == {"name": "normalize", "scheme": backbone}


def test_normalize_importing_backbone_registry_stays_tf_free():
    code = (
        "import sys, imaging_tl.models; from imaging_tl.stages import Normalize;"
        "Normalize('efficientnet_lite0'); print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_the_model_registry_only_scheme_names_are_accepted(monkeypatch):
    # stages never import models: backbone names work once the model registry, on import,
    # has registered its lookup; without it the error says so and still suggests schemes
    import imaging_tl.stages.normalize as normalize

    monkeypatch.setattr(normalize, "_backbones", None)
    assert Normalize("imagenet").resolved == "imagenet"
    with pytest.raises(ValueError, match=r"unknown scheme or backbone 'efficientnet_lite0' "
                                         r"\(did you mean 'efficientnet_lite'\?\).*"
                                         r"import imaging_tl.models"):
        Normalize("efficientnet_lite0")


def test_the_registry_registers_itself_on_import():
    code = (
        "import imaging_tl.stages.normalize as n; import imaging_tl.models.registry as r;"
        "print(n.resolve_scheme_name('densenet121'), r.normalization_scheme('densenet121'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["imagenet", "imagenet"]


def test_backbone_names_are_resolved_case_insensitively_by_the_registry():
    assert Normalize("EfficientNet-Lite0").resolved == "efficientnet_lite"
    with pytest.raises(ValueError, match=r"backbones: efficientnet_lite0, "):
        Normalize("vgg16")


def test_normalize_errors():
    with pytest.raises(ValueError, match=r"unknown scheme or backbone 'imagenett' \(did you mean"):
        Normalize("imagenett")
    with pytest.raises(ValueError, match=r"Normalize: image must be in \[0, 1\].*Window first"):
        Normalize("imagenet")(RGB * 255)
    hu = np.random.default_rng(0).uniform(-1000, 1000, (224, 224, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"Normalize: image must be in \[0, 1\]"):
        Normalize("efficientnet_lite0")(hu)
    with pytest.raises(ValueError, match=r"needs 3 channels"):
        Normalize("imagenet")(np.zeros((4, 4), np.float32))
    # channel-uniform schemes work on grey images
    assert Normalize("efficientnet_lite")(np.ones((2, 2), np.float32))[0, 0] == pytest.approx(1)
    assert Normalize("imagenet", check_range=False)(RGB * 2).shape == RGB.shape


def _typical():
    return Pipeline([Window(preset="lung"), Resize(224), ToRGB(), Normalize("efficientnet_lite0")])


def test_pipeline_runs_the_stages_in_order():
    ct = np.random.default_rng(0).uniform(-1024, 2000, (300, 200)).astype(np.float32)
    p = _typical()
    out = p(ct)
    expected = Normalize("efficientnet_lite0")(ToRGB()(Resize(224)(Window(preset="lung")(ct))))
    np.testing.assert_array_equal(out, expected)
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    assert len(p) == 4 and isinstance(p[0], Window)
    assert p[:-1] == Pipeline([Window(preset="lung"), Resize(224), ToRGB()])
    assert p[:-1](ct).max() <= 1.0


def test_pipeline_on_a_real_scan_records_provenance(pydicom_data_dir):
    scan = read_scan(pydicom_data_dir / "693_UNCR.dcm")
    out = _typical()(scan)
    assert isinstance(out, Scan) and out.pixels.shape == (224, 224, 3)
    steps = [s.split(":")[0] for s in out.provenance[len(scan.provenance) :]]
    assert steps == ["window", "resize", "to_rgb", "normalize"]
    assert out.provenance[-1] == "normalize: scheme=efficientnet_lite0 resolved=efficientnet_lite"
    assert out.meta["Rows"] == 224 and out.meta["SamplesPerPixel"] == 3


def _every_stage():
    return Pipeline(
        [
            Color("rgb"),
            Window.from_header(explanation="LUNG", fallback="range"),
            CropForeground(margin=2),
            CLAHE(0.02),
            PadToSquare(),
            Resize([256, 256], interpolation="area"),
            CenterCrop(224),
            ToRGB(),
            ToGrey(),
            MultiWindow([{"preset": "brain"}, "bone"]),
            Stack([0]),
            Normalize("imagenet"),
        ]
    )


def test_config_and_yaml_round_trip():
    p = _every_stage()
    cfg = p.to_config()
    again = Pipeline.from_yaml(p.to_yaml())
    assert again == p
    assert again.to_config() == cfg
    assert again.fingerprint() == p.fingerprint()
    assert yaml.safe_load(p.to_yaml()) == cfg
    # written by hand, as in a pipeline YAML file
    text = """
    - {name: window, preset: lung}
    - {name: resize, size: 224}
    - {name: to_rgb}
    - {name: normalize, scheme: efficientnet_lite0}
    """
    assert Pipeline.from_yaml(text) == _typical()


def test_every_registered_stage_is_covered():
    assert set(list_stages()) == {s.name for s in _every_stage()}


def test_fingerprint_is_stable_across_processes():
    code = (
        "import imaging_tl.models; from imaging_tl.stages import *;"
        "print(Pipeline([Window(preset='lung'), Resize(224), ToRGB(),"
        " Normalize('efficientnet_lite0')]).fingerprint())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _typical().fingerprint()
    fp = _typical().fingerprint()
    assert len(fp) == 64 and int(fp, 16) >= 0
    canonical = json.loads(_typical().canonical_json())
    assert canonical == {"imaging_tl": __version__, "stages": _typical().to_config()}


def test_fingerprint_ignores_spelling_of_equal_values():
    a = Pipeline([Window(center=40, width=400), Resize(224)])
    b = Pipeline([Window(center=40.0, width=400.0), Resize([224, 224])])
    c = Pipeline.from_config(
        [
            {"name": "window", "width": 400, "center": 40},
            {"name": "resize", "size": 224, "mode": "pad"},
        ]
    )
    assert a.fingerprint() == b.fingerprint() == c.fingerprint()
    d = Pipeline([Window(center=40, width=400, function="linear"), Resize(224)])
    assert d.fingerprint() == a.fingerprint()
    assert Window.percentile(1, 99) == Window(
        mode="percentile", percentiles=[1, 99], function="LINEAR_EXACT"
    )


@pytest.mark.parametrize(
    "changed",
    [
        [Window(preset="lung", function="SIGMOID")],
        [Window(center=-600, width=1501)],
        [Window(center=-600.001, width=1500)],
        [Window(preset="lung", invert=False)],
        [Window(preset="mediastinum")],
        [Window.from_header()],
        [Window.from_header(1)],
        [Window.percentile(1, 99)],
        [Window.percentile(1, 99.5)],
    ],
)
def test_fingerprint_changes_with_any_parameter(changed):
    rest = [Resize(224), ToRGB(), Normalize("efficientnet_lite0")]
    assert Pipeline(changed + rest).fingerprint() != _typical().fingerprint()


def test_fingerprint_sensitive_to_every_other_stage_parameter():
    base = _typical()
    variants = [
        [Window(preset="lung"), Resize(225), ToRGB(), Normalize("efficientnet_lite0")],
        [
            Window(preset="lung"),
            Resize(224, mode="stretch"),
            ToRGB(),
            Normalize("efficientnet_lite0"),
        ],
        [
            Window(preset="lung"),
            Resize(224, pad_value=0.5),
            ToRGB(),
            Normalize("efficientnet_lite0"),
        ],
        [Window(preset="lung"), Resize(224), ToRGB(), Normalize("efficientnet_lite")],
        [Window(preset="lung"), Resize(224), ToRGB(), Normalize("imagenet")],
        [Window(preset="lung"), Resize(224), ToRGB()],
        [Resize(224), Window(preset="lung"), ToRGB(), Normalize("efficientnet_lite0")],
    ]
    prints = {Pipeline(v).fingerprint() for v in variants}
    assert len(prints) == len(variants) and base.fingerprint() not in prints


def test_unknown_stage_lists_names_with_a_suggestion():
    with pytest.raises(
        ValueError,
        match=r"unknown stage 'windw' \(did you mean 'window'\?\); "
        r"known stages: center_crop, clahe",
    ):
        stage_from_config({"name": "windw", "preset": "lung"})
    with pytest.raises(ValueError, match=r"stages\[1\]: unknown stage 'rezise' \(did you mean"):
        Pipeline.from_config([{"name": "window", "preset": "lung"}, {"name": "rezise"}])
    with pytest.raises(ValueError, match=r"stages\[0\]: Window: unknown parameter 'presett'"):
        Pipeline.from_config([{"name": "window", "presett": "lung"}])
    with pytest.raises(ValueError, match=r"mapping with a 'name' key"):
        stage_from_config(["window"])
    with pytest.raises(ValueError, match=r"stages\[0\] must be a Stage"):
        Pipeline([{"name": "window"}])


def test_stage_reprs_are_readable():
    assert repr(Window(center=40, width=400)) == "Window(center=40.0, width=400.0)"
    assert repr(Resize(224)) == "Resize(size=224)"
    assert repr(_typical()) == (
        "Pipeline([Window(preset='lung'), Resize(size=224), ToRGB(), "
        "Normalize(scheme='efficientnet_lite0')])"
    )


def test_stages_import_without_tensorflow():
    code = (
        "import sys, imaging_tl.stages; print(sorted(m for m in ('tensorflow', 'keras',"
        " 'albumentations') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pipeline_skips_the_range_check_only_where_window_guarantees_it():
    hu = np.random.default_rng(0).uniform(-1000, 1000, (64, 64)).astype(np.float32)
    proven = _typical()
    assert [fn.__name__ for _, fn in proven._plan()][-1] == "_transform_unit_input"
    np.testing.assert_array_equal(
        proven(hu), _typical()[3](_typical()[2](_typical()[1](_typical()[0](hu))))
    )
    # no Window before Normalize: the check runs and catches HU input
    with pytest.raises(ValueError, match=r"Normalize: image must be in \[0, 1\]"):
        Pipeline([Resize(32), ToRGB(), Normalize("imagenet")])(hu)
    # padding with a value outside [0, 1] breaks the guarantee: checked again
    padded = Pipeline(
        [Window(preset="lung"), Resize((32, 64), pad_value=2.0), ToRGB(), Normalize("imagenet")]
    )
    assert [fn.__name__ for _, fn in padded._plan()][-1] == "_transform"
    with pytest.raises(ValueError, match=r"Normalize: image must be in \[0, 1\]"):
        padded(hu)
    # the same holds for Scans
    with pytest.raises(ValueError, match=r"Normalize: image must be in \[0, 1\]"):
        padded(Scan(hu, {}, []))


def test_pipeline_pickles_for_worker_processes():
    import pickle

    p = _every_stage()[:-2]  # up to ToGrey: runs on a [0, 1] image with value_range
    x = np.random.default_rng(0).random((100, 80), np.float32)
    meta = {"value_range": [0, 1]}
    y = p(x, meta)
    q = pickle.loads(pickle.dumps(p))
    assert q == p and q.fingerprint() == p.fingerprint()
    np.testing.assert_array_equal(q(x, meta), y)
