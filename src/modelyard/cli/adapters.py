"""`modelyard lora`: LoRA adapters bound to a base model."""

from __future__ import annotations

from pathlib import Path

import typer

from modelyard.cli.common import client, friendly
from modelyard.cli.render import console, human_size, print_json

app = typer.Typer(help="LoRA adapters of a base model.", no_args_is_help=True)


@app.command("add")
@friendly
def add(
    base: str = typer.Argument(..., help="the base model"),
    path: str = typer.Argument(..., help="a GGUF LoRA, a PEFT folder, or an SD LoRA file or folder"),
    name: str | None = typer.Option(None, "--name", "-n"),
    description: str = typer.Option("", "--description", "-d"),
) -> None:
    """Bind a LoRA adapter to a base model, after checking that it fits."""
    body = {"path": str(Path(path).expanduser().absolute()), "name": name, "description": description}
    model = client().post(f"/api/models/{base}/adapters", body)
    added = model["adapters"]
    chosen = next((a for a in added if a["path"] == body["path"]), added[-1])
    console.print(f"added {base}:{chosen['name']} ({chosen['format']})", highlight=False)


@app.command("ls")
@friendly
def ls(base: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """List a model's adapters."""
    adapters = client().get(f"/api/models/{base}")["adapters"]
    if as_json:
        print_json(adapters)
        return
    for a in adapters:
        console.print(
            f"{a['name']:<24} {a['format']:<10} {human_size(a['size']):>9}  {a['path']}", highlight=False
        )


@app.command("rm")
@friendly
def rm(base: str = typer.Argument(...), name: str = typer.Argument(...)) -> None:
    """Unbind an adapter (its files stay)."""
    client().delete(f"/api/models/{base}/adapters/{name}")
    console.print(f"removed {base}:{name}", highlight=False)
