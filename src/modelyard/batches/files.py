"""The files of the Files API: a batch's input (uploaded, purpose ``batch``), its output and its
errors (written by the batch, purpose ``batch_output``). Each belongs to the key that made it;
the catalog keeps what it is, the home's files folder its content, named by its id. A file
past its ``expires_at`` is forgotten as it is next looked at."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from modelyard.catalog.records import StoredFile
from modelyard.catalog.store import Store
from modelyard.errors import FileNotFound, InvalidRequest, RequestTooLarge

UPLOADED = ("batch",)  # the purposes a file may be uploaded for
CHUNK = 1 << 20


def _now() -> datetime:
    return datetime.now(UTC)


def new_file_id() -> str:
    return f"file-{uuid.uuid4().hex}"


def file_object(stored: StoredFile) -> dict[str, Any]:
    """The file as the Files API shows it."""
    return {
        "id": stored.id, "object": "file", "bytes": stored.bytes, "created_at": int(stored.created_at.timestamp()),
        "filename": stored.filename, "purpose": stored.purpose, "status": "processed",
        "expires_at": int(stored.expires_at.timestamp()) if stored.expires_at else None,
    }  # fmt: skip


class Files:
    def __init__(
        self, store: Store, folder: Path, max_bytes: int, now: Callable[[], datetime] = _now
    ) -> None:
        self.store = store
        self.folder = folder
        self.max_bytes = max_bytes
        self.now = now

    def path(self, fid: str) -> Path:
        return self.folder / fid

    async def upload(self, account: str | None, filename: str, purpose: str, source: BinaryIO) -> StoredFile:
        """Keep what ``source`` holds as a new file of ``account``; nothing stays of one refused."""
        if purpose not in UPLOADED:
            raise InvalidRequest(
                f"files are kept for batches here, not for {purpose!r}",
                hint="upload with purpose batch",
                param="purpose",
            )
        fid = new_file_id()
        size = await asyncio.to_thread(self._copy, source, self.path(fid))
        return await self.add(account, fid, filename, purpose, size)

    def _copy(self, source: BinaryIO, to: Path) -> int:
        self.folder.mkdir(parents=True, exist_ok=True)
        part = to.with_name(to.name + ".part")
        size = 0
        try:
            with part.open("wb") as out:
                while chunk := source.read(CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise RequestTooLarge(
                            f"the file has more than {self.max_bytes} bytes, the most this server keeps",
                            hint="MODELYARD_MAX_FILE sets the limit; split a larger batch into several files",
                        )
                    out.write(chunk)
            if size == 0:
                raise InvalidRequest("the file is empty", param="file")
            os.replace(part, to)
        finally:
            part.unlink(missing_ok=True)
        return size

    async def add(
        self,
        account: str | None,
        fid: str,
        filename: str,
        purpose: str,
        size: int,
        expires_at: datetime | None = None,
    ) -> StoredFile:
        """Keep the file whose content is already at ``path(fid)``."""
        stored = StoredFile(fid, account or "", filename, purpose, size, self.now(), expires_at)
        await asyncio.to_thread(self.store.put_file, stored)
        return stored

    async def get(self, fid: str, account: str | None) -> StoredFile:
        found = await asyncio.to_thread(self.store.get_file, fid, account or "")
        if found is None:
            raise FileNotFound(fid)
        if found.expires_at is not None and found.expires_at <= self.now():
            await self._forget(found)
            raise FileNotFound(fid)
        return found

    async def listing(self, account: str | None, purpose: str | None = None) -> list[StoredFile]:
        """``account``'s files (of ``purpose``), the newest first."""
        found = await asyncio.to_thread(self.store.files, account or "", purpose)
        now = self.now()
        for gone in [f for f in found if f.expires_at is not None and f.expires_at <= now]:
            await self._forget(gone)
        return [f for f in found if f.expires_at is None or f.expires_at > now]

    async def delete(self, fid: str, account: str | None) -> None:
        await self._forget(await self.get(fid, account))

    async def _forget(self, stored: StoredFile) -> None:
        await asyncio.to_thread(self.store.delete_file, stored.id, stored.account)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self.path(stored.id).unlink)

    def kept(self, fid: str, written: Path) -> int:
        """Move ``written`` to be the content of ``fid`` (once: again, it is already there); its size."""
        to = self.path(fid)
        if written.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.move(written, to)
        return to.stat().st_size
