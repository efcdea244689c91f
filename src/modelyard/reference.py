"""The documentation's reference pages, made from the code so that they cannot drift: the CLI's
from the click app, the HTTP API's from the OpenAPI schema, the configuration's from the
Settings model. docs/hooks.py puts each where a page of the site says ``<!-- reference: NAME -->``.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import click
from pydantic import AliasChoices
from pydantic_core import PydanticUndefined

from modelyard.config import Settings

METHODS = ("get", "post", "put", "patch", "delete")


def _cell(text: str) -> str:
    """Text in a table's cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def commands(group: click.Group, prefix: str = "modelyard") -> list[tuple[str, click.Command]]:
    """Every command of ``group`` with its full name, groups' commands after their group, in
    the order `--help` lists them."""
    ctx = click.Context(group, info_name=prefix)
    found: list[tuple[str, click.Command]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found.extend(commands(command, f"{prefix} {name}"))
    return found


def _option(param: click.Option) -> str:
    names = " / ".join(", ".join(opts) for opts in (param.opts, param.secondary_opts) if opts)
    if not param.is_flag:
        names += f" {param.metavar or param.type.name.upper()}"
    return f"`{names}`"


def cli(app: click.Group) -> str:
    """The CLI's reference: each command's usage, what it does, and its options."""
    out: list[str] = []
    for name, command in commands(app):
        ctx = click.Context(command, info_name=name)
        out += [f"### `{name}`", ""]
        if command.help:
            out += [inspect.cleandoc(command.help.split("\f")[0]), ""]
        if not isinstance(command, click.Group):
            out += [f"    {name} {' '.join(command.collect_usage_pieces(ctx))}", ""]
        options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
        if options:
            out += ["| option | what it does |", "| --- | --- |"]
            out += [f"| {_option(p)} | {_cell(p.help or '')} |" for p in options]
            out.append("")
    return "\n".join(out)


def _default(name: str, field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, Path):
        return f"`{str(value).replace(str(Path.home()), '~')}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return f"`{json.dumps(value)}`" if value else "none"
    return f"`{value}`"


def settings() -> str:
    """The configuration's reference: each environment variable, its default, what it does."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    out = ["| variable | default | what it does |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [f"{prefix}{name}".upper()]
        variables = " or ".join(f"`{n}`" for n in names)
        out.append(f"| {variables} | {_default(name, field)} | {_cell(field.description or '')} |")
    return "\n".join(out) + "\n"


def api(schema: dict[str, Any]) -> str:
    """The HTTP API's reference: each path and method, by tag, with what it does."""
    by_tag: dict[str, list[str]] = {}
    for path, item in sorted(schema["paths"].items()):
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or ["other"])[0]
            what = (operation.get("description") or operation.get("summary") or "").split("\n\n")[0]
            by_tag.setdefault(tag, []).append(f"| `{method.upper()} {path}` | {_cell(what)} |")
    out: list[str] = []
    for tag in sorted(by_tag):
        out += [f"### {tag}", "", "| method and path | what it does |", "| --- | --- |", *by_tag[tag], ""]
    return "\n".join(out)
