"""What every command shares: the client, and turning errors into tidy messages."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer

from modelyard.address import cli_target
from modelyard.cli.client import Client
from modelyard.cli.render import err_console
from modelyard.errors import ModelyardError

P = ParamSpec("P")
R = TypeVar("R")


def client() -> Client:
    """A client of the server the environment names (MODELYARD_URL, else MODELYARD_HOST and
    MODELYARD_PORT) with MODELYARD_API_KEY."""
    target = cli_target()
    if target is None:  # a value the settings refuse: they say what is wrong with it
        from modelyard.config import Settings

        settings = Settings()
        target = settings.server_url, settings.api_key
    url, key = target
    return Client(url, api_key=key)


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Print a ModelyardError as `error: ...` with its hint, and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ModelyardError as e:
            err_console.print(f"[bold red]error:[/] {e.message}", highlight=False)
            if e.hint:
                err_console.print(f"  {e.hint}", style="dim", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def parse_value(text: str) -> Any:
    """A --set value: JSON when it parses (numbers, true/false, lists), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE")
        options[key.strip()] = parse_value(value)
    return options


def parse_pairs(items: list[str], what: str = "NAME=VALUE") -> dict[str, str]:
    """NAME=VALUE items as a mapping (values kept as text)."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not {what}")
        pairs[key] = value
    return pairs


# Where a deployment's instances may go: the same options on load, deploy and edit.
PLACEMENT = typer.Option(None, "--placement", help="spread (over the workers) or binpack (fill one first)")
SELECTOR = typer.Option(None, "--selector", help="KEY=VALUE: a label its workers must have (repeatable)")
GPUS = typer.Option(None, "--gpus", help="chosen GPUs: WORKER:INDEX,... (INDEX alone on one machine)")
CPU_OFFLOAD = typer.Option(
    None, "--cpu-offload/--no-cpu-offload", help="layers on the CPU when GPUs lack room"
)
DISTRIBUTED = typer.Option(None, "--distributed/--no-distributed", help="one instance over several workers")


def scheduling(
    placement: str | None,
    selector: list[str] | None,
    gpus: str | None,
    cpu_offload: bool | None,
    distributed: bool | None,
) -> dict[str, Any]:
    """The scheduling fields given on the command line (the API keeps the others)."""
    given: dict[str, Any] = {
        "placement": placement,
        "selector": parse_pairs(selector, "KEY=VALUE") if selector is not None else None,
        "gpus": [g.strip() for g in gpus.split(",") if g.strip()] if gpus is not None else None,
        "cpu_offload": cpu_offload,
        "distributed": distributed,
    }
    return {k: v for k, v in given.items() if v is not None}
