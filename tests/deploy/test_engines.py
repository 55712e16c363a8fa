"""Every engine agrees with the Keras model on real DICOM scans; conversions are cached."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from imaging_tl.deploy.engines import (
    EngineError,
    available_engines,
    default_engine,
    exported_model,
    load_engine,
    model_sha256,
)


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("engine_cache")


@pytest.fixture(scope="session")
def keras_reference(saved_model, real_batch) -> np.ndarray:
    from imaging_tl.models import load_transfer_model

    model = load_transfer_model(saved_model, compile=False)
    return np.asarray(model(real_batch, training=False))


def test_reference_outputs_are_spread(keras_reference):
    # the check below would be weak if every output sat at the same value
    assert keras_reference.shape == (5, 1)
    assert np.ptp(keras_reference) > 0.05


@pytest.mark.parametrize("name", ["onnxruntime", "tflite", "keras"])
def test_engine_agrees_with_keras_on_real_scans(name, saved_model, real_batch,
                                                keras_reference, engine_cache):
    eng = load_engine(saved_model, name, cache_dir=engine_cache, num_threads=2)
    assert eng.name == name
    for bs in (1, 2, 5):  # TFLite resizes its batch-1 graph; the last batch may be short
        got = eng.predict(real_batch, batch_size=bs)
        assert got.dtype == np.float32 and got.shape == keras_reference.shape
        np.testing.assert_allclose(got, keras_reference, atol=1e-4, rtol=0)


def test_conversion_is_cached_by_model_hash(saved_model, engine_cache):
    first = exported_model(saved_model, "onnxruntime", cache_dir=engine_cache)
    assert first.parent.name == model_sha256(saved_model)[:32]
    stamp = first.stat().st_mtime_ns
    again = exported_model(saved_model, "onnxruntime", cache_dir=engine_cache)
    assert again == first and again.stat().st_mtime_ns == stamp  # not converted again


def test_export_beside_the_model_is_used_only_for_the_same_model(saved_model, engine_cache,
                                                                  tmp_path):
    model = tmp_path / "model.keras"
    shutil.copy(saved_model, model)
    cached = exported_model(saved_model, "tflite", cache_dir=engine_cache)
    export = tmp_path / "export"
    export.mkdir()
    shutil.copy(cached, export / "model.tflite")
    shutil.copy(cached.parent / "source.json", export / "source.json")
    assert exported_model(model, "tflite", cache_dir=engine_cache) == export / "model.tflite"
    # a stale export (source.json names another model file) is not trusted
    src = json.loads((export / "source.json").read_text())
    src["tflite"]["model_sha256"] = "0" * 64
    (export / "source.json").write_text(json.dumps(src))
    assert exported_model(model, "tflite", cache_dir=engine_cache) == cached


def _constant_tflite(value: float) -> bytes:
    """A planted model: any (1, 64, 64, 3) input -> ``value``."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 64, 64, 3), tf.float32)])
    def const(x):
        return tf.reduce_mean(x, axis=[1, 2, 3])[:, None] * 0.0 + value

    conv = tf.lite.TFLiteConverter.from_concrete_functions([const.get_concrete_function()],
                                                           const)
    return conv.convert()


# the cache entry is checked by the same code as the file beside the model: slow target
@pytest.mark.parametrize("where", ["beside", pytest.param("cache", marks=pytest.mark.slow)])
def test_planted_export_is_detected_and_not_used(where, saved_model, real_batch,
                                                 keras_reference, engine_cache, tmp_path,
                                                 capsys):
    # issue 22 class 2: source.json names the right model.keras, but the export file was
    # replaced by a constant model; its own sha256 no longer matches -> re-converted
    model = tmp_path / "model.keras"
    shutil.copy(saved_model, model)
    cached = exported_model(saved_model, "tflite", cache_dir=engine_cache)
    if where == "beside":
        folder = tmp_path / "export"
        folder.mkdir()
        shutil.copy(cached.parent / "source.json", folder / "source.json")
        cache = tmp_path / "fresh_cache"
    else:
        cache = tmp_path / "cache"
        folder = cache / cached.parent.name
        shutil.copytree(cached.parent, folder)
    (folder / "model.tflite").write_bytes(_constant_tflite(0.993))
    planted = folder / "model.tflite"
    capsys.readouterr()
    eng = load_engine(model, "tflite", cache_dir=cache, num_threads=1)
    err = capsys.readouterr().err
    assert f"not using {planted}" in err and "does not match the sha256" in err
    assert "converting model.keras again" in err
    assert any("does not match the sha256" in n for n in eng.notes)
    got = eng.predict(real_batch)
    np.testing.assert_allclose(got, keras_reference, atol=1e-4, rtol=0)
    assert not np.allclose(got, 0.993)
    if where == "cache":  # the planted file was replaced by a verified conversion
        assert eng.path == planted
        assert exported_model(model, "tflite", cache_dir=cache) == planted
        assert "not using" not in capsys.readouterr().err
    else:  # the user's export folder is left as it is; the conversion went to the cache
        assert eng.path.parent.parent == cache


def test_export_without_its_own_sha256_is_not_trusted(saved_model, engine_cache, tmp_path,
                                                      capsys):
    model = tmp_path / "model.keras"
    shutil.copy(saved_model, model)
    cached = exported_model(saved_model, "tflite", cache_dir=engine_cache)
    src = json.loads((cached.parent / "source.json").read_text())
    assert src["tflite"]["sha256"] == model_sha256(cached)  # recorded by export_model
    del src["tflite"]["sha256"]  # an export written before the export's digest was recorded
    (tmp_path / "export").mkdir()
    shutil.copy(cached, tmp_path / "export" / "model.tflite")
    (tmp_path / "export" / "source.json").write_text(json.dumps(src))
    assert exported_model(model, "tflite", cache_dir=engine_cache) == cached
    assert "records no sha256 of the export itself" in capsys.readouterr().err


def expected_auto_engine() -> str:
    """``auto`` from the devices TensorFlow sees: Keras on a GPU, else the TFLite export."""
    import tensorflow as tf

    return "keras" if tf.config.list_physical_devices("GPU") else "tflite"


def test_default_engine_follows_the_devices_present():
    assert {"onnxruntime", "tflite"} <= set(available_engines())
    assert default_engine() == expected_auto_engine()


def test_bad_engine_and_bad_input_are_named(saved_model, engine_cache, tmp_path):
    with pytest.raises(EngineError, match="engine='tensorrt'"):
        load_engine(saved_model, "tensorrt")
    with pytest.raises(EngineError, match="model file not found"):
        load_engine(tmp_path / "missing.keras", "keras")
    eng = load_engine(saved_model, "onnxruntime", cache_dir=engine_cache)
    with pytest.raises(ValueError, match=r"onnxruntime engine: input shape \(2, 32, 32, 3\)"):
        eng.predict(np.zeros((2, 32, 32, 3), np.float32))


def test_cli_predict_engines_agree(saved_model, real_files, engine_cache, tmp_path,
                                   monkeypatch, capsys):
    from imaging_tl.cli import main

    monkeypatch.setenv("IMAGING_TL_CACHE_DIR", str(tmp_path / "cache"))
    # reuse the session's conversions: an export beside the model, as `imaging-tl export`
    # leaves it
    model = tmp_path / "model.keras"
    shutil.copy(saved_model, model)
    (tmp_path / "export").mkdir()
    for name in ("onnxruntime", "tflite"):
        conv = exported_model(saved_model, name, cache_dir=engine_cache)
        shutil.copy(conv, tmp_path / "export" / conv.name)
    source = {fmt: {"model": "model.keras", "model_sha256": model_sha256(model),
                    "sha256": model_sha256(tmp_path / "export" / f"model.{fmt}")}
              for fmt in ("onnx", "tflite")}
    (tmp_path / "export" / "source.json").write_text(json.dumps(source))
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(real_files[0].read_bytes()[:300])
    inputs = [str(f) for f in real_files] + [str(bad)]
    probs = {}
    for name in ("keras", "onnxruntime", "tflite", "auto"):
        out = tmp_path / f"{name}.csv"
        assert main(["predict", str(model), *inputs, "--engine", name, "--out", str(out),
                     "--threads", "1"]) == 0
        text = capsys.readouterr()
        used = expected_auto_engine() if name == "auto" else name
        assert f"predicted 5 of 6 file(s) with {used}" in text.out
        assert "broken.dcm" in text.err
        df = pd.read_csv(out, keep_default_na=False)
        assert list(df["status"]) == ["ok"] * 5 + ["error"]
        probs[name] = df["prob_finding"][:5].astype(float).to_numpy()
    assert not (tmp_path / "cache").exists()  # nothing converted: the exports were used
    for name in ("onnxruntime", "tflite", "auto"):
        np.testing.assert_allclose(probs[name], probs["keras"], atol=1e-4, rtol=0)


def test_importing_engines_does_not_import_tensorflow():
    code = ("import sys, imaging_tl.deploy.engines as e; e.default_engine(); "
            "sys.exit('tensorflow' in sys.modules)")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
