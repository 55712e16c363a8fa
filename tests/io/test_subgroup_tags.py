"""The census keeps sex, an age band, the scanner and a pseudonymous site, never a name."""

from __future__ import annotations

import csv

from imaging_tl.io.census import COLUMNS, run_census
from imaging_tl.io.pseudonyms import pseudonym
from imaging_tl.io.subgroup_tags import SUBGROUP_TAG_COLUMNS, age_band
from imaging_tl.synthetic import Population, generate_dataset


def test_census_keeps_the_subgroup_columns_and_no_institution_or_age(tmp_path):
    data = tmp_path / "data"
    df = generate_dataset(data, n_patients=4, images_per_patient=1, seed=2, size=48,
                          png_fraction=0, population=Population())
    out = tmp_path / "census.csv"
    run_census(data, out=out)
    assert set(SUBGROUP_TAG_COLUMNS) <= set(COLUMNS)
    rows = {r["path"]: r for r in csv.DictReader(open(out, newline=""))}
    for _, want in df.iterrows():
        row = rows[want["path"]]
        assert row["PatientSex"] == want["patient_sex"]
        assert row["age_band"] == age_band(want["patient_age"])
        assert row["Manufacturer"] == want["patient_manufacturer"]
        assert row["ManufacturerModelName"] == want["patient_model"]
        assert row["site"] == pseudonym(want["patient_institution"], prefix="site")
        assert row["ViewPosition"] in ("PA", "AP") and row["BodyPartExamined"] == "CHEST"
    text = out.read_text()
    assert "SYNTHETIC" not in text.replace("SYNTHETIC^", "")  # no institution name
    assert not any(a in text for a in df["patient_age"])  # ages only as bands


def test_age_bands_are_exact_at_their_edges():
    assert [age_band(a) for a in ("017Y", "018Y", "039Y", "040Y", "079Y", "080Y", "110Y")] == [
        "0-17", "18-39", "18-39", "40-59", "60-79", "80+", "80+"]
    assert age_band("030M") == "0-17" and age_band("") is None and age_band("45") is None
