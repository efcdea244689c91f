"""`modelyard component`: mmproj, VAE, CLIP-L, CLIP-G and T5-XXL files of a model."""

from __future__ import annotations

from pathlib import Path

import click

from modelyard.cli.common import Group, client
from modelyard.cli.render import console

app = Group("component", help="Components of a model (mmproj, vae, clip_l, clip_g, t5xxl).")


@app.command("set")
@click.argument("model")
@click.argument("role", help="mmproj, vae, clip_l, clip_g or t5xxl")
@click.argument("path")
def set_(model: str, role: str, path: str) -> None:
    """Attach or replace a component."""
    client().put(f"/api/models/{model}/components/{role}", {"path": str(Path(path).expanduser().absolute())})
    console.print(f"{model}: {role} set", highlight=False)


@app.command("rm")
@click.argument("model")
@click.argument("role")
def rm(model: str, role: str) -> None:
    """Detach a component (its file stays)."""
    client().delete(f"/api/models/{model}/components/{role}")
    console.print(f"{model}: {role} removed", highlight=False)
