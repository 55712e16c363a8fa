"""Transfer from a source task: the session's finished run -> target -> target of the target.

The target data, configuration and run are session fixtures (tests/pipeline/conftest.py).

The target data are other synthetic patients (SYN0015 ...) than the source's, so the
cross-task audit passes; the source's own data as target data is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from imaging_tl.config import ConfigError
from imaging_tl.pipeline import InputError, run


def _chain(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "run.json").read_text())["chain"]


def test_chain_in_run_json_contract_and_report(target_run, finished_run):
    from imaging_tl.models import load_transfer_model

    chain = _chain(target_run.run_dir)
    assert [link["kind"] for link in chain] == ["imagenet", "run", "run"]
    assert chain[1]["run_id"] == finished_run.run_dir.name
    assert chain[2]["run_id"] == target_run.run_dir.name
    for link in chain[1:]:
        assert all(len(link[k]) == 64 for k in ("config_sha256", "data_manifest_sha256",
                                                "model_sha256"))
    assert chain[1] == _chain(finished_run.run_dir)[-1]  # the source's own record of itself
    contract = json.loads((target_run.run_dir / "contract.json").read_text())
    assert contract["lineage"] == chain[:2] and contract["input_size"] == [64, 64]
    record = json.loads((target_run.run_dir / "run.json").read_text())
    assert record["source"]["overlap"]["patients"] == 0
    assert record["source"]["allow_source_overlap"] is False
    html = (target_run.run_dir / "report.html").read_text()
    assert "Transfer chain" in html and finished_run.run_dir.name in html
    assert (target_run.run_dir / "data_index.csv").is_file()
    # a frozen backbone: the target's shared layers are still the source's, bit for bit
    src = load_transfer_model(finished_run.run_dir / "model.keras", compile=False)
    tgt = load_transfer_model(target_run.run_dir / "model.keras", compile=False)
    for name in ("stem_conv", "block3a_project_conv", "top_conv"):
        for a, b in zip(src.get_layer(name).get_weights(), tgt.get_layer(name).get_weights(),
                        strict=True):
            assert np.array_equal(a, b)


@pytest.mark.slow  # chains are built and checked in the default run by the tests above
def test_depth_two_chain_reproduces_with_the_same_seed(tiny_config, target_config, target_data,
                                                       target_run,
                                                       tmp_path):
    cfg = target_config(tiny_config, target_data, target_run.run_dir)
    cfg["name"] = "target2"
    # the same patients as target1 (its validation split): refused, unless allowed
    with pytest.raises(InputError, match=r"target1: cross-task audit: \d+ patient"):
        run(cfg, out=tmp_path / "refused", verbose=False)
    cfg["model"]["allow_source_overlap"] = True
    a = run(cfg, out=tmp_path / "a", verbose=False)
    b = run(cfg, out=tmp_path / "b", verbose=False)
    assert [link["kind"] for link in _chain(a.run_dir)] == ["imagenet", "run", "run", "run"]
    assert _chain(a.run_dir)[2]["run_id"] == target_run.run_dir.name
    pa = pd.read_csv(a.run_dir / "predictions.csv")
    pb = pd.read_csv(b.run_dir / "predictions.csv")
    prob = [c for c in pa.columns if c.startswith("p_") or c.startswith("prob")]
    assert prob and np.array_equal(pa[prob].to_numpy(), pb[prob].to_numpy())
    record = json.loads((a.run_dir / "run.json").read_text())["source"]
    assert record["allow_source_overlap"] is True
    assert record["overlap"]["patients"] > 0 and record["overlap"]["allow_source_overlap"]


def test_overlapping_patients_are_refused(tiny_config, target_config, finished_run, tmp_path):
    cfg = target_config(tiny_config, Path(tiny_config["data"]["csv"]).parent,
                         finished_run.run_dir)
    with pytest.raises(InputError, match=r"cross-task audit: \d+ patient\(s\) and \d+ "
                                         r"file\(s\).*allow_source_overlap"):
        run(cfg, out=tmp_path / "overlap", verbose=False)
    # the refusal leaves only a failed record, never a finished run
    record = json.loads((tmp_path / "overlap" / "run.json").read_text())
    assert record["status"] == "failed" and "cross-task audit" in record["error"]


def test_bad_sources_are_refused_before_the_run_directory(tiny_config, target_config,
                                                          target_data,
                                                          finished_run, tmp_path):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("name: x\n")
    cfg = target_config(tiny_config, target_data, unfinished)
    with pytest.raises(ConfigError, match="did not finish"):
        run(cfg, out=tmp_path / "never", verbose=False)
    cfg = target_config(tiny_config, target_data, finished_run.run_dir)
    cfg["model"]["backbone"] = "mobilenet_v2"
    with pytest.raises(ConfigError, match="is a model of efficientnet_lite0"):
        run(cfg, out=tmp_path / "never", verbose=False)
    cfg = target_config(tiny_config, target_data, finished_run.run_dir)
    cfg["preprocessing"] = [{"name": "window", "mode": "header"}, {"name": "resize", "size": 48},
                            {"name": "to_rgb"}]
    with pytest.raises(ConfigError, match="input size: source 64x64, target 48x48"):
        run(cfg, out=tmp_path / "never", verbose=False)
    assert not (tmp_path / "never").exists()


def test_backbones_lists_finished_runs(target_run, finished_run, capsys):
    from imaging_tl.cli import main

    assert main(["backbones", "--runs", str(target_run.run_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert "usable as model.source): 1" in out
    assert target_run.run_dir.name in out and "binary" in out and "normal, nodule" in out
