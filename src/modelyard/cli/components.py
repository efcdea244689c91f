"""`modelyard component`: mmproj, VAE, CLIP-L, CLIP-G and T5-XXL files of a model."""

from __future__ import annotations

from pathlib import Path

import typer

from modelyard.cli.common import client, friendly
from modelyard.cli.render import console

app = typer.Typer(help="Components of a model (mmproj, vae, clip_l, clip_g, t5xxl).", no_args_is_help=True)


@app.command("set")
@friendly
def set_(
    model: str = typer.Argument(...),
    role: str = typer.Argument(..., help="mmproj, vae, clip_l, clip_g or t5xxl"),
    path: str = typer.Argument(...),
) -> None:
    """Attach or replace a component."""
    client().put(f"/api/models/{model}/components/{role}", {"path": str(Path(path).expanduser().absolute())})
    console.print(f"{model}: {role} set", highlight=False)


@app.command("rm")
@friendly
def rm(model: str = typer.Argument(...), role: str = typer.Argument(...)) -> None:
    """Detach a component (its file stays)."""
    client().delete(f"/api/models/{model}/components/{role}")
    console.print(f"{model}: {role} removed", highlight=False)
