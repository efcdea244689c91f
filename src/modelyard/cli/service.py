"""`modelyard service`: modelyard as a systemd service."""

from __future__ import annotations

import click

from modelyard.cli.common import Group, served_settings
from modelyard.cli.render import console, err_console

app = Group("service", help="Run the server as a systemd service (a user unit; --system: at boot).")


@app.command("install")
@click.option("--system", is_flag=True, help="a system unit, started at boot (run as root)")
@click.option("--user", "user", help="the user a system unit runs as (default: the one who ran sudo)")
@click.option("--host", help="address to listen on (default: MODELYARD_HOST, else 127.0.0.1)")
@click.option("--port", type=int, help="port (default: MODELYARD_PORT, else 11480)")
@click.option("--insecure", is_flag=True, help="listen on a network address without an API key")
@click.option("--print", "show", is_flag=True, help="print the unit and install nothing")
def install(
    system: bool, user: str | None, host: str | None, port: int | None, insecure: bool, show: bool
) -> None:
    """Write a systemd unit that runs `modelyard serve` with this host, port and home (and the
    other MODELYARD_* settings of this shell, in HOME/service.env, readable by its owner only),
    then enable and start it."""
    from modelyard import service as services
    from modelyard.access.network import check_listen
    from modelyard.catalog.store import Store

    settings = served_settings(host, port, insecure)
    service = services.Service.of(settings, system=system, user=user)
    if show:
        print(services.unit(service, settings), end="")
        return
    settings.ensure_home()
    store = Store(settings.catalog_url)
    try:
        # as `serve` refuses: a network address without a key (--insecure: a warning)
        warning = check_listen(settings.host, has_keys=store.count_keys() > 0, insecure=settings.insecure)
    finally:
        store.close()
    if warning:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    services.install(service, settings)
    console.print(
        f"installed {service.unit_path} and started it: http://{settings.host}:{settings.port}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"its log: {service.logs}", highlight=False)


@app.command("uninstall")
@click.option("--system", is_flag=True, help="the system unit (run as root)")
def uninstall(system: bool) -> None:
    """Stop and disable the service, and remove its unit and environment file."""
    from modelyard import service as services
    from modelyard.config import Settings

    service = services.Service.of(Settings(), system=system)
    if services.uninstall(service):
        console.print(f"stopped the service and removed {service.unit_path}", highlight=False, soft_wrap=True)
    else:
        console.print(
            f"no service is installed ({service.unit_path} is not there)", highlight=False, soft_wrap=True
        )
