"""The documentation site builds (strict: a broken link fails it), and its reference pages say
what the code has: every command and option of the CLI, every variable of the settings, every
path of the HTTP API."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from modelyard.api.openapi import schema
from modelyard.cli.main import app
from modelyard.config import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return out


def text_of(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))


def walk(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    ctx = click.Context(group, info_name=prefix)
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        found.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            found += walk(command, f"{prefix} {name}")
    return found


def test_the_cli_reference_has_every_command_and_option(site: Path) -> None:
    page = text_of(site / "cli" / "index.html")
    commands = walk(app, "modelyard")
    assert len(commands) > 80  # the walk found them (lazily imported)
    for name, command in commands:
        assert f"{name}¶" in page, name  # its heading, with its permalink
        for param in command.params:
            if isinstance(param, click.Option):
                assert all(opt in page for opt in param.opts), (name, param.opts)


def test_the_configuration_reference_has_every_setting(site: Path) -> None:
    page = text_of(site / "configuration" / "index.html")
    for name in Settings.model_fields:
        assert f"MODELYARD_{name.upper()}" in page, name


def test_the_api_reference_has_every_path(site: Path) -> None:
    page = text_of(site / "api" / "index.html")
    for path, item in schema()["paths"].items():
        for method in item:
            assert f"{method.upper()} {path}" in page, (method, path)
