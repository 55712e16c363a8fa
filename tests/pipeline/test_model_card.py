"""The model card: in every run directory and in report.html, every section, no identifier."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser

import pandas as pd
import pydicom
import yaml

from imaging_tl.evaluate.samplesize import format_estimate
from imaging_tl.report.model_card import (
    REQUIRED_SECTIONS,
    model_card_html,
    model_card_sections,
    write_model_card,
)

PLANTED = {"PatientName": "Plantedname^Secretina", "PatientID": "PLANTED-4711",
           "PatientBirthDate": "19370412", "InstitutionName": "Planted Memorial Hospital",
           "AccessionNumber": "ACC-PLANTED-99", "OtherPatientIDs": "OTHER-PLANTED-7"}


def _headings(text: str) -> list[str]:
    return [line[3:].strip() for line in text.splitlines() if line.startswith("## ")]


class _Headings(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.h3: list[str] = []
        self._in = False

    def handle_starttag(self, tag, attrs):
        self._in = tag == "h3"

    def handle_data(self, data):
        if self._in:
            self.h3.append(data)
            self._in = False


def test_every_run_writes_a_card_with_every_section(finished_run, tiny_data):
    card = (finished_run.run_dir / "model_card.md").read_text()
    assert _headings(card) == list(REQUIRED_SECTIONS)
    metrics = json.loads((finished_run.run_dir / "metrics.json").read_text())
    assert format_estimate(metrics["roc_auc"]) in card  # the figure with its CI
    assert all(note in card for note in metrics["small_sample"])  # the run's cautions
    assert "](plots/subgroups_forest.png)" in card  # the subgroup figure, linked
    assert "imagenet" in card and "efficientnet_lite0" in card  # source chain, contract
    assert "| 21 | Level of disjoint partitions | patient" in card  # a CLAIM item filled
    labels = pd.read_csv(tiny_data / "labels.csv")
    for pid in labels["patient_id"].unique():  # SYN0001...: not even the synthetic ones
        assert pid not in card and f"SYNTHETIC^{pid[3:]}" not in card
    page = (finished_run.run_dir / "report.html").read_text()
    parser = _Headings()
    parser.feed(page[page.index("<h2>Model card</h2>"):])
    assert [h for h in parser.h3 if h in REQUIRED_SECTIONS] == list(REQUIRED_SECTIONS)


def test_planted_identifiers_never_reach_the_card(finished_run, tiny_data, tmp_path):
    """DICOM files carrying a name, IDs, a birth date and an institution: the card is made
    from their census and shows none of them (the manufacturer and year it does show)."""
    from imaging_tl.io.census import run_census

    scans = tmp_path / "scans"
    for src in sorted(tiny_data.rglob("*.dcm"))[:6]:
        ds = pydicom.dcmread(src)
        for keyword, value in PLANTED.items():
            setattr(ds, keyword, value)
        ds.StudyDate = "20190506"
        ds.Manufacturer = "PlantedVendor"
        dst = scans / src.relative_to(tiny_data)
        dst.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(dst)
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "run.json", "metrics.json", "contract.json", "splits.csv"):
        shutil.copy2(finished_run.run_dir / name, run / name)
    run_census(scans, run / "census.csv", progress=False)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model_card"]["intended_use"] = "Research on nodule detection; not for patients."
    card = write_model_card(run, config=config).read_text()
    page = model_card_html(model_card_sections(run, config=config))
    assert "Research on nodule detection" in card
    assert "PlantedVendor (6)" in card and "study years: 2019-2019" in card
    census = (run / "census.csv").read_text()
    for value in [*PLANTED.values(), "19370412", "20190506", "Plantedname", "4711"]:
        assert value not in card and value not in page and value not in census, value
    assert _headings(card) == list(REQUIRED_SECTIONS)
