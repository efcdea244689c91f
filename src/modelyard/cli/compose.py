"""`modelyard run FILE --input KEY=VALUE`: a model-compose file's component run once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from modelyard.cli.common import client
from modelyard.cli.render import console
from modelyard.cli.runtime import loading

SUFFIXES = (".yaml", ".yml")


def is_compose_file(name: str) -> bool:
    return name.endswith(SUFFIXES) and Path(name).expanduser().is_file()


def run_file(file: str, inputs: tuple[str, ...], component: str | None, workflow: str | None) -> None:
    """Read the file here (its ${env.*} from this shell, its paths from its folder), then have
    the server run its workflow or the component asked for; print its output: text as it is,
    the rest as JSON."""
    from modelyard.cli.specs import read
    from modelyard.compose.files import load

    text, origin, base = read(file)
    read_file = load(text, origin, base=base)
    running = (
        read_file.chosen(component).name() if component or not read_file.every_workflow() else "workflow"
    )
    body = {
        "file": read_file.model_dump(mode="json", exclude_none=True),
        "component": component,
        "workflow": workflow,
        "input": dict(_pair(item) for item in inputs),
    }
    api = client()
    answer: dict[str, Any] = loading(
        f"running {running}", lambda: api.request("POST", "/api/compose/run", json=body, wait=True)
    )
    output = answer["output"]
    if isinstance(output, str):
        console.print(output, markup=False, highlight=False)
    else:
        console.print_json(json.dumps(output, ensure_ascii=False))


def _pair(item: str) -> tuple[str, str]:
    key, eq, value = item.partition("=")
    if not eq or not key:
        raise click.BadParameter(f"{item!r}: write KEY=VALUE", param_hint="--input")
    return key, value
