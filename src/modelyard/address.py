"""Where the server listens by default and the URL its clients call. No dependencies: the CLI
reads its target from the environment with this, without building the settings."""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 11480
# How long the gateway and the engines keep an idle keep-alive connection open: longer than the
# clients' pools keep one (httpx 5 s, aiohttp 15 s), so that the client always closes it first
# and a request never goes out on a connection the server is closing (a reset).
IDLE_CONNECTION_S = 75


def server_url(url: str | None, host: str, port: int) -> str:
    """The URL a client on this machine calls: ``url`` when set, else the host and port the
    server listens on (its loopback address for 0.0.0.0 and ::)."""
    if url:
        return url.rstrip("/")
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{host}:{port}"


def cli_target(environ: Mapping[str, str] = os.environ) -> tuple[str, str | None] | None:
    """The server URL and API key the CLI uses, from the MODELYARD_* variables as the settings
    read them (names in any case); None when a value is one the settings would refuse, so
    that they say why."""
    env = {k.upper(): v for k, v in environ.items() if k.upper().startswith("MODELYARD_")}
    port = env.get("MODELYARD_PORT", str(DEFAULT_PORT)).strip()
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return None
    url = server_url(env.get("MODELYARD_URL"), env.get("MODELYARD_HOST", DEFAULT_HOST), int(port))
    return url, env.get("MODELYARD_API_KEY")
