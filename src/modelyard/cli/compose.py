"""`modelyard run FILE --input KEY=VALUE`: a model-compose file's component run once."""

from __future__ import annotations

import base64
import json
import mimetypes
from pathlib import Path
from typing import Any

import click

from modelyard.cli.common import client
from modelyard.cli.render import console
from modelyard.cli.runtime import loading

SUFFIXES = (".yaml", ".yml")
IMAGE = "data:image/png;base64,"


def is_compose_file(name: str) -> bool:
    return name.endswith(SUFFIXES) and Path(name).expanduser().is_file()


def run_file(
    file: str, inputs: tuple[str, ...], component: str | None, workflow: str | None, out: str | None
) -> None:
    """Read the file here (its ${env.*} from this shell, its paths from its folder, an input's
    @FILE from this disk), then have the server run its workflow or the component asked for;
    print its output: text as it is, an image into ``out`` (default: NAME.png), the rest as
    JSON."""
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
    if isinstance(output, str) and output.startswith(IMAGE):
        target = Path(out or f"{running}.png")
        target.write_bytes(base64.b64decode(output[len(IMAGE) :]))
        console.print(f"wrote {target}", highlight=False)
    elif isinstance(output, str):
        console.print(output, markup=False, highlight=False)
    else:
        console.print_json(json.dumps(output, ensure_ascii=False))


def _pair(item: str) -> tuple[str, str]:
    """KEY=VALUE; KEY=@FILE: the file's content as a data URL (an image for ``as image``)."""
    key, eq, value = item.partition("=")
    if not eq or not key:
        raise click.BadParameter(f"{item!r}: write KEY=VALUE or KEY=@FILE", param_hint="--input")
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        if not path.is_file():
            raise click.BadParameter(f"{value[1:]}: no such file", param_hint="--input")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return key, f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"
    return key, value
