"""A quiet, early-failing command line: table-only checks refuse a bad run before
TensorFlow is imported and before a run directory exists; TensorFlow's start-up lines are
hidden unless --verbose (or TF_CPP_MIN_LOG_LEVEL=0)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
START_UP = ("absl::InitializeLog", "cpu_feature_guard", "oneDNN custom operations")

SNIPPET = """
import sys
from imaging_tl.cli import main
rc = main(sys.argv[1:])
print("RC", rc, "TF", "tensorflow" in sys.modules)
"""


def _cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", SNIPPET, *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def _config(tmp_path, **task):
    cfg = {"output": str(tmp_path / "runs"),
           "data": {"csv": str(ROOT / "sample_dicoms" / "labels.csv"), "label_column": "label",
                    "group_column": "patient_id"},
           "task": task}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_wrong_positive_label_fails_before_tensorflow_with_a_suggestion(tmp_path):
    res = _cli("run", str(_config(tmp_path, positive="NODULE")))
    assert "RC 2 TF False" in res.stdout, res.stdout + res.stderr
    assert "task.positive: 'NODULE' is not a label of the data (did you mean 'nodule'?)" \
        in res.stderr
    assert not (tmp_path / "runs").exists()  # no run directory was created


def test_a_class_missing_from_training_fails_early(tmp_path):
    import pandas as pd

    from imaging_tl.pipeline.early import split_problems

    t = pd.DataFrame({"split": ["train", "val", "test"], "label": ["a", "b", "a"]})
    assert "class 'b' has no sample in the train and test splits" in split_problems(
        t, "binary", ["a", "b"])[0]
    t = pd.DataFrame({"split": ["train", "train"], "label": ["a", "b"]})
    assert len(split_problems(t, "binary", ["a", "b"])) == 2  # no val, no test


def test_colour_files_with_a_grey_only_pipeline_fail_early(tmp_path):
    import numpy as np
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            rgb = np.random.default_rng(i).integers(0, 255, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(rgb).save(tmp_path / cls / f"{i}.png")
    cfg = {"output": str(tmp_path / "runs"), "data": {"folder": str(tmp_path)},
           "preprocessing": [{"name": "window", "mode": "header"}]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    res = _cli("run", str(tmp_path / "run.yaml"))
    assert "RC 2 TF False" in res.stdout, res.stdout + res.stderr
    assert "are colour images and preprocessing stage 'window' works on grey images only; " \
           "set data.color" in res.stderr


def test_tensorflow_start_up_lines_are_hidden_unless_verbose(tmp_path):
    # mixed_float16 on a CPU is refused after TensorFlow looked for GPUs: TF has started
    cfg = _config(tmp_path)
    args = ("run", str(cfg), "--set", "train.mixed_precision=mixed_float16")
    quiet = _cli(*args)
    assert "TF True" in quiet.stdout, quiet.stdout + quiet.stderr
    assert "mixed_float16" in quiet.stderr
    assert not [line for line in quiet.stderr.splitlines()
                if any(s in line for s in START_UP)], quiet.stderr
    loud = _cli(*args, "--verbose")  # the control: the lines exist to be hidden
    assert any(s in loud.stderr for s in START_UP), loud.stderr


def test_start_up_filter_keeps_every_other_line(capfd):
    from imaging_tl._tf_quiet import start_up_lines_hidden

    with start_up_lines_hidden():
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"E0000 a real error during the import\n")
    err = capfd.readouterr().err
    assert err == "E0000 a real error during the import\n"


@pytest.mark.slow  # two TensorFlow imports; --verbose is in the default run's test above
def test_asking_for_the_lines_shows_them(tmp_path):
    code = ("from imaging_tl.cli import quiet_logging; import sys; "
            "print(quiet_logging([]), file=sys.stderr); import tensorflow")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "0"}
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, timeout=300)
    assert shown.stderr.startswith("False") and any(s in shown.stderr for s in START_UP)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"  # make's setting: still quiet
    hidden = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=300)
    assert hidden.stderr.startswith("True")
    assert not any(s in hidden.stderr for s in START_UP), hidden.stderr
