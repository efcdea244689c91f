"""`modelyard keys`: API keys. They are made in the catalog itself, on the server's machine (the
first key cannot be asked of a server that needs one); a running server sees them within seconds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click
from rich.table import Table

from modelyard.access.scopes import Scope
from modelyard.cli.common import Group
from modelyard.cli.render import console, err_console, print_json

if TYPE_CHECKING:
    from modelyard.access.keys import Keys

app = Group("keys", help="API keys for /v1 and /api.")
TIERS = ["flex", "default", "priority"]  # runtime.queue.Tier, without importing the runtime


@contextmanager
def catalog() -> Iterator[Keys]:
    """The catalog itself, opened here: only the keys commands pay for it."""
    from modelyard.access.keys import Keys
    from modelyard.catalog.store import Store
    from modelyard.config import Settings

    settings = Settings()
    settings.ensure_home()
    store = Store(settings.catalog_url)
    try:
        yield Keys(store)
    finally:
        store.close()


@app.command("create")
@click.argument("name", help="what the key is for: a person, an app")
@click.option(
    "--scope",
    type=click.Choice(list(Scope), case_sensitive=False),
    default=Scope.INFERENCE,
    show_default=True,
    help="inference: /v1 only; admin: everything",
)
@click.option("--models", "-m", multiple=True, help="model names or globs it may use (/v1)")
@click.option("--expires", help="12h, 30d, 2w, a date, or never")
@click.option(
    "--priority",
    type=click.Choice(TIERS, case_sensitive=False),
    default="default",
    show_default=True,
    help="its requests' tier: the higher is served first",
)
def create(name: str, scope: Scope, models: tuple[str, ...], expires: str | None, priority: str) -> None:
    """Make a key. Its secret is printed once, here: it is not kept anywhere."""
    with catalog() as keys:
        key, secret = keys.create(name, Scope(scope), list(models), expires, priority.lower())
    err_console.print(
        f"[bold]{key.name}[/] ({key.scope}) made; its secret, shown this once:", highlight=False
    )
    print(secret)
    if key.scope == Scope.ADMIN:
        err_console.print("clients send `Authorization: Bearer <secret>`; the CLI reads MODELYARD_API_KEY")


@app.command("ls")
@click.option("--json", "as_json", is_flag=True)
def ls(as_json: bool) -> None:
    """List the keys (never their secrets)."""
    with catalog() as keys:
        listed = keys.list()
    if as_json:
        print_json(
            [
                {
                    "name": k.name,
                    "prefix": k.prefix,
                    "scope": k.scope,
                    "models": k.models,
                    "priority": k.priority,
                    "expires_at": k.expires_at.isoformat() if k.expires_at else None,
                    "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                }
                for k in listed
            ]
        )
        return
    if not listed:
        console.print("no API key: the server is open on loopback. `modelyard keys create NAME`")
        return
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0))
    for col in ("NAME", "SECRET", "SCOPE", "MODELS", "PRIORITY", "EXPIRES", "LAST USED"):
        table.add_column(col, overflow="fold")
    for k in listed:
        table.add_row(
            k.name,
            f"{k.prefix}…",
            k.scope,
            ", ".join(k.models) or "all",
            k.priority,
            f"{k.expires_at:%Y-%m-%d %H:%M}" if k.expires_at else "never",
            f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
        )
    console.print(table)


@app.command("edit")
@click.argument("name")
@click.option(
    "--priority", type=click.Choice(TIERS, case_sensitive=False), required=True, help="its requests' tier"
)
def edit(name: str, priority: str) -> None:
    """Change a key's priority: a running server serves its requests so within seconds."""
    with catalog() as keys:
        key = keys.prioritize(name, priority.lower())
    console.print(f"{key.name}: priority {key.priority}", highlight=False)


@app.command("rm")
@click.argument("name")
def rm(name: str) -> None:
    """Remove a key: requests with it are refused within seconds."""
    with catalog() as keys:
        keys.remove(name)
    console.print(f"removed the key {name}", highlight=False)
