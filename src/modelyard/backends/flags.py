"""Free engine arguments (a deployment's ``--flag``, ``--key=value``, ``--key value``), checked
against the flags the engine's own ``--help`` lists, so a typo fails at deploy time with the
name of the flag, not as an engine that exits while starting."""

from __future__ import annotations

import os
import re
import subprocess
from functools import lru_cache

from modelyard.errors import EngineError, InvalidSettings

FLAG = re.compile(r"(?:^|[\s,\[|])(--?[A-Za-z][A-Za-z0-9_.-]*)")


@lru_cache(maxsize=16)
def _flags(argv: tuple[str, ...], _stamp: float) -> frozenset[str]:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EngineError(f"could not ask {argv[0]} for its flags: {e}") from None
    return frozenset(FLAG.findall(done.stdout + done.stderr))


def help_flags(argv: list[str], help_arg: str = "--help") -> frozenset[str]:
    """The flags ``argv --help`` lists (asked once per program build: keyed by its mtime)."""
    try:
        stamp = os.stat(argv[0]).st_mtime
    except OSError:
        stamp = 0.0
    return _flags((*argv, help_arg), stamp)


def check(args: list[str], known: frozenset[str], engine: str) -> None:
    """InvalidSettings naming the first argument that is no flag of ``engine``."""
    for arg in args:
        if not arg.startswith("-") or FLAG.fullmatch(" " + arg.split("=", 1)[0]) is None:
            continue  # a value, or a negative number
        name = arg.split("=", 1)[0]
        if name not in known:
            raise InvalidSettings(
                f"{engine} has no flag {name}", hint=f"`{engine} --help` lists the ones it takes"
            )


def split(args: list[str] | tuple[str, ...]) -> list[str]:
    """``--key=value`` as ``--key value``: the form every engine takes (llama-server takes no
    ``=``); other arguments as they are."""
    out: list[str] = []
    for arg in args:
        name, eq, value = arg.partition("=")
        if eq and arg.startswith("--") and FLAG.fullmatch(" " + name) is not None:
            out += [name, value]
        else:
            out.append(arg)
    return out
