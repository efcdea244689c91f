"""`modelyard doctor`: what this machine has and lacks for modelyard, and how to fix it."""

from __future__ import annotations

import click

from modelyard.cli.common import Command
from modelyard.cli.render import Column, console, fitted


@click.command(cls=Command)
@click.option("--json", "as_json", is_flag=True, help="print the findings as JSON")
def doctor(as_json: bool) -> None:
    """What this machine has and lacks: each backend's engine, builds and environments, the GPUs
    and their drivers, the catalog, the port, disk space, and API keys where the server listens
    on the network; each problem with the command that fixes it. Exits 1 when there is a
    problem (a missing backend is not one: only the models it runs need it)."""
    from rich.markup import escape

    from modelyard import doctor as checkup
    from modelyard.config import Settings

    findings = checkup.examine(Settings())
    if as_json:
        print(checkup.as_json(findings))
    else:
        rows = [
            [
                f.status,
                f.area,
                f.name,
                escape(f.detail) + (f"\n[bold]fix:[/] {escape(f.fix)}" if f.fix else ""),
            ]
            for f in findings
        ]
        columns = [Column(""), Column("area", drop=1), Column("name"), Column("what", fold=True)]
        console.print(fitted(columns, rows), highlight=False)
    if any(f.status == "problem" for f in findings):
        raise click.exceptions.Exit(1)
