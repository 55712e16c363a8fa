"""The transfer chain of a run as an HTML table (origin, each source run, this run)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["chain_section"]


def _esc(x: Any) -> str:
    return escape(str(x), quote=True)


_LINK_NAMES = {"imagenet": "ImageNet", "none": "random initialisation",
               "weights": "weights file", "model": "model file", "run": "run"}


def chain_section(chain: Iterable[Mapping[str, Any]]) -> str:
    """The transfer chain as an HTML table: one row per link, origin first.

    Examples
    --------
    >>> html = chain_section([{"kind": "imagenet", "backbone": "efficientnet_lite0"},
    ...                       {"kind": "run", "run_id": "src-1", "task": "multilabel",
    ...                        "model_sha256": "ab" * 32}])
    >>> "ImageNet" in html and "src-1" in html
    True
    """
    rows = []
    for i, link in enumerate(chain):
        kind = str(link.get("kind"))
        what = _LINK_NAMES.get(kind, kind)
        name = link.get("run_id") or (Path(str(link["path"])).name if link.get("path")
                                      else link.get("backbone", ""))
        labels = ", ".join(map(str, link.get("labels") or []))
        short = [f"{k.replace('_sha256', '')} {str(link[k])[:12]}" for k in
                 ("config_sha256", "data_manifest_sha256", "model_sha256", "sha256")
                 if link.get(k)]
        rows.append(f"<tr><td>{i}</td><td>{_esc(what)}</td><td>{_esc(name)}</td>"
                    f"<td>{_esc(link.get('task', ''))}</td><td>{_esc(labels)}</td>"
                    f"<td><code>{_esc('; '.join(short))}</code></td></tr>")
    return ("<p>Where the shared layers came from, origin first; each run is pinned by the "
            "sha256 of its configuration, data manifest and model file.</p>"
            "<table><tr><th>#</th><th>link</th><th>name</th><th>task</th><th>labels</th>"
            "<th>sha256 (first 12 digits)</th></tr>" + "".join(rows) + "</table>")
