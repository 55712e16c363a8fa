"""What every page of the package shares: its style sheet and images embedded as data URIs,
so a page opens the same from a run folder, an e-mail attachment or an offline workstation."""

from __future__ import annotations

import base64
import html
from pathlib import Path

__all__ = ["PAGE_CSS", "figure", "img_tag"]

#: the style sheet of the report pages (no font or file from outside)
PAGE_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:16px;color:#1d2327;line-height:1.4}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:2px solid #dde;padding-bottom:4px;
margin-top:2em}.sub{color:#667;margin-top:4px}
table{border-collapse:collapse;margin:8px 0;max-width:100%}
th,td{border:1px solid #ccd;padding:3px 8px;text-align:left;vertical-align:top;
overflow-wrap:anywhere}th{background:#f3f4f8;font-weight:600}
table.kv th{width:34%}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f7f9;padding:8px;
max-width:100%}
img{max-width:100%;height:auto}
.plots{display:flex;flex-wrap:wrap;gap:12px}
.plots figure{margin:0;flex:1 1 320px;max-width:520px}
.gallery{display:flex;flex-wrap:wrap;gap:8px}
.gallery figure{margin:0;width:200px}
figcaption{font-size:.8em;color:#445;overflow-wrap:anywhere}
.ok{color:#17602a}.warn{color:#a1260d;font-weight:600}
"""


def img_tag(path: str | Path, alt: str, cls: str = "plot") -> str:
    """An ``<img>`` whose PNG is embedded in the page (base64 data URI).

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.png"; _ = p.write_bytes(b"\\x89PNG")
    >>> img_tag(p, "a <plot>").startswith(
    ...     '<img class="plot" alt="a &lt;plot&gt;" src="data:image/png;base64,')
    True
    """
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<img class="{cls}" alt="{html.escape(alt, quote=True)}" '
            f'src="data:image/png;base64,{data}">')


def figure(path: str | Path, caption: str) -> str:
    """A ``<figure>`` of an embedded PNG with its caption.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "x.png"; _ = p.write_bytes(b"\\x89PNG")
    >>> figure(p, "ROC").endswith("<figcaption>ROC</figcaption></figure>")
    True
    """
    return (f"<figure>{img_tag(path, caption)}<figcaption>{html.escape(caption, quote=True)}"
            "</figcaption></figure>")
