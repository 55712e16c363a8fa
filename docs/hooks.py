"""MkDocs hook: the configuration reference is generated from the schema at build time
(``imaging_tl.config.loading.schema_reference``), so it cannot drift from what ``--check``
validates."""

from __future__ import annotations

from typing import Any

MARKER = "<!-- config-reference -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker with the generated reference."""
    if MARKER not in markdown:
        return markdown
    from imaging_tl.config.loading import schema_reference

    return markdown.replace(MARKER, schema_reference(title="Every key"))
