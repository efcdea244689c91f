"""The modelyard command: `modelyard --help` lists everything."""

from __future__ import annotations

import typer

from modelyard import __version__
from modelyard.cli import adapters, backends, components, downloads, models, runtime
from modelyard.cli.render import console

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
app.command()(downloads.search)
app.command()(downloads.files)
app.command()(downloads.pull)
app.add_typer(adapters.app, name="lora")
app.add_typer(backends.app, name="backends")
app.add_typer(components.app, name="component")
app.add_typer(downloads.app, name="downloads")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="address to listen on (default 127.0.0.1)"),
    port: int | None = typer.Option(None, help="port (default 11480)"),
) -> None:
    """Run the modelyard server (API under /api, docs at /docs)."""
    import uvicorn

    from modelyard.api.app import create_app
    from modelyard.config import Settings

    settings = Settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    app_ = create_app(settings)
    console.print(
        f"modelyard {__version__} on http://{settings.host}:{settings.port}  (library in {settings.home})"
    )
    uvicorn.run(app_, host=settings.host, port=settings.port, log_level="warning")


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"modelyard {__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
