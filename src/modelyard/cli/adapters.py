"""`modelyard lora`: LoRA adapters bound to a base model."""

from __future__ import annotations

from pathlib import Path

import click

from modelyard.cli.common import Group, client
from modelyard.cli.render import console, human_size, print_json

app = Group("lora", help="LoRA adapters of a base model.")


@app.command("add")
@click.argument("base", help="the base model")
@click.argument("path", help="a GGUF LoRA, a PEFT folder, or an SD LoRA file or folder")
@click.option("--name", "-n")
@click.option("--description", "-d", default="")
def add(base: str, path: str, name: str | None, description: str) -> None:
    """Bind a LoRA adapter to a base model, after checking that it fits."""
    body = {"path": str(Path(path).expanduser().absolute()), "name": name, "description": description}
    model = client().post(f"/api/models/{base}/adapters", body)
    added = model["adapters"]
    chosen = next((a for a in added if a["path"] == body["path"]), added[-1])
    console.print(f"added {base}:{chosen['name']} ({chosen['format']})", highlight=False)


@app.command("ls")
@click.argument("base")
@click.option("--json", "as_json", is_flag=True)
def ls(base: str, as_json: bool) -> None:
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
@click.argument("base")
@click.argument("name")
def rm(base: str, name: str) -> None:
    """Unbind an adapter (its files stay)."""
    client().delete(f"/api/models/{base}/adapters/{name}")
    console.print(f"removed {base}:{name}", highlight=False)
