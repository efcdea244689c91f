"""Runtime commands: load, unload, ps, logs, run."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from modelyard.cli.client import ApiError, Client
from modelyard.cli.common import (
    Command,
    client,
    scheduling,
    scheduling_options,
)
from modelyard.cli.render import Column, console, err_console, fitted, human_size, print_json
from modelyard.errors import ModelNotLoaded

T = TypeVar("T")


def loading(what: str, send: Callable[[], T]) -> T:
    """``send`` (a load, a deployment) under a spinner; when the server answers that it started
    installing the engine (MODELYARD_AUTO_INSTALL), follow that install with a progress
    bar, then send it again."""
    try:
        with console.status(f"{what}..."):
            return send()
    except ApiError as e:
        if e.code != "engine_building":
            raise
        console.print(e.message, highlight=False)
        named = re.search(r"install job (\d+)", e.message)  # EngineBuilding names it
    from modelyard.cli.backends import follow_install

    jobs = (
        [int(named.group(1))]
        if named
        else [j["id"] for j in client().get("/api/installs") if j["state"] == "running"]
    )
    for job in jobs:
        follow_install(job)  # its error, if it fails
    with console.status(f"{what}..."):
        return send()


@click.command("load", cls=Command)
@click.argument("name", help="a model in the library")
@click.option("--lora", help="one of the model's LoRA adapters")
@click.option(
    "--replicas",
    "-r",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="engine processes serving it",
)
@click.option("--force", is_flag=True, help="load even if the estimate says it will not fit")
@scheduling_options
def load(
    name: str,
    lora: str | None,
    replicas: int,
    force: bool,
    **where: Any,
) -> None:
    """Load a model (unloading what the load rules say it replaces) and wait until it serves."""
    body = {
        "adapter": lora, "replicas": replicas, "force": force,
        **scheduling(**where),
    }  # fmt: skip
    dep = loading(f"loading {name}", lambda: client().post(f"/api/models/{name}/load", body))
    label = f"{name}{':' + lora if lora else ''}"
    for inst in dep["instances"]:
        if inst["state"] == "running":
            console.print(
                f"{label} serving (instance {inst['id']} on {inst['node']}, "
                f"pid {inst['pid']}, {human_size(inst['memory'])})",
                highlight=False,
            )
        else:  # on a cluster: no worker takes it yet
            console.print(
                f"{label} {inst['state']} (instance {inst['id']}): {inst['error']}", highlight=False
            )


@click.command("unload", cls=Command)
@click.argument("name")
@click.option("--force", is_flag=True, help="stop at once, even with requests in flight")
def unload(name: str, force: bool) -> None:
    """Unload a model; its requests in flight finish first unless --force."""
    with console.status(f"unloading {name}..."):
        client().post(f"/api/models/{name}/unload", {"force": force})
    console.print(f"unloaded {name}", highlight=False)


@click.command("ps", cls=Command)
@click.option("--json", "as_json", is_flag=True)
def ps(as_json: bool) -> None:
    """List running instances."""
    instances = client().get("/api/instances")
    if as_json:
        print_json(instances)
        return
    if not instances:
        console.print("no model is loaded: `modelyard load NAME`")
        return
    columns = [
        Column("ID"),
        Column("MODEL", fold=True),
        Column("STATE"),
        Column("WORKER", drop=6),
        Column("URL", drop=1),
        Column("PID"),
        Column("MEMORY", drop=3),
        Column("CLAIMED", drop=3),
        Column("CPU", drop=2),
        Column("RESTARTS"),
        Column("TOK/S", drop=4),
        Column("DRAFTS", drop=5),
    ]
    rows = [
        [
            str(i["id"]), i["model"] + (f":{i['adapter']}" if i["adapter"] else ""), i["state"],
            i["node"] or "-", i["url"] or "-", str(i["pid"] or "-"), human_size(i["memory"]) if i["memory"] else "-",
            _claimed(i.get("claimed") or []),
            f"{i['cpu_percent']:.0f}%", str(i["restarts"]),
            "-" if i.get("tokens_per_second") is None else f"{i['tokens_per_second']:.1f}",
            "-" if i.get("draft_acceptance") is None else f"{i['draft_acceptance']:.0%} accepted",
        ]
        for i in instances
    ]  # fmt: skip
    console.print(fitted(columns, rows))
    for i in instances:
        if i["error"] and i["state"] != "running":
            console.print(f"[red]{i['id']}:[/] {i['error']}", highlight=False)


def _claimed(claims: list[dict[str, Any]]) -> str:
    """What the placement claimed for an instance: its RAM, and its VRAM where it has some."""
    if not claims:
        return "-"
    ram = sum(c["ram"] for c in claims)
    vram = sum(g["bytes"] for c in claims for g in c["vram"])
    return human_size(ram) + (f" + {human_size(vram)} VRAM" if vram else "")


@click.command("logs", cls=Command)
@click.argument("target", help="an instance id, or a model name (its first instance)")
@click.option("--follow", "-f", is_flag=True, help="keep printing new lines")
@click.option("--lines", "-n", default=100, show_default=True, type=int, help="lines from the end")
def logs(target: str, follow: bool, lines: int) -> None:
    """Print an instance's log (one file per start; -f follows across restarts)."""
    api = client()
    instance_id = target if target.isdigit() else _first_instance(api.get("/api/instances"), target)
    params = {"lines": lines, "follow": follow}
    try:
        with api.stream("GET", f"/api/instances/{instance_id}/logs", params=params) as answer:
            for chunk in answer.chunks():
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass


def _first_instance(instances: list[dict[str, object]], model: str) -> str:
    for i in instances:
        if i["model"] == model:
            return str(i["id"])
    raise ModelNotLoaded(model)


@click.command("run", cls=Command)
@click.argument("name", help="a model (name, alias or base:adapter), or a model-compose file")
@click.argument("prompt", default=None, required=False, help="one prompt; without it, an interactive chat")
@click.option("--raw", is_flag=True, help="plain text completion instead of chat")
@click.option("--system", help="a system prompt")
@click.option("--max-tokens", default=512, show_default=True, type=int)
@click.option("--temperature", default=0.7, show_default=True, type=float)
@click.option("--input", "-i", "inputs", multiple=True, metavar="KEY=VALUE", help="a file's ${input.KEY}")
@click.option("--component", "component", default=None, help="run this component of the file")
@click.option("--workflow", "workflow", default=None, help="which of the file's workflows")
@click.option("--out", "out", default=None, help="where a file's image output goes (default: NAME.png)")
def run(
    name: str,
    prompt: str | None,
    raw: bool,
    system: str | None,
    max_tokens: int,
    temperature: float,
    inputs: tuple[str, ...],
    component: str | None,
    workflow: str | None,
    out: str | None,
) -> None:
    """Chat with a model in the terminal, streaming (loads it first if it is not loaded); or run
    a model-compose file's workflow (or one component) once with its --input values and print
    its output."""
    from modelyard.cli.compose import is_compose_file, run_file

    if is_compose_file(name):
        return run_file(name, inputs, component, workflow, out)
    if inputs or component or workflow or out:
        raise click.UsageError("--input, --component, --workflow and --out take a model-compose file (.yaml)")
    api = client()
    try:
        model = api.get(f"/api/models/{name.split(':')[0]}")
    except ApiError as e:
        if e.status != 403:
            raise
        model = None  # an inference key: /v1 only; the model loads itself if its autoload is on
    if model is not None and not model["loaded"]:
        adapter = name.split(":", 1)[1] if ":" in name else None
        load = {"adapter": adapter, "replicas": 1}
        loading(f"loading {name}", lambda: api.post(f"/api/models/{model['name']}/load", load))
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    interactive = prompt is None
    if interactive:
        err_console.print(f"[dim]{name}: type a message, Ctrl-D to quit[/]")
    while True:
        if interactive:
            try:
                text = console.input("[bold]> [/]")
            except EOFError:
                console.print()
                return
            if not text.strip():
                continue
        else:
            text = prompt or ""
        if raw:
            body: dict[str, object] = {"model": name, "prompt": text, "stream": True}
            path = "/v1/completions"
        else:
            messages.append({"role": "user", "content": text})
            body = {"model": name, "messages": messages, "stream": True}
            path = "/v1/chat/completions"
        body.update(max_tokens=max_tokens, temperature=temperature)
        answer = _stream(api, path, body, chat=not raw)
        if not raw:
            messages.append({"role": "assistant", "content": answer})
        if not interactive:
            return


def _stream(api: Client, path: str, body: dict[str, object], *, chat: bool) -> str:
    parts: list[str] = []
    with api.stream("POST", path, json=body) as answer:
        for line in answer.lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                console.print()
                err_console.print(f"[red]error:[/] {event['error']['message']}", highlight=False)
                break
            choice = event["choices"][0] if event.get("choices") else {}
            piece = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
            if piece:
                parts.append(piece)
                sys.stdout.write(piece)
                sys.stdout.flush()
    sys.stdout.write("\n")
    return "".join(parts)


@click.command("estimate", cls=Command)
@click.argument("name")
@click.option("--n-ctx", type=int, help="context size (0 = the model's own)")
@click.option("--n-gpu-layers", type=int)
@click.option("--parallel", type=int)
@click.option("--cache-type-k")
@click.option("--cache-type-v")
@click.option("--json", "as_json", is_flag=True)
def estimate(
    name: str,
    n_ctx: int | None,
    n_gpu_layers: int | None,
    parallel: int | None,
    cache_type_k: str | None,
    cache_type_v: str | None,
    as_json: bool,
) -> None:
    """How much memory a model needs with its settings (and these overrides), without loading it."""
    params = {
        "n_ctx": n_ctx, "n_gpu_layers": n_gpu_layers, "parallel": parallel,
        "cache_type_k": cache_type_k, "cache_type_v": cache_type_v,
    }  # fmt: skip
    e = client().get(
        f"/api/models/{name}/estimate", params={k: v for k, v in params.items() if v is not None}
    )
    if as_json:
        print_json(e)
        return
    ram = e["ram"]
    console.print(f"[bold]{name}[/] at n_ctx {e['n_ctx']} on {e['runtime']}", highlight=False)
    for part in ("weights", "kv_cache", "compute", "overhead", "prompt_cache"):
        if part == "prompt_cache" and not ram[part]:
            continue
        note = "   at most, as prompts are cached" if part == "prompt_cache" else ""
        console.print(f"  {part.replace('_', ' '):<12} {human_size(ram[part]):>10}{note}", highlight=False)
    console.print(
        f"  [bold]{'RAM':<12} {human_size(ram['total']):>10}[/]   free now {human_size(e['free_ram'])}"
    )
    for i, v in enumerate(e["vram"]):
        console.print(f"  GPU {i:<8} {human_size(v['total']):>10}", highlight=False)
    verdict = "[green]fits[/]" if e["fits"] else "[red]does not fit[/]"
    largest = f"; the largest context that fits: {e['max_ctx']}" if e["max_ctx"] else ""
    if e["max_gpu_layers"] is not None:
        largest += f"; GPU layers that fit: {e['max_gpu_layers']}"
    console.print(f"{verdict}{largest}", highlight=False)
