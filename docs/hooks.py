"""MkDocs hook: the reference pages made from the code (modelyard.reference) go where a page
says <!-- reference: cli -->, <!-- reference: api --> or <!-- reference: settings -->."""

from __future__ import annotations

import re
from typing import Any

MARK = re.compile(r"<!-- reference: (\w+) -->")


def _made(name: str) -> str:
    from modelyard import reference

    if name == "cli":
        from modelyard.cli.main import app

        return reference.cli(app)
    if name == "api":
        from modelyard.api.openapi import schema

        return reference.api(schema())
    if name == "settings":
        return reference.settings()
    raise ValueError(f"no reference named {name!r}: cli, api or settings")


def on_page_markdown(markdown: str, **_: Any) -> str:
    return MARK.sub(lambda m: _made(m.group(1)), markdown)
