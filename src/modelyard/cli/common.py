"""What every command shares: the client, and turning errors into tidy messages."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer

from modelyard.cli.client import Client
from modelyard.cli.render import err_console
from modelyard.config import Settings
from modelyard.errors import ModelyardError

P = ParamSpec("P")
R = TypeVar("R")


def client() -> Client:
    settings = Settings()
    return Client(settings.server_url, api_key=settings.api_key)


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
