"""A pipeline's notebook view: its stages in order, valid HTML."""

from __future__ import annotations

from html.parser import HTMLParser

from imaging_tl.stages import Pipeline, Resize, ToRGB, Window


def test_pipeline_lists_its_stages_in_valid_html():
    p = Pipeline([Window(preset="lung"), Resize(64), ToRGB()])
    text = p._repr_html_()
    HTMLParser().feed(text)
    assert text.index("window") < text.index("resize") < text.index("to_rgb")
    assert p.fingerprint()[:16] in text and "lung" in text and "<table>" in text
