"""``imaging-tl pretrain`` as a user types it: --check, bad configuration, bad data (the
training path itself runs in tests/pretrain). In-process through the function the
``imaging-tl`` script calls (a traceback would surface here as an exception)."""

from __future__ import annotations

from pathlib import Path

from imaging_tl.cli import main

TEMPLATE = Path(__file__).resolve().parents[2] / "pipelines" / "pretrain.yaml"


def test_check_prints_the_resolved_configuration(tmp_path, capsys):
    assert main(["pretrain", str(TEMPLATE), "--set", f"data.folder={tmp_path}",
                 "--check"]) == 0
    out, err = capsys.readouterr()
    assert "method: simsiam" in out and "configuration is valid" in err


def test_bad_configuration_and_empty_folder_exit_2_without_a_traceback(tmp_path, capsys):
    assert main(["pretrain", str(TEMPLATE), "--set", "pretrain.epochs=0"]) == 2
    err = capsys.readouterr().err
    assert "pretrain.epochs" in err and "data.folder" in err
    assert main(["pretrain", str(TEMPLATE), "--set", f"data.folder={tmp_path}", "--out",
                 str(tmp_path / "run")]) == 2
    assert f"{tmp_path}: no image files" in capsys.readouterr().err
