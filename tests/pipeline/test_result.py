"""RunResult's headline is the metric evaluate() writes for each task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imaging_tl.evaluate import evaluate
from imaging_tl.pipeline import RunResult


def _metrics(task: str) -> dict:
    rng = np.random.default_rng(0)
    if task == "binary":
        y = rng.integers(0, 2, 60)
        s = np.clip(0.4 * y + 0.6 * rng.random(60), 0, 1)
    elif task == "multiclass":
        y = rng.integers(0, 3, 60)
        s = rng.dirichlet(np.ones(3), 60)
        s[np.arange(60), y] += 1.0
        s /= s.sum(1, keepdims=True)
    else:
        y = rng.integers(0, 2, (60, 2)).astype(float)
        s = np.clip(0.4 * y + 0.6 * rng.random((60, 2)), 0, 1)
    return evaluate(y, s, task=task, operating_point="fixed", n_bootstraps=20)


@pytest.mark.parametrize(("task", "key"), [("binary", "roc_auc"),
                                           ("multiclass", "roc_auc_macro"),
                                           ("multilabel", "roc_auc_macro")])
def test_headline_is_the_auc_evaluate_writes(task, key):
    m = _metrics(task)
    name, value, ci = RunResult(Path("runs/x"), None, m, task=task).headline()
    assert name == key
    assert value == m[key]["value"] and 0.5 < value <= 1.0
    assert ci == m[key]["ci"] and len(ci) == 2
    assert f"test {key}: {value:.3f}" in RunResult(Path("runs/x"), None, m,
                                                   task=task).summary()


def test_headline_falls_back_to_accuracy_without_an_auc():
    m = {"task": "multiclass", "accuracy": {"value": 0.75, "ci": [0.6, 0.9]}}
    assert RunResult(Path("runs/x"), None, m, task="multiclass").headline() == (
        "accuracy", 0.75, [0.6, 0.9])


def test_run_result_renders_headline_and_plots(finished_run):
    import base64
    from html.parser import HTMLParser

    class Images(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.png: list[bytes] = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.png.append(base64.b64decode(dict(attrs)["src"].split(",", 1)[1]))

    text = finished_run._repr_html_()
    parser = Images()
    parser.feed(text)
    assert len(parser.png) == 3 and all(p[:4] == b"\x89PNG" for p in parser.png)
    assert finished_run.headline_text() in text and "report" in text
    assert "SYN00" not in text  # no patient key of the data
