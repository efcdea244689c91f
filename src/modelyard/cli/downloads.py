"""Commands for the hubs and downloads: search, files, pull, downloads."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from modelyard.cli.client import Client
from modelyard.cli.common import Command, Group, client
from modelyard.cli.render import console, err_console, human_count, human_size, print_json
from modelyard.errors import HubError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


ENDED = ("completed", "failed", "cancelled")
SOURCE_HELP = "hf, modelscope or ollama (when the reference does not say)"


@click.command("search", cls=Command)
@click.argument("query", default="", required=False, help="words in the repo name")
@click.option("--source", "-s", default="hf", show_default=True, help="hf or modelscope")
@click.option("--category", "-c", help="chat, embedding, rerank, image, ...")
@click.option("--gguf", is_flag=True, help="only repos with GGUF files")
@click.option("--limit", "-n", default=20, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True)
def search(query: str, source: str, category: str | None, gguf: bool, limit: int, as_json: bool) -> None:
    """Search a hub for models."""
    params: dict[str, Any] = {"q": query, "source": source, "gguf": gguf, "limit": limit}
    if category:
        params["category"] = category
    hits = client().get("/api/hub/search", params=params)
    if as_json:
        print_json(hits)
        return
    if not hits:
        console.print("nothing found")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("REPO", "TASK", "GGUF", "DOWNLOADS", "LIKES"):
        table.add_column(col, justify="right" if col in ("DOWNLOADS", "LIKES") else "left")
    for h in hits:
        table.add_row(
            h["repo"],
            h["task"] or "",
            "yes" if h["gguf"] else "",
            human_count(h["downloads"]),
            str(h["likes"]),
        )
    console.print(table)


@click.command("files", cls=Command)
@click.argument("ref", help="org/model, a URL, or ollama:name:tag")
@click.option("--source", "-s", help=SOURCE_HELP)
@click.option("--json", "as_json", is_flag=True)
def files(ref: str, source: str | None, as_json: bool) -> None:
    """A repo's files: GGUF files grouped by quantization (shards together), with sizes."""
    params = {"ref": ref} | ({"source": source} if source else {})
    repo = client().get("/api/hub/files", params=params)
    if as_json:
        print_json(repo)
        return
    console.print(f"{repo['source']}:{repo['repo']} at {repo['revision']}", highlight=False)
    table = Table(box=None, pad_edge=False)
    table.add_column("GROUP")
    table.add_column("SIZE", justify="right")
    table.add_column("FILES")
    for g in repo["groups"]:
        paths = [f["path"] for f in g["files"]]
        shown = paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1})"
        if g["shards"]:
            shown += f"  [{g['shards']} shards]"
        table.add_row(g["name"], human_size(g["size"]), shown)
    console.print(table)
    if repo["gguf"]:
        quants = [g["name"] for g in repo["groups"] if g["name"] not in ("mmproj", "other")]
        if quants:
            console.print(
                f"pull one: modelyard pull {repo['source']}:{repo['repo']}:{quants[0]}", style="dim"
            )


@click.command("pull", cls=Command)
@click.argument("ref", help="org/model[:quant|:branch], a URL, hf.co/org/model:Q4_K_M, ollama:name:tag")
@click.option("--source", "-s", help=SOURCE_HELP)
@click.option("--quant", "-q", help="a GGUF quantization, such as Q4_K_M")
@click.option("--file", "-f", multiple=True, help="a file or a glob pattern (repeatable)")
@click.option("--all", "everything", is_flag=True, help="every file of the repo")
@click.option("--base", help="a LoRA repo: the library model it binds to")
@click.option("--name", help="the name the imported model gets")
@click.option("--dir", "directory", help="save into DIR/<repo name> (an absolute path on the server)")
@click.option("--detach", "-d", is_flag=True, help="start it and return; the server carries on")
def pull(
    ref: str,
    source: str | None,
    quant: str | None,
    file: tuple[str, ...],
    everything: bool,
    base: str | None,
    name: str | None,
    directory: str | None,
    detach: bool,
) -> None:
    """Download a model into the library (resumable, verified, imported when done)."""
    api = client()
    body = {
        "ref": ref,
        "source": source,
        "quantization": quant,
        "files": file,
        "all": everything,
        "base": base,
        "name": name,
        "directory": directory,
    }
    job = api.post("/api/downloads", body)
    if detach:
        console.print(
            f"download {job['id']}: {_count(len(job['files']), 'file')}, {human_size(job['bytes_total'])}, "
            f"into {job['destination']}",
            highlight=False,
        )
        console.print(f"watch it: modelyard downloads watch {job['id']}", style="dim")
        return
    follow(api, job)


def follow(api: Client, job: dict[str, Any]) -> dict[str, Any]:
    """Follow one job's events with a progress bar until it ends; the job as it ended."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    job_id = job["id"]
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[files]}"),
    )
    last = job
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(_label(job), total=job["bytes_total"] or None, files=_files(job))
            for event in _events(api):
                if event["id"] != job_id:
                    continue
                last = event
                _update(progress, task, event)
                if event["state"] in ENDED:
                    break
    except KeyboardInterrupt:
        console.print(
            f"\nthe download goes on in the server; stop it with `modelyard downloads pause {job_id}`",
            highlight=False,
        )
        raise click.exceptions.Exit(130) from None
    _report(last)
    return last


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


def _label(job: dict[str, Any]) -> str:
    return escape(f"{job['repo']} ({job['state']})")


def _files(job: dict[str, Any]) -> str:
    return f"{job['files_done']}/{job['files_total']} files"


def _update(progress: Progress, task: TaskID, job: dict[str, Any]) -> None:
    progress.update(task, completed=job["bytes_done"], description=_label(job), files=_files(job))


def _events(api: Client) -> Any:
    with api.stream("GET", "/api/downloads/events") as answer:
        for line in answer.lines():
            if line.startswith("data: "):
                yield json.loads(line[6:])


def _report(job: dict[str, Any]) -> None:
    if job["state"] == "completed":
        models = ", ".join(job["models"]) or "nothing new"
        console.print(f"done: {human_size(job['bytes_total'])} in {job['destination']}", highlight=False)
        console.print(f"imported: {models}", highlight=False)
        if job["note"]:
            console.print(job["note"], style="dim", highlight=False)
        return
    if job["state"] == "failed":
        raise HubError(f"download {job['id']} failed: {job['error']}", hint=job["hint"])
    err_console.print(f"download {job['id']} is {job['state']}", highlight=False)
    raise click.exceptions.Exit(1)


# -- modelyard downloads ... ------------------------------------------------------------------


@click.group("downloads", cls=Group, invoke_without_command=True)
@click.pass_context
def app(ctx: click.Context) -> None:
    """Download jobs: list, watch, pause, resume, cancel. `modelyard downloads` lists them."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(ls)


@app.command()
@click.option("--json", "as_json", is_flag=True)
def ls(as_json: bool) -> None:
    """List download jobs with their state, progress, speed and ETA."""
    jobs = client().get("/api/downloads")
    if as_json:
        print_json(jobs)
        return
    if not jobs:
        console.print("no downloads")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("ID", "REPO", "STATE", "DONE", "SIZE", "FILES", "SPEED", "ETA"):
        table.add_column(col, justify="right" if col in ("ID", "DONE", "SIZE", "SPEED", "ETA") else "left")
    for j in jobs:
        share = f"{100 * j['bytes_done'] / j['bytes_total']:.0f}%" if j["bytes_total"] else ""
        table.add_row(
            str(j["id"]),
            j["repo"],
            j["state"],
            share,
            human_size(j["bytes_total"]),
            f"{j['files_done']}/{j['files_total']}",
            f"{human_size(int(j['speed']))}/s" if j["speed"] else "",
            _eta(j["eta"]),
        )
    console.print(table)
    for j in jobs:
        if j["state"] == "failed":
            err_console.print(f"{j['id']}: {j['error']}", style="red", highlight=False)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@app.command()
@click.argument("job", type=int, help="a download id")
def watch(job: int) -> None:
    """Follow a download with a progress bar."""
    api = client()
    current = api.get(f"/api/downloads/{job}")
    if current["state"] in ENDED:
        _report(current)
        return
    follow(api, current)


@app.command()
@click.argument("job", type=int, help="a download id")
def pause(job: int) -> None:
    """Pause a download; `resume` goes on from where it stopped."""
    _show(client().post(f"/api/downloads/{job}/pause", {}))


@app.command()
@click.argument("job", type=int, help="a download id")
def resume(job: int) -> None:
    """Resume a paused or failed download."""
    _show(client().post(f"/api/downloads/{job}/resume", {}))


@app.command()
@click.argument("job", type=int, help="a download id")
def cancel(job: int) -> None:
    """Stop a download and delete its partial files."""
    _show(client().post(f"/api/downloads/{job}/cancel", {}))


@app.command()
@click.argument("job", type=int, help="a download id")
def rm(job: int) -> None:
    """Remove an ended download from the list (the files it imported stay)."""
    client().request("DELETE", f"/api/downloads/{job}")
    console.print(f"removed download {job}")


def _show(job: dict[str, Any]) -> None:
    console.print(f"download {job['id']} ({job['repo']}): {job['state']}", highlight=False)
