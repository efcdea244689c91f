"""What every command shares: the client, its commands and groups (which turn errors into tidy
messages), and the parsing of KEY=VALUE options."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from modelyard.address import cli_target
from modelyard.cli.client import Client
from modelyard.cli.render import err_console
from modelyard.errors import ModelyardError

if TYPE_CHECKING:
    from modelyard.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


def served_settings(host: str | None, port: int | None, insecure: bool) -> Settings:
    """The server's settings, with the host, port and --insecure of a command's options."""
    from modelyard.config import Settings

    settings = Settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    settings.insecure = settings.insecure or insecure
    return settings


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


def _answer(error: ModelyardError) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {error.message}", highlight=False)
    if error.hint:
        err_console.print(f"  {error.hint}", style="dim", highlight=False)
    raise click.exceptions.Exit(1) from None


class Command(click.Command):
    """A command that prints a ModelyardError as `error: ...` with its hint, and exits 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModelyardError as e:
            _answer(e)


class Group(click.Group):
    """A group of commands (their errors answered the same way); its subgroups are Groups."""

    command_class = Command
    group_class = type

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModelyardError as e:
            _answer(e)


def parse_value(text: str) -> Any:
    """A --set value: JSON when it parses (numbers, true/false, lists), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE")
        options[key.strip()] = parse_value(value)
    return options


def parse_pairs(items: Iterable[str], what: str = "NAME=VALUE") -> dict[str, str]:
    """NAME=VALUE items as a mapping (values kept as text)."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not {what}")
        pairs[key] = value
    return pairs


def scheduling_options(fn: F) -> F:
    """Where a deployment's instances may go: the same options on load, deploy and edit."""
    options = (
        click.option("--placement", help="spread (over the workers) or binpack (fill one first)"),
        click.option(
            "--selector", multiple=True, help="KEY=VALUE: a label its workers must have (repeatable)"
        ),
        click.option("--gpus", help="chosen GPUs: WORKER:INDEX,... (INDEX alone on one machine)"),
        click.option(
            "--cpu-offload/--no-cpu-offload", default=None, help="layers on the CPU when GPUs lack room"
        ),
        click.option(
            "--distributed/--no-distributed", default=None, help="one instance over several workers"
        ),
    )
    for option in reversed(options):
        fn = option(fn)
    return fn


def scheduling(
    *,
    placement: str | None,
    selector: tuple[str, ...],
    gpus: str | None,
    cpu_offload: bool | None,
    distributed: bool | None,
) -> dict[str, Any]:
    """The scheduling fields given on the command line (``scheduling_options``'s, which a command
    takes as ``**where``); the API keeps the others."""
    given: dict[str, Any] = {
        "placement": placement,
        "selector": parse_pairs(selector, "KEY=VALUE") if selector else None,
        "gpus": [g.strip() for g in gpus.split(",") if g.strip()] if gpus is not None else None,
        "cpu_offload": cpu_offload,
        "distributed": distributed,
    }
    return {k: v for k, v in given.items() if v is not None}
