"""One PatientID pseudonym for the census, the dataset table and the run."""

from __future__ import annotations

import hashlib

from pydicom.data import get_testdata_file

from imaging_tl.data.table import from_dicom_headers
from imaging_tl.io import pseudonym
from imaging_tl.io.census import pseudonymize_patient_id


def test_pseudonym_is_prefix_and_16_hex_digits_of_sha256():
    expected = "pid:" + hashlib.sha256("Müller^1".encode()).hexdigest()[:16]
    assert pseudonym("Müller^1") == expected
    assert pseudonym("1.2.3", prefix="study").startswith("study:")


def test_census_and_table_use_the_same_pseudonym():
    path = get_testdata_file("CT_small.dcm", download=False)
    table = from_dicom_headers([path])
    assert table["group"].iloc[0] == pseudonymize_patient_id("1CT1") == pseudonym("1CT1")
    assert pseudonymize_patient_id("") is None
