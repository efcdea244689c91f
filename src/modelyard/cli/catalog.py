"""`modelyard catalog copy`: move the catalog to another database (SQLite to PostgreSQL)."""

from __future__ import annotations

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from modelyard.cli.common import Group
from modelyard.cli.render import console


@click.group("catalog", cls=Group)
def app() -> None:
    """The catalog: where modelyard keeps its models, settings, deployments, keys and usage."""


@app.command("copy")
@click.option("--to", "target", required=True, help="the new catalog's URL: postgresql://USER@HOST/DB")
@click.option("--from", "source", help="the catalog to copy (default: this home's, MODELYARD_DATABASE_URL)")
def copy(target: str, source: str | None) -> None:
    """Copy every record into a new, empty catalog (stop the server first), then serve from it
    with MODELYARD_DATABASE_URL set to the new URL."""
    from sqlalchemy import make_url  # the catalog's code, when the command runs (not for --help)

    from modelyard.catalog.copy import copy_catalog
    from modelyard.catalog.store import database_url
    from modelyard.config import Settings

    source = source or Settings().catalog_url
    with Progress(
        TextColumn("[bold]{task.description:<16}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        task = bar.add_task("copying", total=None)

        def report(table: str, done: int, total: int) -> None:
            bar.update(task, description=table, completed=done, total=total)

        sizes = copy_catalog(source, target, report)
    rows, tables = sum(sizes.values()), sum(1 for n in sizes.values() if n)
    shown = make_url(database_url(target)).render_as_string(hide_password=True)
    console.print(f"copied {rows} rows of {tables} tables to {shown}", highlight=False)
    console.print("serve from it: MODELYARD_DATABASE_URL=<that URL> modelyard serve", highlight=False)
