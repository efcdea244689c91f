"""`modelyard create`: a new model from a preset and settings, with a pretrained or trained
tokenizer, exported as a Hugging Face folder (and a GGUF) and imported into the library."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from modelyard.cli.common import Command, client
from modelyard.cli.render import console, err_console, human_count, human_size, print_json
from modelyard.cli.runtime import loading
from modelyard.errors import InvalidRequest

DESIGN_FIELDS = (
    "family", "vocab_size", "hidden_size", "layers", "heads", "kv_heads", "ffn_size", "context_length",
    "tied_embeddings", "dtype",
)  # fmt: skip


@click.command("create", cls=Command)
@click.option("--out", default="", help="the new model's folder (new or empty)")
@click.option("--preset", default="small", show_default=True, help="small, medium, large or free")
@click.option("--set", "values", multiple=True, help="a design field: k=v (layers=6, heads=8, dtype=float32)")
@click.option("--tokenizer", help="a library model whose tokenizer to take")
@click.option("--train-tokenizer", "corpus", help="train one from this .txt file")
@click.option(
    "--tokenizer-type", "kind", default="sentencepiece", show_default=True, help="sentencepiece or bpe"
)
@click.option(
    "--vocab",
    default=16_000,
    show_default=True,
    type=int,
    help="the trained tokenizer's size (8,000-50,000)",
)
@click.option("--name", help="its library name (default: the folder's name)")
@click.option("--gguf", help="also write a GGUF: F16 or Q8_0")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--ctx", "n_ctx", type=int, help="the context the memory estimate is for")
@click.option("--dry-run", is_flag=True, help="show the preview and the problems only")
@click.option("--list", "listing", is_flag=True, help="list the creations of this server run")
@click.option("--json", "as_json", is_flag=True)
def create(
    out: str,
    preset: str,
    values: tuple[str, ...],
    tokenizer: str | None,
    corpus: str | None,
    kind: str,
    vocab: int,
    name: str | None,
    gguf: str | None,
    seed: int,
    n_ctx: int | None,
    dry_run: bool,
    listing: bool,
    as_json: bool,
) -> None:
    """Create a new model (random weights, for experiments and pre-training)."""
    api = client()
    if listing:
        jobs = api.get("/api/create/jobs")
        if as_json:
            print_json(jobs)
        for j in [] if as_json else jobs:
            console.print(f"{j['id']:>3} {j['state']:<9} {j['name']:<24} {j['out']}", highlight=False)
        return
    body: dict[str, Any] = {
        "preset": preset,
        "design": _design(values),
        "out": str(Path(out).expanduser().absolute()) if out else "",
        "name": name,
        "tokenizer": {"model": tokenizer, "corpus": corpus, "kind": kind, "vocab_size": vocab},
        "gguf": gguf,
        "seed": seed,
        "n_ctx": n_ctx,
    }
    if corpus:
        body["tokenizer"]["corpus"] = str(Path(corpus).expanduser().absolute())
    shown = api.post("/api/create/preview", body)
    if dry_run:
        if as_json:
            print_json(shown)
        else:
            _show(shown)
        if shown["problems"]:
            raise click.exceptions.Exit(1)
        return
    if shown["problems"]:
        _show(shown)
        raise click.exceptions.Exit(1)
    job = _follow(api, loading("starting the creation", lambda: api.post("/api/create", body)))
    if as_json:
        print_json(job)
    elif job["state"] == "done":
        console.print(f"created {', '.join(job['models'])} in {job['out']}", highlight=False)
        console.print(f"[dim]{shown['warning']}[/]", highlight=False)
    if job["state"] != "done":
        err_console.print(f"[red]error:[/] {job['error'] or job['state']}", highlight=False)
        if job.get("hint"):
            err_console.print(f"[dim]{job['hint']}[/]", highlight=False)
        raise click.exceptions.Exit(1)


def _design(values: tuple[str, ...]) -> dict[str, Any]:
    design: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in DESIGN_FIELDS:
            raise InvalidRequest(
                f"--set {item!r}: use k=v with k one of {', '.join(DESIGN_FIELDS)}", param="set"
            )
        if key == "tied_embeddings":
            design[key] = value.lower() in ("1", "true", "yes", "on")
        elif key in ("family", "dtype"):
            design[key] = value
        else:
            try:
                design[key] = int(value.replace("_", "").replace(",", ""))
            except ValueError:
                raise InvalidRequest(f"--set {item!r}: {key} takes a whole number", param="set") from None
    return design


def _show(p: dict[str, Any]) -> None:
    d, n, m = p["design"], p["parameters"], p["memory"]
    console.print(
        f"[bold]{d['family']}[/] {d['layers']} layers, hidden {d['hidden_size']}, {d['heads']} heads "
        f"({d['kv_heads']} KV), FFN {d['ffn_size']}, vocabulary {d['vocab_size']:,}, context "
        f"{d['context_length']:,}, {d['dtype']}{', tied embeddings' if d['tied_embeddings'] else ''}",
        highlight=False,
    )
    console.print(
        f"parameters  {human_count(n['total'])} ({n['total']:,}): embedding {human_count(n['embedding'])}, "
        f"attention {human_count(n['attention'])}, MLP {human_count(n['mlp'])}, output {human_count(n['output'])}",
        highlight=False,
    )
    where = "GPU" if m["device"] == "cuda" else "RAM"
    console.print(
        f"memory      {human_size(m['total'])} {where} at {m['n_ctx']:,} tokens (weights {human_size(m['weights'])}, "
        f"KV cache {human_size(m['kv_cache'])}, activations {human_size(m['compute'])}); "
        f"{human_size(m['free'])} free",
        highlight=False,
    )
    if p["tokenizer"]:
        console.print(f"tokenizer   {p['tokenizer']}", highlight=False)
    for problem in p["problems"]:
        err_console.print(f"[red]{problem['field']}[/]: {problem['message']}", highlight=False)
    if not p["problems"]:
        console.print("[green]ready to create[/]")


def _follow(api: Any, job: dict[str, Any]) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description:<12}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task(job["stage"], total=100)
        try:
            while job["state"] == "running":
                time.sleep(0.25)
                job = api.get(f"/api/create/jobs/{job['id']}")
                bar.update(task, description=job["stage"], completed=100 * job["progress"])
        except KeyboardInterrupt:  # stop the export too: nothing half-made stays
            return dict(api.delete(f"/api/create/jobs/{job['id']}"))
    return job
