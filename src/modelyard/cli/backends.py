"""`modelyard backends`: the engines installed, and installing them."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from modelyard.backends import llama_cpp
from modelyard.backends.install import install_llama_server
from modelyard.cli.common import friendly
from modelyard.cli.render import console
from modelyard.config import Settings
from modelyard.errors import EngineUnavailable, Unsupported

app = typer.Typer(help="Engines that run the models.", no_args_is_help=True)


@app.command("ls")
@friendly
def ls() -> None:
    """Show which engine each backend would use."""
    settings = Settings()
    try:
        runtime, program = llama_cpp.find_runtime(settings.llama_server, settings.bin_dir)
        where = program if runtime == llama_cpp.LLAMA_SERVER else f"{program} -m llama_cpp.server"
        console.print(f"llama.cpp  {runtime:<16} {where}", highlight=False)
    except EngineUnavailable as e:
        console.print(f"llama.cpp  [red]not installed[/]  {e.hint}", highlight=False)


@app.command("install")
@friendly
def install(
    name: str = typer.Argument(..., help="llama.cpp"),
    variant: str = typer.Option("cpu", "--variant", help="cpu or cuda"),
) -> None:
    """Build and install an engine (llama.cpp: llama-server from source, a few minutes)."""
    if name != "llama.cpp":
        raise Unsupported(f"modelyard cannot install {name!r} yet", hint="available: llama.cpp")
    if variant not in ("cpu", "cuda"):
        raise Unsupported(f"unknown variant {variant!r}", hint="cpu or cuda")
    settings = Settings()
    with Progress(
        TextColumn("[bold]{task.description:<10}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task("download", total=100)

        def report(stage: str, pct: float) -> None:
            bar.update(task, description=stage, completed=pct)

        path = install_llama_server(settings.bin_dir, variant=variant, progress=report)
    console.print(f"installed {path}", highlight=False)
