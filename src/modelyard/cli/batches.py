"""`modelyard batches`: batch jobs (OpenAI's Batches API): run a JSONL file of requests at low
priority, follow them with a progress bar, list every key's, cancel, read their output."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from modelyard.cli.client import Client
from modelyard.cli.common import Group, client
from modelyard.cli.render import console, print_json

app = Group("batches", help="Batch jobs: requests from a JSONL file, run after the interactive ones.")
ENDED = ("completed", "failed", "expired", "cancelled")
ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
POLL = 1.0


@app.command("ls")
@click.option("--json", "as_json", is_flag=True)
def ls(as_json: bool) -> None:
    """Every key's batches, the newest first."""
    batches = client().get("/api/batches")
    if as_json:
        print_json(batches)
        return
    if not batches:
        console.print("no batches: `modelyard batches run FILE` starts one")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("ID", "KEY", "ENDPOINT", "STATUS", "DONE", "FAILED", "CREATED"):
        table.add_column(col, justify="right" if col in ("DONE", "FAILED") else "left")
    for b in batches:
        created = datetime.fromtimestamp(b["created_at"]).strftime("%Y-%m-%d %H:%M")
        done = f"{b['completed'] + b['failed']}/{b['total']}"
        table.add_row(b["id"], b["key"], b["endpoint"], b["status"], done, str(b["failed"]), created)
    console.print(table)


@app.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--endpoint", "-e", type=click.Choice(ENDPOINTS), default=ENDPOINTS[0], show_default=True,
    help="what each line's url is",
)  # fmt: skip
@click.option("--detach", "-d", is_flag=True, help="start it and return; the server carries on")
def run(file: Path, endpoint: str, detach: bool) -> None:
    """Upload FILE (one request a line: {custom_id, method: POST, url, body}) and run it as a batch."""
    api = client()
    uploaded = api.upload("/v1/files", file.name, file.read_bytes(), {"purpose": "batch"})
    batch = api.post("/v1/batches", {"input_file_id": uploaded["id"], "endpoint": endpoint})
    if detach:
        console.print(f"batch {batch['id']} started", highlight=False)
        console.print(f"follow it: modelyard batches watch {batch['id']}", style="dim")
        return
    _report(follow(api, batch["id"]))


@app.command("watch")
@click.argument("bid", metavar="ID")
def watch(bid: str) -> None:
    """Follow a batch with a progress bar until it ends."""
    api = client()
    _report(follow(api, bid))


@app.command("cancel")
@click.argument("bid", metavar="ID")
def cancel(bid: str) -> None:
    """Stop a batch; what it answered stays in its output file."""
    batch = client().post(f"/api/batches/{bid}/cancel", {})
    console.print(f"batch {bid} {batch['status']}: {batch['completed']} answered", highlight=False)


@app.command("output")
@click.argument("bid", metavar="ID")
@click.option("--errors", is_flag=True, help="its error file instead")
@click.option(
    "--out", "-o", type=click.Path(dir_okay=False, path_type=Path), help="write it here, not to stdout"
)
def output(bid: str, errors: bool, out: Path | None) -> None:
    """A batch's output (or error) file: one JSON answer a line, by custom_id."""
    api = client()
    batch = api.get(f"/v1/batches/{bid}")
    fid = batch["error_file_id" if errors else "output_file_id"]
    if fid is None:
        raise click.ClickException(
            f"batch {bid} has no {'error' if errors else 'output'} file ({batch['status']})"
        )
    with api.stream("GET", f"/v1/files/{fid}/content") as answer:
        content = answer.read()
    if out is None:
        sys.stdout.buffer.write(content)
    else:
        out.write_bytes(content)
        lines = len(content.splitlines())
        console.print(f"{lines} line{'' if lines == 1 else 's'} written to {out}", highlight=False)


def _mine(api: Client, bid: str) -> dict[str, Any]:
    found = [b for b in api.get("/api/batches") if b["id"] == bid]
    if not found:
        raise click.ClickException(f"no batch {bid!r}: `modelyard batches ls` lists them")
    batch: dict[str, Any] = found[0]
    return batch


def follow(api: Client, bid: str) -> dict[str, Any]:
    """Poll one batch with a progress bar until it ends; the batch as it ended."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    batch = _mine(api, bid)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(f"{bid} ({batch['status']})", total=batch["total"] or None)
            while True:
                done = batch["completed"] + batch["failed"]
                progress.update(
                    task,
                    completed=done,
                    total=batch["total"] or None,
                    description=f"{bid} ({batch['status']})",
                )
                if batch["status"] in ENDED:
                    return batch
                time.sleep(POLL)
                batch = _mine(api, bid)
    except KeyboardInterrupt:
        console.print(f"\nthe batch goes on in the server; stop it with `modelyard batches cancel {bid}`")
        raise click.exceptions.Exit(130) from None


def _report(batch: dict[str, Any]) -> None:
    status = batch["status"]
    if status == "failed" and batch["errors"]:
        console.print(f"batch {batch['id']} failed:", highlight=False)
        for line in batch["errors"]:
            console.print(f"  {line}", highlight=False)
        raise click.exceptions.Exit(1)
    console.print(
        f"batch {batch['id']} {status}: {batch['completed']} answered, {batch['failed']} failed",
        highlight=False,
    )
    if batch["output_file_id"] or batch["error_file_id"]:
        console.print(f"read it: modelyard batches output {batch['id']}", style="dim")
