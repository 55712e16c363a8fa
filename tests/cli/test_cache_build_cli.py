"""`imaging-tl cache build` without Dask: the run's table and pipeline, bad files listed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from imaging_tl.cli import main


@pytest.fixture
def config_with_a_bad_file(pydicom_test_dir, tmp_path) -> Path:
    names = ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_truncated.dcm"]
    rows = ["path,label"]
    for i, n in enumerate(names):
        shutil.copy(pydicom_test_dir / n, tmp_path / n)
        rows.append(f"{n},{'yes' if i % 2 else 'no'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    cfg = {"cache_dir": str(tmp_path / "cache"), "workers": 1,
           "data": {"csv": "labels.csv", "label_column": "label"},  # relative to the YAML
           "preprocessing": [{"name": "window", "mode": "range"}],
           "model": {"input_size": 32}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_cache_build_locally_lists_the_bad_file_and_goes_on(config_with_a_bad_file, capsys):
    assert main(["cache", "build", str(config_with_a_bad_file), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "prepared 4 samples: 0 from cache, 4 decoded, 1 quarantined" in out
    assert "quarantined " in out and "MR_truncated.dcm: CorruptPixelDataError" in out
    assert "3 of 4 samples ready" in out
    # the config's final stages (resize to model.input_size, to_rgb) are in the entries
    cache = config_with_a_bad_file.parent / "cache"
    assert len(list(cache.rglob("*.npy"))) == 3
    assert main(["cache", "build", str(config_with_a_bad_file), "--quiet"]) == 0
    assert "3 from cache, 0 decoded, 1 quarantined" in capsys.readouterr().out
    # --retry-quarantined decodes the bad file again (and quarantines it again)
    assert main(["cache", "build", str(config_with_a_bad_file), "--quiet",
                 "--retry-quarantined"]) == 0
    assert "3 from cache, 1 decoded, 1 quarantined" in capsys.readouterr().out
    assert main(["cache", "info", "--dir", str(cache)]) == 0
    assert "3 entries" in capsys.readouterr().out


def test_cache_build_strict_is_a_usage_error(config_with_a_bad_file, capsys):
    code = main(["cache", "build", str(config_with_a_bad_file), "--quiet", "--set",
                 "data.strict=true"])
    assert code == 2
    err = capsys.readouterr().err
    assert "data.strict is on" in err and "MR_truncated.dcm" in err


def test_cache_build_help_and_missing_action(capsys):
    with pytest.raises(SystemExit) as info:
        main(["cache", "build", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--workers" in out and "--scheduler" in out and "--set" in out
    with pytest.raises(SystemExit) as info:
        main(["cache"])
    assert info.value.code == 2
