"""Whether a hub can be reached at all, asked before the hub's own client: that client retries a
refused connection or a name that does not resolve for minutes, which only means "no network"
(or a wrong endpoint) and should be said at once."""

from __future__ import annotations

import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urlsplit

from modelyard.errors import HubUnavailable

WAIT = 4.0  # seconds for the name and the connection, together
REMEMBER = 60.0  # seconds a hub that answered is not asked again
PROXIES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
_answered: dict[str, float] = {}
_resolver = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hub-dns")


def reachable(endpoint: str) -> None:
    """HubUnavailable, within WAIT seconds, when ``endpoint``'s host does not resolve or refuses
    connections. Behind a proxy the proxy decides: nothing is checked."""
    if any(os.environ.get(p) for p in PROXIES):
        return
    url = urlsplit(endpoint)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    if time.monotonic() - _answered.get(endpoint, -REMEMBER) < REMEMBER:
        return
    hint = f"check the network, or the endpoint ({endpoint}): a mirror can be set (HF_ENDPOINT)"
    started = time.monotonic()
    try:
        addresses = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM).result(WAIT)
    except FutureTimeout:
        raise HubUnavailable(f"cannot resolve {host}: the name service does not answer", hint=hint) from None
    except OSError as e:
        raise HubUnavailable(f"cannot resolve {host} ({e.strerror or e}): no network?", hint=hint) from None
    family, kind, proto, _name, address = addresses[0]
    try:
        with socket.socket(family, kind, proto) as s:
            s.settimeout(max(0.5, WAIT - (time.monotonic() - started)))
            s.connect(address)
    except OSError as e:
        raise HubUnavailable(f"cannot connect to {host}:{port} ({e.strerror or e})", hint=hint) from None
    _answered[endpoint] = time.monotonic()
