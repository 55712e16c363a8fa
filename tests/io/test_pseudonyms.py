"""One keyed PatientID pseudonym for census, dataset table and run (issue 22 class 9)."""

from __future__ import annotations

import hashlib
import hmac
import stat

import pytest
from pydicom.data import get_testdata_file

from imaging_tl.data.table import from_dicom_headers
from imaging_tl.io import pseudonym
from imaging_tl.io.census import pseudonymize_patient_id
from imaging_tl.io.pseudonyms import (
    KEY_FILE_ENV,
    is_pseudonym,
    pseudonym_key,
    pseudonym_key_file,
    pseudonymize,
)


@pytest.fixture
def key_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGING_TL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    return tmp_path / "cache"


def test_pseudonym_is_a_keyed_hmac_not_a_plain_sha256(key_dir):
    key = pseudonym_key()
    expected = "pid:" + hmac.new(key, "Müller^1".encode(), hashlib.sha256).hexdigest()[:16]
    assert pseudonym("Müller^1") == expected
    # the old unsalted digest (brute-forceable over an MRN range) is gone
    assert pseudonym("Müller^1") != "pid:" + hashlib.sha256("Müller^1".encode()).hexdigest()[:16]
    assert pseudonym("1.2.3", prefix="study").startswith("study:")


def test_key_is_created_once_outside_the_run_with_mode_0600(key_dir):
    path = pseudonym_key_file()
    assert path == key_dir / "pseudonym.key" and not path.exists()
    first = pseudonym("MRN-0001")
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text().strip()) == 64
    assert pseudonym("MRN-0001") == first  # stable: the key is reused, not remade


def test_shared_key_file_from_the_environment(tmp_path, monkeypatch, key_dir):
    shared = tmp_path / "group.key"
    shared.write_text("ab" * 32 + "\n")
    monkeypatch.setenv(KEY_FILE_ENV, str(shared))
    assert pseudonym_key_file() == shared
    assert pseudonym("x") == pseudonym("x", key=bytes.fromhex("ab" * 32))
    assert not (key_dir / "pseudonym.key").exists()
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "missing.key"))
    with pytest.raises(ValueError, match="missing.key: pseudonym key file not found"):
        pseudonym("x")
    bad = tmp_path / "bad.key"
    bad.write_text("short")
    monkeypatch.setenv(KEY_FILE_ENV, str(bad))
    with pytest.raises(ValueError, match="bad.key: not a pseudonym key"):
        pseudonym("x")


def test_pseudonymize_keeps_pseudonyms_and_hashes_raw_values(key_dir):
    out = pseudonymize(["pid:0123456789abcdef", "MRN-1", "MRN-1"])
    assert out[0] == "pid:0123456789abcdef"
    assert out[1] == out[2] == pseudonym("MRN-1", "grp") and is_pseudonym(out[1])
    assert not is_pseudonym("MRN-1")


def test_census_and_table_use_the_same_pseudonym(key_dir):
    path = get_testdata_file("CT_small.dcm", download=False)
    table = from_dicom_headers([path])
    assert table["group"].iloc[0] == pseudonymize_patient_id("1CT1") == pseudonym("1CT1")
    assert pseudonymize_patient_id("") is None


def test_splits_csv_never_holds_a_raw_group_value(key_dir, tmp_path):
    import pandas as pd

    from imaging_tl.data.splitfile import write_splits

    df = pd.DataFrame({"path": ["/d/a.dcm", "/d/b.dcm"], "split": ["train", "test"],
                       "group": ["MRN-0001", "pid:0123456789abcdef"],
                       "group_key": ["mrn", "PatientID"], "label": ["a", "b"]})
    text = write_splits(df, tmp_path / "splits.csv").read_text()
    assert "MRN-0001" not in text and pseudonym("MRN-0001", "grp") in text
    assert "pid:0123456789abcdef" in text
