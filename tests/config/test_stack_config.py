"""The stack stage in a configuration: last, three channels, series only; no to_rgb after."""

from __future__ import annotations

from pathlib import Path

import pytest

from imaging_tl.config import ConfigError, load_config

SERIES = Path(__file__).resolve().parents[2] / "sample_dicoms" / "ct_series"
DATA = {"unit": "series", "folder": str(SERIES), "csv": str(SERIES / "series_labels.csv"),
        "label_column": "label"}


def test_stack_stays_last_with_a_resize_before_it():
    cfg = load_config({"data": DATA, "model": {"input_size": 32},
                       "preprocessing": [{"name": "window", "preset": "lung"},
                                         {"name": "stack", "offsets": [-2, 0, 2]}]})
    names = [s["name"] for s in cfg.preprocessing]
    assert names[-2:] == ["resize", "stack"] and "to_rgb" not in names


@pytest.mark.parametrize("stages, message", [
    ([{"name": "stack"}, {"name": "to_rgb"}], "preprocessing.0: stack must be the last stage"),
    ([{"name": "window", "preset": "lung"}, {"name": "stack", "offsets": [0, 1]}],
     "preprocessing.1: stack gives 2 offset(s) x 1 channel(s) = 2 channels"),
    ([{"name": "multi_window", "windows": ["brain", "subdural", "bone"]},
      {"name": "stack"}], "preprocessing.1: stack gives 3 offset(s) x 3 channel(s) = 9"),
])
def test_bad_stacks_are_refused_naming_the_stage(stages, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")
                       .replace(")", r"\)")):
        load_config({"data": DATA, "preprocessing": stages})


def test_stack_needs_series(tmp_path):
    with pytest.raises(ConfigError, match="stack needs data.unit series"):
        load_config({"data": {"folder": str(tmp_path)},
                     "preprocessing": [{"name": "window", "preset": "lung"}, {"name": "stack"}]})
