"""The documentation site builds offline with ``mkdocs build --strict`` (broken links and
missing references fail), and its configuration reference holds every key of the schema."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imaging_tl.config import schema_help
from imaging_tl.config.loading import schema_reference

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_has_every_key():
    reference = schema_reference()
    for line in schema_help().splitlines():
        key = line.split(":", 1)[0]
        if key.startswith("train.phases"):
            continue  # a list of phases: documented as train.phases.N.*
        assert f"`{key}`" in reference, key
    assert "`train.phases.N.epochs`" in reference and "`tracking.mlflow`" in reference


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in
                        ("mkdocs", "material", "mkdocstrings")),
                    reason="mkdocs, mkdocs-material, mkdocstrings are not installed "
                           "(pip install 'imaging-tl[docs]')")
def test_docs_build_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    config_page = (tmp_path / "site" / "config" / "index.html").read_text()
    assert "tracking.mlflow" in config_page and "model_card.intended_use" in config_page
    assert "compare_runs" in (tmp_path / "site" / "api" / "index.html").read_text()
