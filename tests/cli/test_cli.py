"""The ``imaging-tl`` command: help, exit codes, config errors without stack traces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imaging_tl.cli import PARAMS, main

COMMANDS = ["run", "pretrain", "predict", "evaluate", "export", "backbones", "census", "cache",
            "compare"]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imaging_tl.cli", *args], capture_output=True,
                          text=True)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert "usage: imaging-tl " + command in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["trian"])
    assert info.value.code == 2


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\na.dcm,normal\n")
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"data": {"csv": "labels.csv", "label_column": "label"}}))
    return f


def test_run_with_config_errors_exits_2_without_traceback(config_file):
    res = cli("run", str(config_file), "--set", "model.freeze=block9",
              "--set", "train.batch_size=0")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert f"invalid configuration in {config_file}" in res.stderr
    assert "model.freeze: 'block9' is not a freeze point of efficientnet_lite0" in res.stderr
    assert "train.batch_size: input should be greater than or equal to 1" in res.stderr


def test_run_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "no such configuration file" in capsys.readouterr().err


def test_run_without_config_or_resume_exits_2(capsys):
    assert main(["run"]) == 2
    assert "give a CONFIG file" in capsys.readouterr().err


def test_run_resume_of_a_folder_that_is_no_run_exits_2(tmp_path, capsys):
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "no config.yaml there" in capsys.readouterr().err


def test_run_resume_of_a_finished_run_exits_2(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("data: {folder: .}\n")
    (tmp_path / "run.json").write_text("{}")
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "this run has finished" in capsys.readouterr().err


def test_run_check_prints_the_resolved_config(config_file, capsys):
    assert main(["run", str(config_file), "--check", "--set", "model.input_size=96"]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["preprocessing"][-2:] == [{"name": "resize", "size": 96}, {"name": "to_rgb"}]
    assert out["model"]["normalization"] == "efficientnet_lite"


def test_run_fold_trains_one_fold_and_is_checked(config_file, capsys):
    assert main(["run", str(config_file), "--check", "--set", "split.method=kfold",
                 "--set", "split.folds=4", "--fold", "2"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["split"]["fold"] == 2
    assert main(["run", str(config_file), "--check", "--set", "split.method=kfold",
                 "--fold", "7"]) == 2
    assert "split.fold: 7 must be below split.folds (5)" in capsys.readouterr().err


def test_predict_missing_model_exits_2(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "m.keras"), str(tmp_path), "--out",
                 str(tmp_path / "p.csv")]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_evaluate_on_a_folder_that_is_no_run_exits_2(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err


def test_export_missing_model_exits_2(tmp_path, capsys):
    assert main(["export", str(tmp_path / "m.keras"), "--format", "onnx"]) == 2
    assert "model file not found" in capsys.readouterr().err


def test_export_unknown_format_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["export", str(tmp_path / "m.keras"), "--format", "pt"])
    assert info.value.code == 2


def test_backbones_lists_the_registry(capsys):
    from imaging_tl.models import list_backbones

    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1 + len(list_backbones())
    lite0 = next(line for line in lines if line.startswith("efficientnet_lite0 "))
    assert "224" in lite0 and "3.41 M" in lite0 and " yes" in lite0
    resnet = next(line for line in lines if line.startswith("resnet50 "))
    assert "no (Keras download" in resnet
    assert "?" not in out  # every backbone has its parameter count
    domain = next(line for line in lines if line.startswith("radimagenet_resnet50 "))
    assert "23.59 M" in domain and "RadImageNet-ResNet50_notop.h5" in domain


def test_backbones_finds_an_installed_domain_file(tmp_path, monkeypatch, capsys):
    from imaging_tl.models.weights import domain

    monkeypatch.setattr(domain, "domain_weights_dir", lambda: tmp_path)
    (tmp_path / "RadImageNet-DenseNet121_notop.h5").write_bytes(b"h5 stand-in")
    assert main(["backbones"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines()
                if x.startswith("radimagenet_densenet121 "))
    assert "yes (RadImageNet-DenseNet121_notop.h5)" in line


def test_backbone_parameter_table_matches_a_real_build():
    from imaging_tl.models import build_backbone

    m = build_backbone("efficientnet_lite0", weights=None, include_top=False)
    assert m.count_params() == PARAMS["efficientnet_lite0"]


def test_importing_the_cli_does_not_import_tensorflow():
    code = ("import sys, imaging_tl, imaging_tl.cli, imaging_tl.pipeline, "
            "imaging_tl.deploy.export, imaging_tl.config; imaging_tl.run; "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
