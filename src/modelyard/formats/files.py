"""Opening what a user names, safely: a path is checked before anything touches the disk, and
only regular files are read (a FIFO would block for ever, a device or a /proc file lies about
its size), so a bad path is a clear error, never a hang or a crash."""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

from modelyard.errors import InvalidInput, MalformedFile, PathNotFound, UnsupportedFormat

MAX_NAME = 255  # bytes in one path component (NAME_MAX)
MAX_PATH = 4096  # bytes in a whole path (PATH_MAX)
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def usable_path(text: str | Path) -> Path:
    """The path ``text`` names, expanded; InvalidInput when no file system could hold it."""
    raw = str(text)
    if not raw:
        raise InvalidInput("the path is empty", hint="name a file or folder")
    if "\0" in raw:
        raise InvalidInput("a path cannot hold a NUL byte", hint="check the path")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("the path is not valid Unicode text", hint="check the path") from None
    try:
        path = Path(raw).expanduser()
    except RuntimeError:  # ~user of no such user
        raise InvalidInput(
            f"no user {raw.split('/', 1)[0]!r} on this machine", hint="check the path"
        ) from None
    encoded = os.fsencode(path)
    if len(encoded) > MAX_PATH:
        raise InvalidInput(f"the path is {len(encoded)} bytes long; paths take {MAX_PATH} at most")
    if any(len(os.fsencode(part)) > MAX_NAME for part in path.parts):
        raise InvalidInput(f"a part of the path is longer than {MAX_NAME} bytes", hint="check the path")
    return path


def kind_of(path: Path) -> os.stat_result:
    """The path's stat (links followed); PathNotFound when there is nothing there."""
    try:
        return path.stat()
    except FileNotFoundError:
        raise PathNotFound(path) from None
    except OSError as e:  # a file where a folder should be, or a loop of links: nothing there
        if e.errno in (errno.ENOTDIR, errno.ELOOP):
            raise PathNotFound(path) from None
        raise _unreadable(path, e) from None


def _unreadable(path: Path, e: OSError) -> UnsupportedFormat:
    return UnsupportedFormat(path, f"cannot be read ({e.strerror or e.__class__.__name__})")


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading; UnsupportedFormat for anything else (a FIFO, a socket, a
    device), without ever waiting on it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PathNotFound(path) from None
    except OSError as e:
        raise _unreadable(path, e) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UnsupportedFormat(path, "is not a regular file (a pipe, a socket or a device)")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a regular file (fewer when it is shorter)."""
    with open_regular(path) as f:
        try:
            return f.read(n)
        except OSError as e:  # /proc/self/mem and the like: regular on paper, unreadable
            raise MalformedFile(path, f"cannot be read ({e.strerror or e.__class__.__name__})") from None


def is_path(value: str) -> bool:
    """Whether a request's media field names a file: a file:// URL, or an absolute path. Base64
    may begin with a slash too (a JPEG's begins "/9j/"): what decodes as base64 is not a path."""
    if value.startswith("file://"):
        return True
    if not value.startswith("/"):
        return False
    raw = value.encode(errors="surrogateescape")
    return len(raw) % 4 != 0 or _BASE64.fullmatch(raw) is None


def path_of(value: str) -> str:
    return value.removeprefix("file://")
