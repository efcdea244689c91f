"""MkDocs hook: the reference pages made from the code (modelyard.reference) go where a page
says <!-- reference: cli -->, <!-- reference: api --> or <!-- reference: settings -->, and the
README (its text after the title, its links to docs/ made the site's) where one says
<!-- reference: readme -->: the getting started page is the README, never a copy of it."""

from __future__ import annotations

import re
from pathlib import Path
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
    if name == "readme":
        text = (Path(__file__).parents[1] / "README.md").read_text()
        return text.split("\n", 1)[1].replace("](docs/", "](")
    raise ValueError(f"no reference named {name!r}: cli, api or settings")


def on_page_markdown(markdown: str, **_: Any) -> str:
    return MARK.sub(lambda m: _made(m.group(1)), markdown)
