"""The modelyard command: `modelyard --help` lists everything."""

from __future__ import annotations

import typer

from modelyard import __version__
from modelyard.cli import (
    adapters,
    backends,
    cluster,
    components,
    create,
    deployments,
    downloads,
    keys,
    models,
    runtime,
    specs,
    usage,
)
from modelyard.cli.common import friendly
from modelyard.cli.render import console, err_console

app = typer.Typer(
    help="modelyard: a library of local AI models that runs them and serves them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("import")(models.import_)
app.command()(models.scan)
app.command()(models.inspect)
app.command()(models.ls)
app.command()(models.show)
app.command()(models.rm)
app.command()(models.edit)
app.command()(models.settings)
app.command()(runtime.load)
app.command()(runtime.unload)
app.command()(runtime.ps)
app.command()(runtime.logs)
app.command()(runtime.run)
app.command()(runtime.estimate)
app.command()(deployments.deploy)
app.command()(deployments.reload)
app.command()(specs.apply)
app.command()(specs.export)
app.command()(specs.schema)
app.command()(downloads.search)
app.command()(downloads.files)
app.command()(downloads.pull)
app.command()(usage.usage)
app.command()(create.create)
app.add_typer(adapters.app, name="lora")
app.add_typer(backends.app, name="backends")
app.add_typer(components.app, name="component")
app.add_typer(downloads.app, name="downloads")
app.add_typer(deployments.app, name="deployments")
app.add_typer(keys.app, name="keys")
app.add_typer(usage.app, name="quotas")
app.add_typer(cluster.cluster_app, name="cluster")
app.add_typer(cluster.worker_app, name="worker")
app.add_typer(cluster.workers_app, name="workers")


@app.command()
@friendly
def serve(
    host: str | None = typer.Option(None, help="address to listen on (default 127.0.0.1)"),
    port: int | None = typer.Option(None, help="port (default 11480)"),
    insecure: bool = typer.Option(
        False, "--insecure", help="listen on a network address without an API key (not recommended)"
    ),
) -> None:
    """Run the modelyard server (API under /api, docs at /docs)."""
    from modelyard.access.network import check_listen
    from modelyard.api.app import create_app, server_of
    from modelyard.config import Settings

    settings = Settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    settings.insecure = settings.insecure or insecure
    app_ = create_app(settings)
    warning = check_listen(settings.host, has_keys=app_.state.keys.required(), insecure=settings.insecure)
    if warning:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    console.print(
        f"modelyard {__version__} on http://{settings.host}:{settings.port}  (library in {settings.home})",
        soft_wrap=True,
    )
    if settings.ollama_port is not None:
        console.print(f"Ollama API on http://{settings.host}:{settings.ollama_port}", highlight=False)
    server, sockets = server_of(app_)
    server.run(sockets=sockets)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"modelyard {__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
