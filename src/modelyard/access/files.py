"""Files a client names in a request (an image or an audio file by its path on the server): the
one place that reads them. The gateway sends engines the files' content, never a path, so no
engine reads what a client names.

A path is read only when the caller may name server paths (the local user on an open server,
an admin key, or any key with MODELYARD_CLIENT_PATHS), only inside the allowed folders (by its
real path, checked before the disk is touched), only when it is a regular file, only up to a
size, and on a small pool of its own with a time limit: a FIFO, a device or a slow disk cannot
hold the server's threads."""

from __future__ import annotations

import asyncio
import base64
import mimetypes
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from modelyard.access.folders import Folders
from modelyard.access.keys import Caller
from modelyard.errors import InvalidRequest, ModelyardError, PathNotFound, ScopeDenied
from modelyard.formats.files import open_regular, path_of, usable_path

MAX_CLIENT_FILE = 64 << 20  # bytes of one file a request names
READ_TIMEOUT = 10.0  # seconds to read it
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="modelyard-client-files")


class ClientFiles:
    """Reads the files requests name, for the callers that may name them."""

    def __init__(self, folders: Folders, *, keys_may_name_paths: bool) -> None:
        self.folders = folders
        self.keys_may_name_paths = keys_may_name_paths

    def check(self, caller: Caller, value: str, *, param: str) -> Path:
        """The path ``value`` names, when ``caller`` may have it read; else the reason."""
        if caller.key is not None and not caller.admin and not self.keys_may_name_paths:
            raise ScopeDenied(
                f"the key {caller.name!r} may not name files on the server ('{param}')",
                hint="send the file's content (a data URL or base64); or set MODELYARD_CLIENT_PATHS=true on the server",
            )
        raw = path_of(value)
        try:
            path = usable_path(raw)
        except InvalidRequest:
            raise
        except ModelyardError as e:
            raise InvalidRequest(f"'{param}' is not a usable path: {e.message}", param=param) from None
        if not path.is_absolute():
            raise InvalidRequest(f"'{param}' must be an absolute path", param=param)
        self.folders.check(path)  # PathNotAllowed, before anything touches the disk
        return path

    def read_now(self, path: Path, *, param: str, what: str, limit: int = MAX_CLIENT_FILE) -> bytes:
        """The bytes of the regular file ``path``, ``limit`` at most (blocking)."""
        try:
            with open_regular(path) as f:
                data = f.read(limit + 1)
        except ModelyardError as e:  # not there, or not a regular file
            raise InvalidRequest(f"cannot read the {what} {path}: {_reason(e)}", param=param) from None
        except OSError as e:
            raise InvalidRequest(
                f"cannot read the {what} {path}: {e.strerror or e.__class__.__name__}", param=param
            ) from None
        if len(data) > limit:
            raise InvalidRequest(
                f"the {what} {path} is larger than {limit / 2**20:.0f} MiB, the limit", param=param
            )
        return data

    async def read(
        self, caller: Caller, value: str, *, param: str, what: str, limit: int = MAX_CLIENT_FILE
    ) -> bytes:
        """The content of the file ``value`` names, for ``caller``."""
        path = self.check(caller, value, param=param)
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(_POOL, lambda: self.read_now(path, param=param, what=what, limit=limit))
        try:
            return await asyncio.wait_for(job, READ_TIMEOUT)
        except TimeoutError:
            raise InvalidRequest(
                f"reading the {what} {path} took longer than {READ_TIMEOUT:.0f} s", param=param
            ) from None

    async def data_url(self, caller: Caller, value: str, *, param: str, what: str) -> str:
        """The file ``value`` names as a data URL."""
        data = await self.read(caller, value, param=param, what=what)
        kind = mimetypes.guess_type(path_of(value))[0] or "application/octet-stream"
        return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def _reason(e: ModelyardError) -> str:
    if isinstance(e, PathNotFound):
        return "no such file"
    return e.message.removeprefix(f"{getattr(e, 'path', '')}").strip(" :") or e.message
