"""``imaging-tl pretrain`` as a user types it: --check, bad configuration, bad data (the
training path itself runs in tests/pretrain)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[2] / "pipelines" / "pretrain.yaml"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imaging_tl.cli", "pretrain", *args],
                          capture_output=True, text=True, timeout=300)


def test_check_prints_the_resolved_configuration(tmp_path):
    done = cli(str(TEMPLATE), "--set", f"data.folder={tmp_path}", "--check")
    assert done.returncode == 0, done.stderr
    assert "method: simsiam" in done.stdout and "configuration is valid" in done.stderr


def test_bad_configuration_and_empty_folder_exit_2_without_a_traceback(tmp_path):
    done = cli(str(TEMPLATE), "--set", "pretrain.epochs=0")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "pretrain.epochs" in done.stderr and "data.folder" in done.stderr
    done = cli(str(TEMPLATE), "--set", f"data.folder={tmp_path}", "--out",
               str(tmp_path / "run"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{tmp_path}: no image files" in done.stderr
