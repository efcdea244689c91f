"""The resumable downloader.

Each file is fetched into ``<work>/<path>.part``. Big files are cut into pieces fetched over
several connections with ranged GETs; each piece is written in order, so the bytes written per
piece say exactly what is on disk. That record is saved (atomically) every few MiB to
``<work>/progress.json``: after a pause, a cancel of the process, a network error or a kill -9,
the download goes on from there. A hasher follows the contiguous prefix of the file as it grows,
so the sha256 check costs little at the end. Only a file whose size and checksum are right is
renamed into the destination; one that is wrong is fetched again, once, alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from modelyard.errors import HubAuthRequired, HubUnavailable, IntegrityError, RepoNotFound
from modelyard.hub.remote import Hub, RemoteFile, safe_relative

log = logging.getLogger(__name__)

PIECE = 32 << 20  # bytes per ranged request of a big file
BIG = 64 << 20  # files from this size up are fetched over several connections
CHUNK = 1 << 20  # bytes read from the socket at a time
SAVE_BYTES = 2 << 20  # the progress record is saved at least this often (bytes written)
SAVE_SECONDS = 0.5  # ... and this often (seconds)
HASH_STEP = 8 << 20  # the hasher catches up once this much is ready
RETRY_CAP = 30.0
RECEIVE_BUFFER = 512 << 10  # per connection; the kernel doubles it


def _socket(addr: tuple[Any, ...]) -> socket.socket:
    """A socket whose receive buffer is bounded: the bytes a kill -9 loses in the kernel's buffers
    have to be fetched again, and autotuning lets them grow to tens of MiB per connection."""
    family, kind, proto = addr[0], addr[1], addr[2]
    sock = socket.socket(family=family, type=kind, proto=proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    return sock


def client_session(stall_timeout: float) -> aiohttp.ClientSession:
    """The HTTP session downloads use: no total timeout, a read timeout that detects stalls,
    bytes as they are sent (no decompression), proxies from the environment."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=stall_timeout),
        connector=aiohttp.TCPConnector(limit=0, socket_factory=_socket),
        auto_decompress=False,
        trust_env=True,
    )


@dataclass
class Piece:
    start: int
    end: int | None  # exclusive; None = to the end of a file of unknown size
    written: int = 0

    @property
    def complete(self) -> bool:
        return self.end is not None and self.start + self.written >= self.end


@dataclass
class FileProgress:
    path: str
    size: int | None
    pieces: list[Piece] = field(default_factory=list)
    done: bool = False
    etag: str | None = None
    refetched: bool = False

    @property
    def written(self) -> int:
        return sum(p.written for p in self.pieces)

    def reset(self, pieces: list[Piece]) -> None:
        self.pieces = pieces
        self.etag = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileProgress:
        pieces = [Piece(**p) for p in data.pop("pieces", [])]
        return cls(pieces=pieces, **data)


class _Refetch(Exception):
    """The file changed on the server, or its bytes are wrong: start it again."""


class _Lost(Exception):
    """A CDN URL expired or was refused: resolve the hub URL again."""


@dataclass
class _Open:
    """A file being fetched: its descriptor, its record, and its hasher."""

    remote: RemoteFile
    progress: FileProgress
    fd: int
    url: str  # after redirects, once known
    ranges: bool = True
    resolved: asyncio.Event = field(default_factory=asyncio.Event)
    hashed: int = 0
    hasher: Any = None
    hashing: asyncio.Future[None] | None = None
    closing: bool = False  # tells the hashing thread to stop before the descriptor closes


class Transfer:
    """Fetch ``files`` into ``dest``, keeping partial files and progress in ``work``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        hub: Hub,
        files: list[RemoteFile],
        *,
        work: Path,
        dest: Path,
        connections: int = 4,
        retries: int = 6,
        on_bytes: Callable[[int], None] = lambda n: None,
        on_file: Callable[[str], None] = lambda path: None,
    ) -> None:
        self.session = session
        self.hub = hub
        self.files = files
        self.work = work
        self.dest = dest
        self.retries = retries
        self.on_bytes = on_bytes
        self.on_file = on_file
        self._slots = asyncio.Semaphore(connections)
        self._connections = connections
        self._record = work / "progress.json"
        self._progress = self._load()
        self._unsaved = 0
        self._saved_at = time.monotonic()

    # -- the record --------------------------------------------------------------------------

    def _load(self) -> dict[str, FileProgress]:
        try:
            data = json.loads(self._record.read_text())
            return {p["path"]: FileProgress.from_json(p) for p in data["files"]}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def save(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        tmp = self._record.with_suffix(".tmp")
        tmp.write_text(json.dumps({"files": [asdict(p) for p in self._progress.values()]}))
        os.replace(tmp, self._record)
        self._unsaved = 0
        self._saved_at = time.monotonic()

    def _wrote(self, n: int) -> None:
        self._unsaved += n
        self.on_bytes(n)
        if self._unsaved >= SAVE_BYTES or time.monotonic() - self._saved_at >= SAVE_SECONDS:
            self.save()

    def done_bytes(self) -> int:
        """Bytes already on disk (finished files and pieces), by the record."""
        total = 0
        for f in self.files:
            p = self._progress.get(f.path)
            if p is not None:
                total += (f.size or p.written) if p.done else p.written
        return total

    def pending_bytes(self) -> int:
        return sum((f.size or 0) for f in self.files) - self.done_bytes()

    def finished(self) -> set[str]:
        return {path for path, p in self._progress.items() if p.done}

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            await _all_or_none([self._file(f) for f in self.files])
        finally:
            self.save()

    async def _file(self, remote: RemoteFile) -> None:
        rel = safe_relative(remote.path)
        final = self.dest / rel
        progress = self._progress.get(remote.path)
        if progress is not None and progress.done and final.exists():
            return
        if progress is None or progress.size != remote.size:
            progress = FileProgress(remote.path, remote.size, self._pieces(remote.size))
            self._progress[remote.path] = progress
        part = self.work / f"{rel}.part"
        part.parent.mkdir(parents=True, exist_ok=True)
        if progress.written and not part.exists():  # the record outlived its partial file
            progress.reset(self._pieces(remote.size))
        while True:
            fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
            f = _Open(remote, progress, fd, remote.url)
            try:
                await self._fetch(f)
                await self._verify(f)
                break
            except _Refetch as why:
                if progress.refetched:
                    raise IntegrityError(
                        f"{remote.path}: {why} again after fetching it anew",
                        hint="the hub's copy may be damaged; try again later",
                    ) from None
                log.warning("%s: %s; fetching it again", remote.path, why)
                progress.refetched = True
                progress.reset(self._pieces(remote.size))
                os.ftruncate(fd, 0)
                self.save()
            finally:
                f.closing = True
                if f.hashing is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(f.hashing)
                os.close(fd)
        final.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(shutil.move, part, final)  # a rename on one file system
        progress.done = True
        self.save()
        self.on_file(remote.path)

    def _pieces(self, size: int | None) -> list[Piece]:
        if size is None:
            return [Piece(0, None)]
        if size < BIG or self._connections == 1:
            return [Piece(0, size)]
        return [Piece(start, min(start + PIECE, size)) for start in range(0, size, PIECE)]

    async def _fetch(self, f: _Open) -> None:
        pieces = [p for p in f.progress.pieces if not p.complete]
        if not pieces:
            f.resolved.set()
            return
        first, rest = pieces[0], pieces[1:]
        await _all_or_none(
            [self._piece(f, first, probe=True), *(self._piece(f, p, probe=False) for p in rest)]
        )

    async def _piece(self, f: _Open, piece: Piece, *, probe: bool) -> None:
        if not probe:
            await f.resolved.wait()
            if not f.ranges:
                return  # the probe streams the whole file
        failures = 0
        while True:
            async with self._slots:
                before = piece.written
                delay: float | None = None
                try:
                    piece = await self._get(f, piece, probe=probe)
                    if piece.end is None:
                        piece.end = piece.start + piece.written  # unknown size: the stream ended
                    if piece.complete:
                        return
                    reason = "the connection closed early"
                except _Lost:
                    f.url, delay, reason = f.remote.url, 0.0, "the download link expired"
                except _Retry as e:
                    delay, reason = e.after, "the hub is busy"
                except (aiohttp.ClientError, TimeoutError, ConnectionError) as e:
                    reason = str(e) or type(e).__name__
            log.info("%s: %s; retrying", f.remote.path, reason)
            failures = 1 if piece.written > before else failures + 1
            if failures > self.retries:
                raise HubUnavailable(
                    f"{f.remote.path}: the download keeps failing ({reason})",
                    hint="resume it later: `modelyard downloads resume ID`",
                )
            await asyncio.sleep(min(delay if delay is not None else 0.5 * 2 ** (failures - 1), RETRY_CAP))
            probe = probe or not f.resolved.is_set()

    async def _get(self, f: _Open, piece: Piece, *, probe: bool) -> Piece:
        """One GET for what the piece still lacks; returns the piece it wrote (a new one when the
        server sent the whole file instead of a range)."""
        offset = piece.start + piece.written
        headers = dict(self.hub.headers(f.url))
        headers["Accept-Encoding"] = "identity"
        if offset > 0 or piece.end is not None:
            end = "" if piece.end is None else str(piece.end - 1)
            headers["Range"] = f"bytes={offset}-{end}"
            if f.progress.etag and offset > 0 and not f.progress.etag.startswith("W/"):
                headers["If-Range"] = f.progress.etag  # a changed file comes whole, not spliced
        async with self.session.get(f.url, headers=headers) as resp:
            self._check(f, resp)
            if probe:
                f.url = str(resp.url)
                f.progress.etag = resp.headers.get("ETag") or f.progress.etag
            if resp.status == 200:
                if offset > 0 or len(f.progress.pieces) > 1:
                    if not probe:
                        raise _Lost()
                    # No ranges here (or If-Range failed): this response is the whole file.
                    f.ranges = False
                    f.progress.reset([Piece(0, f.progress.size)])
                    piece = f.progress.pieces[0]
                    offset = 0
            elif resp.status == 206:
                got = resp.headers.get("Content-Range", "")
                if not got.startswith(f"bytes {offset}-"):
                    raise _Refetch(f"the hub sent the wrong range ({got or 'none'})")
            f.resolved.set()
            pos = offset
            async for chunk in resp.content.iter_chunked(CHUNK):
                if piece.end is not None and pos + len(chunk) > piece.end:
                    raise _Refetch("the hub sent more bytes than the file has")
                os.pwrite(f.fd, chunk, pos)
                pos += len(chunk)
                piece.written += len(chunk)
                self._wrote(len(chunk))
                self._hash_ahead(f)
        return piece

    def _check(self, f: _Open, resp: aiohttp.ClientResponse) -> None:
        status = resp.status
        if status in (200, 206):
            return
        if status in (401, 403):
            if f.url != f.remote.url:
                raise _Lost()
            raise HubAuthRequired(
                f"the hub refused {f.remote.path} ({status})",
                hint="the repo is private or gated: set a token (HF_TOKEN, MODELSCOPE_API_TOKEN)",
            )
        if status in (404, 410):
            if f.url != f.remote.url:
                raise _Lost()
            raise RepoNotFound(f"{f.remote.path} is gone from the hub ({status})")
        if status == 416:
            raise _Refetch("the file on the hub is shorter than listed")
        if status == 429 or status >= 500:
            after = resp.headers.get("Retry-After", "")
            raise _Retry(float(after) if after.isdigit() else None)
        raise HubUnavailable(f"the hub answered {status} for {f.remote.path}")

    # -- checking ----------------------------------------------------------------------------

    def _prefix(self, f: _Open) -> int:
        """How much of the file, from its start, is on disk."""
        for p in f.progress.pieces:
            if not p.complete:
                return p.start + p.written
        return f.progress.written

    def _hash_ahead(self, f: _Open) -> None:
        if f.hashing is not None and not f.hashing.done():
            return
        if f.hasher is None:
            f.hasher = _hasher(f.remote)
            if f.hasher is None:
                return
        upto = self._prefix(f)
        if upto - f.hashed >= HASH_STEP:
            f.hashing = asyncio.ensure_future(asyncio.to_thread(self._hash_to, f, upto))

    @staticmethod
    def _hash_to(f: _Open, upto: int) -> None:
        while f.hashed < upto and not f.closing:
            block = os.pread(f.fd, min(HASH_STEP, upto - f.hashed), f.hashed)
            if not block:
                break
            f.hasher.update(block)
            f.hashed += len(block)

    async def _verify(self, f: _Open) -> None:
        size = os.fstat(f.fd).st_size
        written = f.progress.written
        expected = f.remote.size if f.remote.size is not None else written
        if written != expected or size < expected:
            raise _Refetch(f"the size is {written:,} bytes, not {expected:,}")
        if size > expected:
            os.ftruncate(f.fd, expected)
        if f.hashing is not None:
            await f.hashing
        if f.hasher is None:
            f.hasher = _hasher(f.remote)
        if f.hasher is None:
            return
        await asyncio.to_thread(self._hash_to, f, expected)
        want = f.remote.sha256 or f.remote.git_oid
        if f.hasher.hexdigest() != want:
            raise _Refetch("the checksum is wrong")


async def _all_or_none(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run them together; when one fails (or this is cancelled), the others are cancelled and
    waited for, so that no piece writes after its file is closed."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Retry(Exception):
    def __init__(self, after: float | None) -> None:
        super().__init__("the hub is busy")
        self.after = after


def _hasher(remote: RemoteFile) -> Any:
    if remote.sha256:
        return hashlib.sha256()
    if remote.git_oid and remote.size is not None:
        h = hashlib.sha1(usedforsecurity=False)
        h.update(f"blob {remote.size}\0".encode())
        return h
    return None
