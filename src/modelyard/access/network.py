"""Where the server may listen, and which Host names it answers.

On a loopback address modelyard needs no key (a laptop stays one command), and it answers only
requests whose Host header names the loopback: a web page whose domain is made to resolve to
127.0.0.1 (DNS rebinding) sends its own name and is refused. Listening anywhere else without an
API key is refused at start, unless asked for explicitly (``--insecure``)."""

from __future__ import annotations

import ipaddress

from modelyard.errors import InsecureListen

LOCALHOST = "localhost"


def is_loopback(host: str) -> bool:
    """Whether an address (or a name) is this machine's loopback."""
    host = host.strip("[]").lower()
    if host == LOCALHOST or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name in a Host header, without its port: ``[::1]:11480`` -> ``::1``."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def check_listen(host: str, *, has_keys: bool, insecure: bool) -> str | None:
    """Refuse to listen on the network without a key; a warning to print when ``insecure``
    overrides that; None when all is well."""
    if is_loopback(host) or has_keys:
        return None
    if insecure:
        return (
            f"modelyard listens on {host} without an API key (--insecure): anyone who reaches this "
            "machine can read its folders, load models and run their code. "
            "Create a key: `modelyard keys create admin --scope admin`"
        )
    raise InsecureListen(
        f"modelyard will not listen on {host} without an API key: anyone who reaches this machine "
        "could read its folders, load models and run their code",
        hint="create one first: `modelyard keys create admin --scope admin` (then clients send "
        "`Authorization: Bearer KEY`), or listen on 127.0.0.1, or pass --insecure to do it anyway",
    )
