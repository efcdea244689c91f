"""`modelyard usage` (tokens, requests, images and loads per model or key) and `modelyard
quotas` (how many loads of embedding, rerank, multimodal and image models a key may make)."""

from __future__ import annotations

from typing import Any

import click

from modelyard.cli.common import Command, Group, client
from modelyard.cli.render import Column, console, fitted, human_count, print_json

app = Group(
    "quotas", help="Quotas on loads of embedding, rerank, multimodal and image models.", no_args_is_help=True
)
PERIODS = ("day", "week", "month", "total")


@click.command("usage", cls=Command)
@click.option("--since", default="7d", show_default=True, help="a span back from now (24h, 7d, 2w) or a date")
@click.option("--by", default="model", show_default=True, help="model or key")
@click.option("--key", help="only this key's usage")
@click.option("--json", "as_json", is_flag=True)
def usage(since: str, by: str, key: str | None, as_json: bool) -> None:
    """What was used: requests, tokens in and out, images and quota-counted loads."""
    if by not in ("model", "key"):
        raise click.BadParameter("model or key", param_hint="--by")
    params = {"since": since, "by": by} | ({"key": key} if key else {})
    answer = client().get("/api/usage", params=params)
    if as_json:
        print_json(answer)
        return
    rows = answer["totals"]
    if not rows:
        console.print(f"nothing used since {answer['since'][:16].replace('T', ' ')} UTC", highlight=False)
        return
    columns = [Column(by.upper(), fold=True), Column("REQUESTS"), Column("TOKENS IN"), Column("TOKENS OUT"),
               Column("IMAGES", drop=2), Column("LOADS", drop=1)]  # fmt: skip
    console.print(fitted(columns, [_cells(r) for r in rows]))


def _cells(r: dict[str, Any]) -> list[str]:
    return [r["name"], str(r["requests"]), human_count(r["tokens_in"]), human_count(r["tokens_out"]),
            str(r["images"]), str(r["loads"])]  # fmt: skip


@app.command("ls")
@click.option("--json", "as_json", is_flag=True)
def ls(as_json: bool) -> None:
    """The quotas, and where each key stands against the one that applies to it."""
    answer = client().get("/api/quotas")
    if as_json:
        print_json(answer)
        return
    if not answer["quotas"]:
        console.print("no quota: every model loads freely. `modelyard quotas set --loads N`")
        return
    columns = [
        Column("KEY", fold=True),
        Column("QUOTA"),
        Column("USED"),
        Column("LEFT"),
        Column("RENEWS", drop=1),
    ]
    rows = [
        [s["key"] + ("" if s["quota"] == s["key"] else " (*)"), f"{s['loads']} per {s['period']}"
         if s["period"] != "total" else f"{s['loads']} in total", str(s["used"]), str(s["left"]),
         (s["renews"] or "never")[:16].replace("T", " ")]
        for s in answer["standings"]
    ]  # fmt: skip
    console.print(fitted(columns, rows))


@app.command("set")
@click.option("--loads", required=True, type=click.IntRange(min=0), help="loads allowed per period (0: none)")
@click.option("--per", default="day", show_default=True, help="day, week, month or total")
@click.option(
    "--key",
    default="*",
    show_default=True,
    help='a key\'s name; "*" (default): every key without its own',
)
def set_(loads: int, per: str, key: str) -> None:
    """Set a quota: loads of embedding, rerank, multimodal and image models (chat loads are free)."""
    if per not in PERIODS:
        raise click.BadParameter(", ".join(PERIODS), param_hint="--per")
    q = client().put(f"/api/quotas/{key}", {"loads": loads, "period": per})
    who = "every key without its own" if q["key"] == "*" else f"the key {q['key']}"
    console.print(
        f"{who}: {q['loads']} loads {'in total' if per == 'total' else 'per ' + per}", highlight=False
    )


@app.command("rm")
@click.option(
    "--key",
    default="*",
    show_default=True,
    help='a key\'s name; "*" (default): the quota for every key',
)
def rm(key: str) -> None:
    """Remove a quota."""
    client().delete(f"/api/quotas/{key}")
    console.print(f"removed the quota of {'every key' if key == '*' else key}", highlight=False)
