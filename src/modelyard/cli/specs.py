"""Spec commands: apply -f FILE [--dry-run], export, schema."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from modelyard.cli.client import Client
from modelyard.cli.common import Command, client
from modelyard.cli.render import console
from modelyard.errors import InvalidSpec, PathNotFound

STYLE = {
    "created": "green",
    "updated": "yellow",
    "unchanged": "dim",
    "would create": "green",
    "would change": "yellow",
}


def read(file: str) -> tuple[str, str, Path]:
    if file == "-":
        return sys.stdin.read(), "<stdin>", Path.cwd()
    path = Path(file).expanduser()
    if not path.is_file():
        raise PathNotFound(path)
    try:
        return path.read_text(encoding="utf-8"), file, path.resolve().parent
    except UnicodeDecodeError:
        raise InvalidSpec(f"{file}: not UTF-8 text", hint="a spec is a YAML file") from None


def _applied(api: Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST the spec; while the server works, show the downloads it starts with progress bars."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    before = max((j["id"] for j in api.get("/api/downloads")), default=0)
    result: dict[str, Any] = {}

    def call() -> None:
        try:
            result["outcomes"] = api.request("POST", "/api/specs/apply", json=body, wait=True)
        except BaseException as e:  # re-raised in the main thread
            result["error"] = e

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        tasks: dict[int, Any] = {}
        status = progress.add_task("applying...", total=None)
        while worker.is_alive():
            worker.join(0.5)
            for job in api.get("/api/downloads"):
                if job["id"] <= before:
                    continue
                label = escape(f"{job['repo']} ({job['state']})")
                if job["id"] not in tasks:
                    tasks[job["id"]] = progress.add_task(label, total=job["bytes_total"] or None)
                progress.update(tasks[job["id"]], description=label, completed=job["bytes_done"])
        progress.remove_task(status)
    if "error" in result:
        raise result["error"]
    outcomes: list[dict[str, Any]] = result["outcomes"]
    return outcomes


@click.command("apply", cls=Command)
@click.option("--file", "-f", required=True, help="a spec YAML file (- reads stdin)")
@click.option("--dry-run", is_flag=True, help="say what would change, change nothing")
def apply(file: str, dry_run: bool) -> None:
    """Make the library, the deployments and the routes what a spec says (those named in it only)."""
    from modelyard.deployments.spec import load

    text, origin, base = read(file)
    spec = load(text, origin, base=base)
    api = client()
    body = {"spec": spec.model_dump(mode="json"), "dry_run": dry_run}
    outcomes = api.post("/api/specs/apply", body) if dry_run else _applied(api, body)
    for o in outcomes:
        style = STYLE.get(o["action"], "")
        named = f"route {o['name']}" if o.get("kind") == "route" else o["name"]
        console.print(f"{escape(named)}: [{style}]{o['action']}[/]", highlight=False)
        if dry_run or o["action"] != "unchanged":
            for line in o["changes"]:
                console.print(f"  {escape(line)}", highlight=False)


@click.command("export", cls=Command)
def export() -> None:
    """Print the library, its deployments and the routes as a spec (YAML): `modelyard apply -f` makes them again."""
    from modelyard.deployments.spec import Spec, dump

    data = client().get("/api/specs/export")
    click.echo(dump(Spec.model_validate(data)), nl=False)


@click.command("schema", cls=Command)
def schema() -> None:
    """Print the JSON Schema of the spec format, for editor completion."""
    from modelyard.deployments.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
