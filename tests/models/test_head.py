"""HeadConfig: the one definition of the head's settings (plain Python, validated)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from imaging_tl.models import HeadConfig
from imaging_tl.models.head import HEAD_POOLINGS


def test_defaults_and_dict_values():
    assert HeadConfig() == HeadConfig(pooling="avg", hidden=(), dropout=None, activation="relu")
    assert HEAD_POOLINGS == ("avg", "max")
    cfg = HeadConfig.from_value({"pooling": "max", "hidden": [64, 32], "dropout": 0.1})
    assert cfg.hidden == (64, 32) and cfg.pooling == "max" and cfg.dropout == 0.1
    assert HeadConfig.from_value(None) == HeadConfig()
    assert HeadConfig.from_value(cfg) is cfg
    assert HeadConfig(hidden=[8]).hidden == (8,)  # lists become tuples (hashable, frozen)


@pytest.mark.parametrize("value, match", [
    ({"pooling": "median"}, r"head.pooling='median'"),
    ({"dropout": 1.0}, r"head.dropout=1.0"),
    ({"dropout": -0.1}, r"head.dropout=-0.1"),
    ({"hidden": [16, 0]}, r"head.hidden=\[16, 0\]"),
    ({"units": 3}, r"unknown keys \['units'\]"),
])
def test_bad_values_name_the_setting(value, match):
    with pytest.raises(ValueError, match=match):
        HeadConfig.from_value(value)


def test_other_types_are_refused():
    with pytest.raises(TypeError, match="expected HeadConfig or dict"):
        HeadConfig.from_value([("pooling", "avg")])


def test_head_config_needs_no_tensorflow():
    code = ("import sys; from imaging_tl.models import HeadConfig; HeadConfig(hidden=(4,)); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
