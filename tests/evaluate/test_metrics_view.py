"""The notebook view of evaluate()'s metrics: still a dict, a table with CIs, the ROC."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser

import numpy as np

from imaging_tl.evaluate import Metrics, evaluate, format_estimate


class Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.png: list[bytes] = []

    def handle_starttag(self, tag, attrs):
        src = dict(attrs).get("src") or ""
        if tag == "img":
            self.png.append(base64.b64decode(src.split(",", 1)[1]))


def test_evaluate_returns_metrics_that_render():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    m = evaluate(y, np.clip(0.5 * y + 0.5 * rng.random(80), 0, 1), operating_point="fixed",
                 n_bootstraps=20)
    assert isinstance(m, Metrics) and isinstance(m, dict)
    assert json.loads(json.dumps(m))["roc_auc"] == m["roc_auc"]  # metrics.json unchanged
    text = m._repr_html_()
    parser = Images()
    parser.feed(text)
    assert len(parser.png) == 1 and parser.png[0][:4] == b"\x89PNG"
    assert format_estimate(m["roc_auc"]) in text and "sensitivity" in text


def test_multiclass_metrics_have_no_curve_image():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 60)
    s = rng.dirichlet(np.ones(3), 60)
    m = evaluate(y, s, task="multiclass", n_bootstraps=10)
    parser = Images()
    parser.feed(m._repr_html_())
    assert parser.png == [] and "ROC AUC, macro" in m._repr_html_()
