"""Batches never die on names; every CSV is atomic and safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from pydicom.data import get_testdata_file

from imaging_tl._atomic import csv_cell, csv_text, readable_text, write_csv
from imaging_tl.io.census import run_census, write_census_csv

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
CT = get_testdata_file("CT_small.dcm", download=False)
BAD = os.fsdecode(b"scan\xff\xfe.dcm")  # not UTF-8: a surrogate-escaped str in Python


@pytest.fixture
def odd_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(CT, folder / "ok.dcm")
    try:
        shutil.copy(CT, os.path.join(folder, BAD))
    except (UnicodeEncodeError, OSError):
        pytest.skip("this file system refuses non-UTF-8 names")
    return folder


def test_census_survives_a_non_utf8_name_and_writes_it_readably(odd_folder, tmp_path):
    out = tmp_path / "census.csv"
    result = run_census(odd_folder, out, progress=False)
    assert [r["status"] for r in result.rows] == ["ok", "ok"]
    text = out.read_text(encoding="utf-8")
    assert "scan\\xff\\xfe.dcm" in text
    assert result.format()  # the summary prints too
    result.format().encode("utf-8")


def test_table_rows_of_a_non_utf8_name_build(odd_folder):
    from imaging_tl.data.files import header_rows

    rows = header_rows([os.path.join(odd_folder, BAD)], "all")
    assert rows[0]["group"].startswith("pid:")


def test_an_existing_census_is_never_destroyed(tmp_path):
    out = tmp_path / "census.csv"
    out.write_text("the old census\n")

    class Exploding:
        def __str__(self) -> str:
            raise RuntimeError("disk full, say")

    with pytest.raises(RuntimeError):
        write_census_csv([{"path": "a.dcm", "status": Exploding()}], out)
    assert out.read_text() == "the old census\n"
    assert [p.name for p in tmp_path.iterdir()] == ["census.csv"]  # no temporary left


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)",
                                  "\tcmd", "\rcmd"])
def test_formula_cells_are_escaped(cell):
    assert csv_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-0.5", "+3", "-1e-05", "1.5", "normal", "", "a=b"])
def test_plain_cells_and_numbers_are_kept(cell):
    assert csv_cell(cell) == cell


def test_write_csv_escapes_headers_and_cells_but_keeps_numbers(tmp_path):
    df = pd.DataFrame({"path": ["a.dcm"], "=cmd()": ["-x"], "prob_=HYPERLINK(1)": [-0.5],
                       "n": [3]})
    out = write_csv(tmp_path / "p.csv", df)
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0] == ["path", "'=cmd()", "prob_=HYPERLINK(1)", "n"]
    assert rows[1] == ["a.dcm", "'-x", "-0.5", "3"]
    back = pd.read_csv(out)
    assert back.iloc[0, 2] == -0.5  # numbers read back as numbers


def test_census_escapes_formula_names(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "=cmd.txt").write_text("not an image")
    result = run_census(folder, tmp_path / "c.csv", progress=False)
    assert result.rows[0]["path"] == "=cmd.txt"  # in memory: the real name
    assert "'=cmd.txt" in (tmp_path / "c.csv").read_text()


def test_readable_text_and_csv_text():
    assert readable_text(BAD) == "scan\\xff\\xfe.dcm"
    assert csv_text([{"a": BAD, "b": None}]) == "a,b\nscan\\xff\\xfe.dcm,\n"
