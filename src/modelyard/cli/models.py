"""Library commands: import, scan, inspect, ls, show, rm, edit, settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from modelyard.cli.common import Command, client, parse_assignments
from modelyard.cli.render import console, human_count, human_size, model_detail, models_table, print_json


def _abs(path: str) -> str:
    """Paths go to the server as absolute paths: it may run in another folder."""
    return str(Path(path).expanduser().absolute())


@click.command("import", cls=Command)
@click.argument("path", default=None, required=False, help="a model file or folder")
@click.option("--url", help="or a server that already runs: OpenAI-compatible (or TGI) at this URL")
@click.option("--api-key", help="that server's API key")
@click.option("--model", "remote_model", help="which of that server's models (default: its first)")
@click.option("--name", "-n", help="name in the library (default: from the file)")
@click.option("--description", "-d", default="")
@click.option("--category", "-c", help="chat, embedding, rerank, multimodal, image (default: detected)")
@click.option("--template", "-t", help="image models: sd_official, flux, video")
@click.option("--mmproj", help="multimodal projector (default: the one beside the model)")
@click.option("--vae", help="image models: VAE file")
@click.option("--clip-l", help="image models: CLIP-L text encoder")
@click.option("--clip-g", help="image models: CLIP-G text encoder")
@click.option("--t5xxl", help="image models: T5-XXL text encoder")
@click.option(
    "--capability",
    multiple=True,
    help="image models: text-to-image, image-to-image, video (repeatable)",
)
@click.option("--json", "as_json", is_flag=True, help="print the record as JSON")
def import_(
    path: str | None,
    url: str | None,
    api_key: str | None,
    remote_model: str | None,
    name: str | None,
    description: str,
    category: str | None,
    template: str | None,
    mmproj: str | None,
    vae: str | None,
    clip_l: str | None,
    clip_g: str | None,
    t5xxl: str | None,
    capability: tuple[str, ...],
    as_json: bool,
) -> None:
    """Import a model file or folder into the library (the files stay where they are), or
    register a server that already runs (--url): its requests go there through the gateway."""
    if (path is None) == (url is None):
        raise click.UsageError("give a PATH or --url")
    if url is not None:
        remote: dict[str, Any] = {"url": url, "api_key": api_key, "remote_model": remote_model, "name": name,
                "description": description, "category": category}  # fmt: skip
        with console.status(f"asking {url}..."):
            model = client().post("/api/models", remote)
        if as_json:
            print_json(model)
            return
        console.print(
            f"registered [bold]{model['name']}[/]: {model['description']} ({model['category']})",
            highlight=False,
        )
        return
    assert path is not None
    roles = {"mmproj": mmproj, "vae": vae, "clip_l": clip_l, "clip_g": clip_g, "t5xxl": t5xxl}
    body = {
        "path": _abs(path),
        "name": name,
        "description": description,
        "category": category,
        "template": template,
        "components": {role: _abs(p) for role, p in roles.items() if p},
        "capabilities": capability or None,
    }
    with console.status("inspecting and importing..."):
        model = client().post("/api/models", body)
    if as_json:
        print_json(model)
        return
    console.print(
        f"imported [bold]{model['name']}[/]: {model['category']}, {model['format']}"
        f"{' ' + model['quantization'] if model['quantization'] else ''}"
        f"{', ' + model['architecture'] if model['architecture'] else ''}"
        f"{', ' + human_count(model['parameters']) + ' parameters' if model['parameters'] else ''}"
        f", {human_size(model['size'])}",
        highlight=False,
    )
    for c in model["components"]:
        console.print(f"  with {c['role']}: {c['path']}", highlight=False)
    for w in model["facts"].get("warnings", []):
        console.print(f"  [yellow]warning:[/] {w}", highlight=False)


@click.command("scan", cls=Command)
@click.argument("folder", help="a folder to search for models")
@click.option("--json", "as_json", is_flag=True)
def scan(folder: str, as_json: bool) -> None:
    """Import every recognisable model under a folder; scanning again changes nothing."""
    with console.status(f"scanning {folder}..."):
        report = client().post("/api/scan", {"path": _abs(folder)})
    if as_json:
        print_json(report)
        return
    for name in report["imported"]:
        console.print(f"[green]imported[/] {name}", highlight=False)
    for item in report["skipped"]:
        console.print(f"[yellow]skipped[/]  {item['path']}: {item['reason']}", highlight=False)
    for item in report["failed"]:
        console.print(f"[red]failed[/]   {item['path']}: {item['reason']}", highlight=False)
    console.print(
        f"{len(report['imported'])} imported, {len(report['unchanged'])} already in the library, "
        f"{len(report['skipped'])} skipped, {len(report['failed'])} failed"
    )


@click.command("inspect", cls=Command)
@click.argument("path", help="a model file or folder")
@click.option("--json", "as_json", is_flag=True)
def inspect(path: str, as_json: bool) -> None:
    """Show what a file or folder is, without importing it (works without the server)."""
    from modelyard.api.schemas import InspectionOut
    from modelyard.formats.detect import inspect_path

    insp = InspectionOut.of(inspect_path(path))
    if as_json:
        print_json(insp.model_dump(mode="json"))
        return
    data = insp.model_dump()
    for key in ("kind", "format", "category", "role", "template", "architecture", "quantization"):
        if data[key]:
            suffix = " (from the name)" if key == "category" and insp.category_from == "name" else ""
            console.print(f"[bold]{key:<13}[/] {data[key]}{suffix}", highlight=False)
    if insp.parameters:
        console.print(f"[bold]{'parameters':<13}[/] {human_count(insp.parameters)} ({insp.parameters:,})")
    if insp.context_length:
        console.print(f"[bold]{'context':<13}[/] {insp.context_length}")
    console.print(f"[bold]{'size':<13}[/] {human_size(insp.size)} in {len(insp.files)} file(s)")
    console.print(f"[bold]{'loaders':<13}[/] {', '.join(insp.loaders) or 'none'}")
    for c in insp.companions:
        console.print(f"[bold]{'mmproj':<13}[/] {c}", highlight=False)
    for w in insp.warnings:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)


@click.command("ls", cls=Command)
@click.option("--category", "-c", help="only this category")
@click.option("--json", "as_json", is_flag=True)
def ls(category: str | None, as_json: bool) -> None:
    """List the models in the library."""
    models = client().get("/api/models", params={"category": category} if category else None)
    if as_json:
        print_json(models)
    elif not models:
        console.print("the library is empty: `modelyard import PATH` or `modelyard scan FOLDER`")
    else:
        console.print(models_table(models))


@click.command("show", cls=Command)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def show(name: str, as_json: bool) -> None:
    """Show every detected fact of a model."""
    model = client().get(f"/api/models/{name}")
    if as_json:
        print_json(model)
    else:
        console.print(model_detail(model))


@click.command("rm", cls=Command)
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="do not ask")
def rm(name: str, yes: bool) -> None:
    """Delete a model's record with its adapters and components. Files are never deleted."""
    api = client()
    model = api.get(f"/api/models/{name}")
    if not yes:
        extra = f" and its {len(model['adapters'])} adapter(s)" if model["adapters"] else ""
        click.confirm(f"delete {name}{extra} from the library (files stay on disk)?", abort=True)
    api.delete(f"/api/models/{name}")
    console.print(f"deleted {name} (files kept at {model['path']})", highlight=False)


@click.command("edit", cls=Command)
@click.argument("name")
@click.option("--name", "-n", "new_name", help="rename")
@click.option("--description", "-d")
@click.option("--category", "-c")
@click.option("--capability", multiple=True, help="image models (repeatable)")
@click.option("--autoload/--no-autoload", default=None, help="load on the first request")
@click.option("--alias", multiple=True, help="another name for the gateway (repeatable)")
@click.option("--json", "as_json", is_flag=True)
def edit(
    name: str,
    new_name: str | None,
    description: str | None,
    category: str | None,
    capability: tuple[str, ...],
    autoload: bool | None,
    alias: tuple[str, ...],
    as_json: bool,
) -> None:
    """Rename a model; change its description, category, capabilities, autoload or aliases."""
    body = {
        k: v
        for k, v in {
            "name": new_name,
            "description": description,
            "category": category,
            "capabilities": capability or None,
            "autoload": autoload,
            "aliases": alias or None,
        }.items()
        if v is not None
    }
    if not body:
        raise click.UsageError("nothing to change: see `modelyard edit --help`")
    model = client().patch(f"/api/models/{name}", body)
    if as_json:
        print_json(model)
    else:
        console.print(f"updated {model['name']}", highlight=False)


@click.command("settings", cls=Command)
@click.argument("name")
@click.option("--set", "-s", "set_", multiple=True, help="KEY=VALUE, e.g. n_ctx=8192 (repeatable)")
@click.option("--unset", multiple=True, help="KEY back to its default (repeatable)")
@click.option("--reset", is_flag=True, help="forget every saved option")
@click.option("--backend", help="save them for this backend (vllm, llama-cpp-python, ...): its options")
@click.option("--json", "as_json", is_flag=True)
def settings(
    name: str, set_: tuple[str, ...], unset: tuple[str, ...], reset: bool, backend: str | None, as_json: bool
) -> None:
    """Show or change a model's saved settings (validated by its backend; n_ctx 0 = the model's own)."""
    api = client()
    options = parse_assignments(set_ or [])
    options.update({key: None for key in unset or []})
    if reset or options or backend:
        # the server merges into the saved options (null removes one); --reset replaces them
        body = {"options": options, "replace": reset, "backend": backend}
        result = api.put(f"/api/models/{name}/settings", body)
    else:
        result = api.get(f"/api/models/{name}/settings")
    if as_json:
        print_json(result)
        return
    console.print(f"[bold]{name}[/] ({result['backend']})", highlight=False)
    for key, value in result["effective"].items():
        mark = "*" if key in result["saved"] else " "
        console.print(f" {mark} {key:<16} {value}", highlight=False)
    console.print("[dim]* saved for this model; the rest are defaults[/]")
