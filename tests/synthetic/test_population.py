"""Patients get sex, age, scanner and institution; a planted shift touches only its group."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from imaging_tl import read_scan
from imaging_tl.synthetic import Population, Shift, generate_dataset


def test_tags_vary_by_patient_and_a_shift_changes_only_its_group(tmp_path):
    kw = {"n_patients": 12, "images_per_patient": 1, "seed": 4, "size": 48, "png_fraction": 0}
    plain = generate_dataset(tmp_path / "plain", **kw)
    pop = generate_dataset(tmp_path / "pop", population=Population(), **kw)
    shifted = generate_dataset(tmp_path / "shift", population=Population(
        shift=Shift("manufacturer", "Borealis Medical", noise=0.2)), **kw)
    assert pop["patient_manufacturer"].nunique() > 1 and pop["patient_age"].nunique() > 1
    assert pop["patient_institution"].nunique() > 1
    ds = pydicom.dcmread(tmp_path / "pop" / pop.path[0], stop_before_pixels=True)
    assert ds.Manufacturer == pop.patient_manufacturer[0] and ds.PatientAge.endswith("Y")
    assert "PatientBirthDate" not in ds or not ds.PatientBirthDate
    # a population changes no pixel; the shift only the shifted manufacturer's
    for p, vendor in zip(pop.path, shifted.patient_manufacturer, strict=True):
        a = read_scan(tmp_path / "plain" / p).pixels
        assert np.array_equal(a, read_scan(tmp_path / "pop" / p).pixels)
        b = read_scan(tmp_path / "shift" / p).pixels
        assert np.array_equal(a, b) == (vendor != "Borealis Medical"), (p, vendor)
    tags = {"patient_sex", "patient_age", "patient_manufacturer", "patient_model",
            "patient_institution"}
    assert list(plain.columns) == [c for c in pop.columns if c not in tags]
    with pytest.raises(ValueError, match="Shift.attribute"):
        Shift("colour", "red")
