"""`modelyard backends`: the engines installed, and installing them."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from modelyard.backends import environments, llama_cpp
from modelyard.backends.install import install_llama_server
from modelyard.cli.common import friendly
from modelyard.cli.render import console
from modelyard.config import Settings
from modelyard.errors import EngineUnavailable, Unsupported

app = typer.Typer(help="Engines that run the models.", no_args_is_help=True)


@app.command("ls")
@friendly
def ls() -> None:
    """Show which engine or environment each backend would use, and the managed environments."""
    settings = Settings()
    try:
        runtime, program = llama_cpp.find_runtime(settings.llama_server, settings.bin_dir)
        where = program if runtime == llama_cpp.LLAMA_SERVER else f"{program} -m llama_cpp.server"
        console.print(f"{'llama.cpp':<22} {runtime:<16} {where}", highlight=False)
    except EngineUnavailable as e:
        console.print(f"{'llama.cpp':<22} [red]not installed[/]  {e.hint}", highlight=False)
    for backend in environments.PACKAGES:
        managed = environments.installed(settings.envs_dir, backend)
        try:
            python = environments.interpreter_for(
                backend, settings.envs_dir, managed_only=settings.python_envs == "managed"
            )
            where = "server python" if python.where == "server" else "managed env"
            console.print(f"{backend:<22} {where:<16} {python.python}", highlight=False)
        except EngineUnavailable as e:
            console.print(f"{backend:<22} [red]not installed[/]  {e.hint}", highlight=False)
        for variant, folder in managed:
            console.print(f"{'':<22} {'env ' + variant:<16} {folder}", highlight=False)


@app.command("install")
@friendly
def install(
    name: str = typer.Argument(..., help="llama.cpp, sentence-transformers, transformers or diffusers"),
    variant: str | None = typer.Option(
        None, "--variant", help="cpu or cuda (default: cuda with an NVIDIA GPU)"
    ),
) -> None:
    """Install an engine: llama.cpp builds llama-server from source (a few minutes); a Python
    backend gets a managed virtualenv with pinned packages under MODELYARD_HOME/envs."""
    variant = variant or environments.default_variant()
    if variant not in ("cpu", "cuda"):
        raise Unsupported(f"unknown variant {variant!r}", hint="cpu or cuda")
    settings = Settings()
    if name in environments.PACKAGES:
        _install_env(settings, name, variant)
        return
    if name != "llama.cpp":
        raise Unsupported(
            f"modelyard cannot install {name!r}",
            hint=f"available: llama.cpp, {', '.join(environments.PACKAGES)}",
        )
    with Progress(
        TextColumn("[bold]{task.description:<10}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task("download", total=100)

        def report(stage: str, pct: float) -> None:
            bar.update(task, description=stage, completed=pct)

        path = install_llama_server(settings.bin_dir, variant=variant, progress=report)
    console.print(f"installed {path}", highlight=False)


def _install_env(settings: Settings, backend: str, variant: str) -> None:
    with Progress(
        TextColumn("[bold]{task.description:<48}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console,
    ) as bar:  # fmt: skip
        task = bar.add_task("virtualenv", total=3)

        def report(stage: str, step: int, steps: int) -> None:
            bar.update(task, description=stage[:48], completed=step, total=steps)

        folder = environments.install_env(
            settings.envs_dir, backend, variant, torch_index=settings.torch_index or None, progress=report
        )
    console.print(f"installed {backend} ({variant}) in {folder}", highlight=False)
