"""Model and adapter names: what is allowed, and a good default from the files."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from modelyard.errors import InvalidName
from modelyard.formats.gguf import SHARD_NAME

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


def check_name(name: str, what: str = "model") -> str:
    if not NAME.match(name):
        raise InvalidName(
            f"{name!r} is not a valid {what} name",
            hint="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def default_name(path: Path) -> str:
    """The file's stem (without a shard suffix), or the folder's name, made valid."""
    if path.is_dir():
        return valid_name(path.name)
    m = SHARD_NAME.match(path.name)
    return valid_name(m.group("prefix") if m else path.stem)


def valid_name(text: str) -> str:
    """``text`` made a valid name."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:128]
    return name or "model"


def unique_name(base: str, taken: Callable[[str], bool]) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever is free."""
    if not taken(base):
        return base
    n = 2
    while taken(f"{base[:120]}-{n}"):
        n += 1
    return f"{base[:120]}-{n}"
