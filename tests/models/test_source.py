"""model.source: copying the shared layers of a trained model, and every refusal message."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from imaging_tl.config import ConfigError, load_config
from imaging_tl.models.contract import ModelContract, write_contract
from imaging_tl.models.source import (
    SourceError,
    find_source_runs,
    inherit_source,
    preprocessing_differences,
    resolve_source,
)


@pytest.fixture(scope="module")
def source_model():
    """A multilabel 'source' model with a hidden head layer and non-trivial weights."""
    from imaging_tl.models import build_transfer_model

    m = build_transfer_model("efficientnet_lite0", "multilabel", ["cons", "eff", "nod"],
                             weights=None, input_size=32, head={"hidden": (8,)}, seed=1)
    rng = np.random.default_rng(0)
    for w in m.weights:  # every weight different from a fresh build's
        w.assign(w.numpy() + rng.normal(0, 0.01, w.shape).astype(w.dtype))
    m.imaging_tl_contract.lineage = [{"kind": "imagenet", "backbone": "efficientnet_lite0"}]
    return m


def test_shared_layers_are_copied_bit_identical_and_the_head_is_new(source_model):
    from imaging_tl.models.transfer import backbone_layers, build_from_source

    tgt = build_from_source(source_model, "binary", ["none", "nodule"], seed=5)
    shared = [tgt.get_layer("input_normalization"), *backbone_layers(tgt)]
    assert sum(1 for la in shared if la.weights) > 90
    for layer in shared:
        for a, b in zip(layer.get_weights(), source_model.get_layer(layer.name).get_weights(),
                        strict=True):
            assert np.array_equal(a, b), layer.name
    assert tgt.output_shape == (None, 1)
    assert "head_dense_1" not in [la.name for la in tgt.layers]  # source head dropped
    assert tgt.imaging_tl_contract.lineage[0]["kind"] == "imagenet"
    assert tgt.imaging_tl_contract.label_names == ["none", "nodule"]


def test_keep_source_hidden_reuses_the_hidden_head_layer(source_model):
    from imaging_tl.models.transfer import build_from_source

    tgt = build_from_source(source_model, "binary", 2, keep_source_hidden=True, seed=5)
    for a, b in zip(tgt.get_layer("head_dense_1").get_weights(),
                    source_model.get_layer("head_dense_1").get_weights(), strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="source's hidden layers are \\[8\\]"):
        build_from_source(source_model, "binary", 2, head={"hidden": (4,)},
                          keep_source_hidden=True)


def _fake_run(folder: Path, backbone: str = "efficientnet_lite0", finished: bool = True,
              size: int = 64) -> Path:
    """A run directory with a contract-carrying model file (no weights needed to refuse)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("name: src\nmodel:\n  source: imagenet\n")
    if finished:
        model = folder / "model.keras"
        zipfile.ZipFile(model, "w").close()
        write_contract(model, ModelContract(
            backbone, "multilabel", ["a", "b"], [size, size], "efficientnet_lite",
            preprocessing={"stages": [{"name": "window", "mode": "header"},
                                      {"name": "resize", "size": size}, {"name": "to_rgb"}]}))
        (folder / "run.json").write_text(json.dumps({"name": "src", "finished": "2025-01-01"}))
    return folder


def test_refusals_name_the_reason(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        resolve_source(str(tmp_path / "nope"))
    with pytest.raises(SourceError, match="did not finish .*--resume"):
        resolve_source(str(_fake_run(tmp_path / "unfinished", finished=False)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="not a run directory"):
        resolve_source(str(tmp_path / "empty"))
    bad = tmp_path / "bad.keras"
    bad.write_text("not a zip")
    with pytest.raises(SourceError, match="not a model file of imaging_tl"):
        resolve_source(str(bad))
    other = _fake_run(tmp_path / "resnet", backbone="resnet50")
    with pytest.raises(SourceError, match="is a model of resnet50, but model.backbone is "
                                          "efficientnet_lite0"):
        resolve_source(str(other), backbone="efficientnet_lite0")
    ok = resolve_source(str(_fake_run(tmp_path / "ok")), backbone="efficientnet_lite0")
    assert ok.kind == "run" and [link["kind"] for link in ok.chain] == ["imagenet", "run"]


def test_corrupt_model_is_refused_by_its_recorded_hash(tmp_path):
    run = _fake_run(tmp_path / "run")
    first = resolve_source(str(run))
    (run / "run.json").write_text(json.dumps({"chain": first.chain}))
    with zipfile.ZipFile(run / "model.keras", "a") as zf:
        zf.writestr("extra.bin", b"changed")
    with pytest.raises(SourceError, match="changed since the run finished"):
        resolve_source(str(run))


def test_config_inherits_the_contract_and_refuses_changes(tmp_path):
    run = _fake_run(tmp_path / "src")
    (tmp_path / "scans").mkdir()
    cfg = load_config({"data": {"folder": str(tmp_path / "scans")},
                       "model": {"source": str(run)}})
    assert cfg.model.input_size == 64 and cfg.model.weights == str(run)
    assert cfg.preprocessing[1] == {"name": "resize", "size": 64}
    from imaging_tl.pipeline.model_steps import source_of

    assert source_of(cfg).kind == "run"
    changed = load_config({"data": {"folder": str(tmp_path / "scans")},
                           "model": {"source": str(run), "input_size": 96}})
    with pytest.raises(ConfigError) as exc:
        source_of(changed)
    text = str(exc.value)
    assert "input size: source 64x64, target 96x96" in text
    assert "preprocessing stage 1: source resize(size=64" in text
    allowed = changed.model_copy(update={"model": changed.model.model_copy(
        update={"allow_preprocessing_change": True})})
    assert source_of(allowed).kind == "run"
    with pytest.raises(ConfigError, match="model.source: .* is a model of resnet50"):
        load_config({"data": {"folder": str(tmp_path / "scans")},
                     "model": {"source": str(_fake_run(tmp_path / "r50", "resnet50")),
                               "backbone": "efficientnet_lite0"}})


def test_weights_is_an_alias_of_source(tmp_path):
    d = {"data": {"folder": str(tmp_path)}}
    assert load_config({**d, "model": {"weights": None}}).model.source == "none"
    assert load_config({**d, "model": {"source": "none", "weights": None}}).model.weights is None
    with pytest.raises(ConfigError, match="disagree"):
        load_config({**d, "model": {"source": "none", "weights": "imagenet"}})


def test_preprocessing_differences_and_relative_paths(tmp_path):
    c = ModelContract("efficientnet_lite0", "binary", ["a", "b"], [64, 64], "efficientnet_lite",
                      preprocessing={"stages": [{"name": "resize", "size": 64}]})
    assert preprocessing_differences(c, [{"name": "resize", "size": 64}], 64,
                                     "efficientnet_lite") == []
    diffs = preprocessing_differences(c, [{"name": "resize", "size": 64}, {"name": "to_rgb"}],
                                      64, "imagenet")
    assert len(diffs) == 2 and diffs[0].startswith("normalisation")
    raw = inherit_source({"model": {"source": "runs/x"}}, tmp_path)
    assert raw["model"]["source"] == str(tmp_path / "runs" / "x")


def test_find_source_runs(tmp_path):
    _fake_run(tmp_path / "a")
    _fake_run(tmp_path / "deeper" / "b")
    _fake_run(tmp_path / "c", finished=False)
    runs, unfinished = find_source_runs(tmp_path)
    assert sorted(r["name"] for r in runs) == ["a", "b"]
    assert [p.name for p in unfinished] == ["c"]
    assert runs[0]["labels"] == ["a", "b"] and runs[0]["backbone"] == "efficientnet_lite0"
