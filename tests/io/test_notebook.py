"""Notebook views (``_repr_html_``): valid HTML, an embedded PNG where one is expected, no
patient identifier."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from imaging_tl.io import read_scan
from imaging_tl.io.scan import Scan

SAMPLE = sorted(Path("sample_dicoms").rglob("*.dcm"))[0]


class Page(HTMLParser):
    """Parses a fragment; collects the images and checks that every tag is closed."""

    VOID = {"img", "br", "meta", "hr"}

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[Image.Image] = []
        self.open: list[str] = []
        self.feed(text)
        self.close()
        assert self.open == [], f"unclosed tags: {self.open}"

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            src = dict(attrs).get("src") or ""
            if tag == "img":
                assert src.startswith("data:image/png;base64,")
                data = base64.b64decode(src.split(",", 1)[1], validate=True)
                self.images.append(Image.open(io.BytesIO(data)))
            return
        self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def test_scan_shows_a_thumbnail_and_no_identifier(tmp_path):
    ds = pydicom.dcmread(SAMPLE)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Planted", "PID-PLANTED", "19400101"
    planted = tmp_path / "PID-PLANTED" / "scan.dcm"
    planted.parent.mkdir()
    ds.save_as(planted)
    scan = read_scan(planted)
    text = scan._repr_html_()
    page = Page(text)
    assert len(page.images) == 1 and max(page.images[0].size) <= 160
    assert page.images[0].size[0] > 0
    assert str(ds.Modality) in text and "PhotometricInterpretation" in text
    for secret in ("Doe", "PID-PLANTED", "19400101", str(ds.SOPInstanceUID),
                   str(ds.StudyInstanceUID)):
        assert secret not in text


def test_scan_view_copes_with_colour_frames_and_non_finite_values():
    for pixels in (np.random.default_rng(0).random((3, 16, 16, 3)).astype(np.float32),
                   np.array([[np.nan, np.inf], [0.0, 1.0]], np.float32)):
        page = Page(Scan(pixels, {}, [])._repr_html_())
        assert len(page.images) == 1
