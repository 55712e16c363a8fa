"""How the package's objects show in a Jupyter notebook (``_repr_html_``): small HTML
fragments with images embedded as base64 PNG data URIs (Pillow), nothing fetched from
outside, everything escaped.

A scan shows a thumbnail and the header fields that describe the image (modality, size,
photometric interpretation, bits, spacing, view, body part, manufacturer), never the
fields that identify a patient or a study (PatientID, UIDs: :data:`SCAN_FIELDS` is an
allow-list).

Examples
--------
>>> import numpy as np
>>> html_img(png_thumbnail(np.eye(8, dtype=np.float32)), "eye")[:41]
'<img alt="eye" src="data:image/png;base64'
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["SCAN_FIELDS", "html_img", "html_table", "line_plot_png", "png_thumbnail",
           "scan_html"]

#: header fields a scan's notebook view shows (an allow-list: no identifier among them)
SCAN_FIELDS: tuple[str, ...] = (
    "format", "Modality", "PhotometricInterpretation", "Rows", "Columns", "NumberOfFrames",
    "BitsStored", "PixelSpacing", "ViewPosition", "BodyPartExamined", "Manufacturer",
    "transfer_syntax")


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def png_thumbnail(pixels: np.ndarray, *, invert: bool = False, size: int = 160) -> bytes:
    """An 8-bit PNG of an image, at most ``size`` pixels on its longer side: grey values
    stretched between their 1st and 99th percentiles (non-finite values black), the middle
    frame of a multi-frame array, colour kept.

    Examples
    --------
    >>> png = png_thumbnail(np.arange(64, dtype=np.float32).reshape(8, 8))
    >>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    """
    from PIL import Image

    a = np.asarray(pixels, dtype=np.float64)
    colour = a.ndim >= 3 and a.shape[-1] == 3
    while a.ndim > (3 if colour else 2):
        a = a[a.shape[0] // 2]
    finite = a[np.isfinite(a)]
    lo, hi = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    scaled = np.clip((np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo) - lo)
                     / (hi - lo if hi > lo else 1.0), 0, 1)
    if invert:
        scaled = 1.0 - scaled
    img = Image.fromarray(np.round(scaled * 255).astype(np.uint8))
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def line_plot_png(x: Sequence[float], y: Sequence[float], *, size: int = 140,
                  diagonal: bool = True) -> bytes:
    """A small PNG of one curve in the unit square (an ROC curve): axes, the chance
    diagonal, the curve.

    Examples
    --------
    >>> line_plot_png([0, 0.2, 1], [0, 0.8, 1])[:4] == b"\\x89PNG"
    True
    """
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    pad = 6
    span = size - 2 * pad

    def at(u: float, v: float) -> tuple[float, float]:
        return pad + u * span, size - pad - v * span

    draw.rectangle([at(0, 1), at(1, 0)], outline=(150, 150, 160))
    if diagonal:
        draw.line([at(0, 0), at(1, 1)], fill=(200, 200, 200))
    points = [at(float(u), float(v)) for u, v in zip(x, y, strict=True)
              if np.isfinite(u) and np.isfinite(v)]
    if len(points) > 1:
        draw.line(points, fill=(31, 94, 168), width=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def html_img(png: bytes, alt: str) -> str:
    """An ``<img>`` with ``png`` embedded as a data URI.

    Examples
    --------
    >>> html_img(b"\\x89PNG", "a<b")
    '<img alt="a&lt;b" src="data:image/png;base64,iVBORw==">'
    """
    return (f'<img alt="{_esc(alt)}" src="data:image/png;base64,'
            f'{base64.b64encode(png).decode("ascii")}">')


def html_table(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """A small HTML table, every cell escaped.

    Examples
    --------
    >>> html_table([["Modality", "CT"]])
    '<table><tr><th>Modality</th><td>CT</td></tr></table>'
    """
    head = ("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>") if header \
        else ""
    body = "".join("<tr>" + (f"<th>{_esc(r[0])}</th>" if header is None else
                             f"<td>{_esc(r[0])}</td>")
                   + "".join(f"<td>{_esc(c)}</td>" for c in r[1:]) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def scan_html(scan: Any) -> str:
    """The notebook view of a :class:`~imaging_tl.io.scan.Scan`: a thumbnail beside its
    shape, dtype, the :data:`SCAN_FIELDS` it has and the provenance (not the path: folder
    and file names often carry patient IDs).

    Examples
    --------
    >>> from imaging_tl.io.scan import Scan
    >>> page = scan_html(Scan(np.zeros((4, 4), np.float32), {"Modality": "CR",
    ...                       "PatientID": "P123"}, ["read: test"], "/data/P123/x.dcm"))
    >>> "CR" in page and "P123" not in page
    True
    """
    meta = scan.meta or {}
    rows: list[list[Any]] = [["shape", " x ".join(map(str, scan.pixels.shape))],
                             ["dtype", str(scan.pixels.dtype)]]
    rows += [[k, meta[k]] for k in SCAN_FIELDS if meta.get(k) not in (None, "", [])]
    rows.append(["provenance", "; ".join(map(str, scan.provenance)) or "-"])
    thumb = html_img(png_thumbnail(scan.pixels, invert=bool(meta.get("invert"))), "scan")
    return ("<div style='display:flex;gap:12px;align-items:flex-start'>"
            f"<div>{thumb}</div><div>{html_table(rows)}</div></div>")
