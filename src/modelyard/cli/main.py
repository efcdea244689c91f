"""The modelyard command: `modelyard --help` lists everything."""

from __future__ import annotations

import importlib

import click

from modelyard import __version__
from modelyard.cli.common import Command, Group, served_settings
from modelyard.cli.render import console, err_console

# Every command and group, in the order `modelyard --help` lists them: the module under
# modelyard.cli that defines it, and its name there. A command's module is imported when the
# command runs (or when --help lists them all), so that each command pays only for what it uses.
COMMANDS = {
    "import": "models:import_",
    "scan": "models:scan",
    "inspect": "models:inspect",
    "ls": "models:ls",
    "show": "models:show",
    "rm": "models:rm",
    "edit": "models:edit",
    "settings": "models:settings",
    "load": "runtime:load",
    "unload": "runtime:unload",
    "ps": "runtime:ps",
    "logs": "runtime:logs",
    "run": "runtime:run",
    "estimate": "runtime:estimate",
    "deploy": "deployments:deploy",
    "reload": "deployments:reload",
    "apply": "specs:apply",
    "export": "specs:export",
    "schema": "specs:schema",
    "search": "downloads:search",
    "files": "downloads:files",
    "pull": "downloads:pull",
    "usage": "usage:usage",
    "create": "create:create",
    "lora": "adapters:app",
    "backends": "backends:app",
    "component": "components:app",
    "downloads": "downloads:app",
    "batches": "batches:app",
    "deployments": "deployments:app",
    "keys": "keys:app",
    "routes": "routes:app",
    "quotas": "usage:app",
    "cluster": "cluster:cluster_app",
    "worker": "cluster:worker_app",
    "workers": "cluster:workers_app",
    "catalog": "catalog:app",
    "service": "service:app",
    "doctor": "doctor:doctor",
}


class Modelyard(Group):
    """The modelyard command: those of COMMANDS, imported when asked for, then this module's
    own (serve, version)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *self.commands]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, _, name = COMMANDS[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(f"modelyard.cli.{module}"), name)
            return command
        return super().get_command(ctx, cmd_name)


app = Modelyard(
    "modelyard",
    help="modelyard: a library of local AI models that runs them and serves them.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
app = click.version_option(__version__, "--version", "-V", message="modelyard %(version)s")(app)


@app.command(cls=Command)
@click.option("--host", help="address to listen on (default 127.0.0.1)")
@click.option("--port", type=int, help="port (default 11480)")
@click.option(
    "--insecure", is_flag=True, help="listen on a network address without an API key (not recommended)"
)
def serve(host: str | None, port: int | None, insecure: bool) -> None:
    """Run the modelyard server (API under /api, docs at /docs)."""
    from modelyard.access.network import check_listen
    from modelyard.api.app import create_app, server_of

    settings = served_settings(host, port, insecure)
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


@app.command(cls=Command)
def version() -> None:
    """Print the version."""
    console.print(f"modelyard {__version__}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
