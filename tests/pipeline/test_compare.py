"""``imaging-tl compare`` on the session's three runs (two on the same data, one on other
data) and on broken or hostile run directories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from imaging_tl._atomic import read_csv
from imaging_tl.cli import main
from imaging_tl.pipeline.compare import compare_runs


@pytest.fixture(scope="module")
def broken(tmp_path_factory, finished_run):
    """Run directories a compare must survive: no run.json, garbled JSON, a JSON list, a
    FIFO named run.json, a config.yaml that is not YAML, a name with a terminal escape."""
    root = tmp_path_factory.mktemp("broken")
    (root / "empty").mkdir()
    (root / "garbled").mkdir()
    (root / "garbled" / "run.json").write_text('{"name": "x", "status": ')
    (root / "listed").mkdir()
    (root / "listed" / "run.json").write_text("[1, 2]")
    (root / "fifo").mkdir()
    os.mkfifo(root / "fifo" / "run.json")
    hostile = root / "hostile"
    hostile.mkdir()
    record = json.loads((finished_run.run_dir / "run.json").read_text())
    record["name"] = "=HYPERLINK(\"x\")\x1b[31m<script>"
    (hostile / "run.json").write_text(json.dumps(record))
    (hostile / "config.yaml").write_text("data: [unclosed\n")
    (hostile / "metrics.json").write_text(json.dumps({"task": "binary",
                                                      "roc_auc": {"value": "high"}}))
    return root


def test_compare_marks_differing_keys_and_the_run_on_other_data(finished_run, short_run,
                                                                  target_run):
    runs = [finished_run.run_dir, short_run.run_dir, target_run.run_dir]
    c = compare_runs(runs, sort="roc_auc")
    assert c.problems == [] and len(c.rows) == 3
    by_dir = {r["path"]: r for r in c.rows}
    assert by_dir[str(finished_run.run_dir)]["comparable"]
    assert by_dir[str(short_run.run_dir)]["comparable"]
    other = by_dir[str(target_run.run_dir)]
    assert not other["comparable"] and "other data" in other["comparable_note"]
    # the keys that differ, and only those
    assert {"train.phases.0.epochs", "evaluate.gradcam", "data.csv", "model.source",
            "evaluate.tta"} <= set(c.differing)
    assert "seed" not in c.differing and "output" not in c.differing
    aucs = [r["metrics"]["roc_auc"]["value"] for r in c.rows]
    assert aucs == sorted(aucs, reverse=True)
    for r in c.rows:
        assert r["time_s"] > 0 and len(r["manifest"]) == 64 and r["date"].startswith("20")
    text = c.format()
    assert "NOT COMPARABLE" in text and f"not comparable: {target_run.run_dir.name}" in text
    assert "train.phases.0.epochs" in text
    by_time = compare_runs(runs, sort="time")
    assert [r["time_s"] for r in by_time.rows] == sorted(r["time_s"] for r in c.rows)
    with pytest.raises(ValueError, match="--sort 'auroc': not a metric"):
        compare_runs(runs, sort="auroc")


def test_compare_command_writes_csv_and_html_and_survives_broken_runs(
        finished_run, short_run, target_run, broken, tmp_path, capsys):
    runs = [str(p) for p in (finished_run.run_dir, short_run.run_dir, target_run.run_dir)]
    bad = [str(broken / n) for n in ("empty", "garbled", "listed", "fifo", "hostile")]
    code = main(["compare", *runs, *bad, "--csv", str(tmp_path / "c.csv"),
                 "--html", str(tmp_path / "c.html")])
    out, err = capsys.readouterr()
    assert code == 0
    assert "empty/run.json: missing (not a finished run)" in err
    assert "garbled/run.json: not valid JSON" in err
    assert "listed/run.json: not a JSON object" in err
    assert "fifo/run.json: not a regular file" in err
    assert "config.yaml: not valid YAML" in out  # the hostile run shows, with a note
    assert "\x1b" not in out  # no terminal escape from a run's files
    table = read_csv(tmp_path / "c.csv")
    assert len(table) == 4 and set(table["comparable"]) == {"yes", "no"}
    assert {"roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "data_manifest_sha256",
            "time_s", "train.phases.0.epochs"} <= set(table.columns)
    assert table.loc[table["run"] == "hostile", "roc_auc"].isna().all()  # "high" is no number
    assert "'=HYPERLINK" in (tmp_path / "c.csv").read_text()  # formula neutralised
    page = (tmp_path / "c.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    HTMLParser().feed(page)
    assert page.count("<tr") == 5  # header + 4 runs


def test_compare_command_as_typed(finished_run, tmp_path):
    done = subprocess.run([sys.executable, "-m", "imaging_tl.cli", "compare",
                           str(finished_run.run_dir), str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "roc_auc" in done.stdout and "missing (not a finished run)" in done.stderr


def test_compare_command_without_a_readable_run_exits_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "no readable run directory" in capsys.readouterr().err
