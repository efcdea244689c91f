"""`modelyard routes`: model routes, a name clients ask for that sends each request to one of its
targets by weight and falls back to the next where one cannot answer."""

from __future__ import annotations

from typing import Any

import click

from modelyard.cli.common import Group, client
from modelyard.cli.render import Column, console, fitted, print_json

app = Group("routes", help="Model routes: one name, weighted targets, fallback.", no_args_is_help=True)
PASSED = ("overloaded", "unavailable", "failed")


def _targets(given: tuple[str, ...]) -> list[dict[str, Any]]:
    """--target MODEL or MODEL=WEIGHT, in order."""
    targets = []
    for text in given:
        model, sep, weight = text.partition("=")
        if not model or (sep and not weight.isdigit()):
            raise click.BadParameter(
                f"{text!r}: give MODEL or MODEL=WEIGHT (0 or more)", param_hint="--target"
            )
        targets.append({"model": model, "weight": int(weight) if sep else 1})
    return targets


TARGET = click.option(
    "--target",
    "-t",
    "targets",
    multiple=True,
    required=True,
    help="MODEL or MODEL=WEIGHT (its share; 0: a fallback only), in the order of fallback",
)


@app.command("ls")
@click.option("--json", "as_json", is_flag=True)
def ls(as_json: bool) -> None:
    """The routes, their targets and what each did since the server started."""
    routes = client().get("/api/routes")
    if as_json:
        print_json(routes)
        return
    if not routes:
        console.print("no route. `modelyard routes create NAME -t MODEL=3 -t OTHER=1`")
        return
    # a route's name on the row of its first target only
    rows = [[r["name"] if i == 0 else "", *_cells(t)] for r in routes for i, t in enumerate(r["targets"])]
    columns = [Column("ROUTE", fold=True), Column("TARGET", fold=True), Column("WEIGHT"), Column("LOADED"),
               Column("SERVED"), Column("PASSED OVER", drop=1)]  # fmt: skip
    console.print(fitted(columns, rows))


def _cells(t: dict[str, Any]) -> list[str]:
    n = t["requests"]
    passed = ", ".join(f"{n[o]} {o}" for o in PASSED if n.get(o)) or "-"
    return [t["model"], str(t["weight"]), "yes" if t["loaded"] else "no", str(n.get("served", 0)), passed]


def _show(route: dict[str, Any]) -> None:
    console.print(f"[bold]{route['name']}[/]" + (f": {route['description']}" if route["description"] else ""))
    columns = [Column("TARGET", fold=True), Column("WEIGHT"), Column("LOADED"), Column("SERVED"),
               Column("PASSED OVER", drop=1)]  # fmt: skip
    console.print(fitted(columns, [_cells(t) for t in route["targets"]]))


@app.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def show(name: str, as_json: bool) -> None:
    """One route: its targets in order, what each did."""
    route = client().get(f"/api/routes/{name}")
    if as_json:
        print_json(route)
        return
    _show(route)


@app.command("create")
@click.argument("name")
@TARGET
@click.option("--description", "-d", default="", help="what it is for")
def create(name: str, targets: tuple[str, ...], description: str) -> None:
    """Make a route: clients ask for NAME as a model (it is listed in /v1/models)."""
    route = client().post(
        "/api/routes", {"name": name, "targets": _targets(targets), "description": description}
    )
    _show(route)


@app.command("edit")
@click.argument("name")
@TARGET
@click.option("--description", "-d", default=None, help="what it is for (kept when not given)")
def edit(name: str, targets: tuple[str, ...], description: str | None) -> None:
    """Replace a route's targets: the next request goes by them."""
    api = client()
    if description is None:
        description = api.get(f"/api/routes/{name}")["description"]
    route = api.put(f"/api/routes/{name}", {"targets": _targets(targets), "description": description})
    _show(route)


@app.command("rm")
@click.argument("name")
def rm(name: str) -> None:
    """Delete a route (its targets stay in the library)."""
    client().delete(f"/api/routes/{name}")
    console.print(f"deleted the route {name}", highlight=False)
