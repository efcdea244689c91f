"""A fake model hub on 127.0.0.1: the Hugging Face, ModelScope and Ollama registry calls that the
real clients make, with the real responses' shapes (redirects to a CDN, Range, ETag, X-Linked-*
headers, 401/403/404/429/5xx, connections dropped halfway). Faults are injected per blob.

Run alone (for benchmarks): ``python tests/fakehub.py FILE REPO`` serves FILE as the only file of
Hugging Face repo REPO and prints the hub's URL; it counts the bytes it sends at /_served.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

TOKEN = "hf_secret_token"
BLOCK = 1 << 20


@dataclass
class Blob:
    data: bytes | None = None
    path: Path | None = None  # a big file served from disk
    sha256: str = ""
    size: int = 0

    @classmethod
    def of(cls, data: bytes) -> Blob:
        return cls(data=data, sha256=hashlib.sha256(data).hexdigest(), size=len(data))

    @classmethod
    def on_disk(cls, path: Path) -> Blob:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(16 << 20):
                h.update(block)
        return cls(path=path, sha256=h.hexdigest(), size=path.stat().st_size)

    @property
    def git_oid(self) -> str:
        assert self.data is not None
        return hashlib.sha1(b"blob %d\0" % self.size + self.data).hexdigest()

    def read(self, start: int, n: int) -> bytes:
        if self.data is not None:
            return self.data[start : start + n]
        assert self.path is not None
        with self.path.open("rb") as f:
            f.seek(start)
            return f.read(n)


@dataclass
class Repo:
    id: str
    files: dict[str, Blob]
    sha: str = ""
    private: bool = False
    gated: bool = False
    tags: list[str] = field(default_factory=list)
    pipeline_tag: str | None = None
    downloads: int = 0
    garbled: dict[str, Any] = field(default_factory=dict)  # metadata fields answered so (None: left out)

    def __post_init__(self) -> None:
        if not self.sha:
            self.sha = hashlib.sha1(self.id.encode()).hexdigest()

    def lfs(self, path: str) -> bool:
        return path.endswith((".gguf", ".safetensors", ".bin")) or self.files[path].size > 10_000


@dataclass
class Fault:
    status: int | None = None  # answer this status instead
    drop_after: int | None = None  # close the connection after this many body bytes
    corrupt: bool = False  # flip a byte in the body
    ignore_range: bool = False  # answer 200 with the whole file
    retry_after: int | None = None
    stall: float | None = None  # sleep this long after the first block
    times: int = 1  # how many requests it hits; -1 = all


class FakeHub:
    def __init__(self) -> None:
        self.hf: dict[str, Repo] = {}
        self.ms: dict[str, Repo] = {}
        self.ollama: dict[str, dict[str, Blob]] = {}  # "ns/name:tag" -> media kind -> blob
        self.faults: dict[str, list[Fault]] = {}  # blob sha256 -> faults, first first
        self.served: Counter[str] = Counter()  # blob sha256 -> body bytes sent
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.rate: float | None = None  # bytes per second per connection; None = as fast as it goes
        self.url = ""
        self.cdn_url = ""  # the same app on a second port: another origin, as a real CDN is
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- content -----------------------------------------------------------------------------

    def add_hf(self, repo: str, files: dict[str, bytes | Blob], **kw: Any) -> Repo:
        blobs = {p: b if isinstance(b, Blob) else Blob.of(b) for p, b in files.items()}
        self.hf[repo] = Repo(repo, blobs, **kw)
        return self.hf[repo]

    def add_ms(self, repo: str, files: dict[str, bytes], **kw: Any) -> Repo:
        self.ms[repo] = Repo(repo, {p: Blob.of(b) for p, b in files.items()}, **kw)
        return self.ms[repo]

    def add_ollama(self, name: str, layers: dict[str, bytes]) -> None:
        self.ollama[name] = {kind: Blob.of(data) for kind, data in layers.items()}

    def fault(self, blob: Blob, *faults: Fault) -> None:
        self.faults.setdefault(blob.sha256, []).extend(faults)

    # -- running -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._log])
        app.router.add_get("/_served", self._served)
        app.router.add_get("/api/models", self.hf_list)
        app.router.add_get("/api/models/{org}/{name}", self.hf_info)
        app.router.add_get("/api/models/{org}/{name}/revision/{rev}", self.hf_info)
        app.router.add_route("*", "/{org}/{name}/resolve/{rev}/{path:.+}", self.hf_resolve)
        app.router.add_route("*", "/cdn/{sha}", self.cdn)
        app.router.add_get("/openapi/v1/models", self.ms_list)
        app.router.add_get("/api/v1/models/{org}/{name}/repo/files", self.ms_files)
        app.router.add_get("/api/v1/models/{org}/{name}/repo", self.ms_file)
        app.router.add_get("/v2/{ns}/{name}/manifests/{tag}", self.ollama_manifest)
        app.router.add_get("/v2/{ns}/{name}/blobs/{digest}", self.ollama_blob)
        return app

    def start(self, port: int = 0, *, send_buffer: int | None = None) -> str:
        """Serve in a thread. ``send_buffer`` fixes the sockets' SO_SNDBUF: what the hub counts as
        sent then excludes at most that much that only waited in its own kernel queue."""
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            urls = []
            for p in (port, 0):
                site = web.TCPSite(self._runner, "127.0.0.1", p)
                self._loop.run_until_complete(site.start())
                server = site._server
                assert server is not None
                if send_buffer is not None:  # accepted sockets inherit it from the listener
                    for sock in server.sockets:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
                urls.append(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
            self.url, self.cdn_url = urls
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self.url

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()

    @web.middleware
    async def _log(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        result: web.StreamResponse = await handler(request)
        return result

    async def _served(self, _request: web.Request) -> web.Response:
        return web.json_response(dict(self.served))

    # -- Hugging Face ------------------------------------------------------------------------

    def _hf_repo(self, request: web.Request) -> Repo:
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        repo = self.hf.get(repo_id)
        if repo is None:
            raise _hf_error(404, "RepoNotFound", "Repository not found")
        if repo.private and request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise _hf_error(401, "RepoNotFound", "Invalid username or password.")
        if repo.gated and request.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise _hf_error(403, "GatedRepo", "Access to this repo is restricted")
        rev = request.match_info.get("rev")
        if rev is not None and rev not in ("main", repo.sha):
            raise _hf_error(404, "RevisionNotFound", "Invalid rev id")
        return repo

    async def hf_list(self, request: web.Request) -> web.Response:
        q = request.query
        search = q.get("search", "").lower()
        filters = q.getall("filter", [])
        found = [
            r
            for r in self.hf.values()
            if search in r.id.lower()
            and all(f in r.tags for f in filters)
            and (not q.get("pipeline_tag") or r.pipeline_tag == q["pipeline_tag"])
            and not r.private
        ]
        found.sort(key=lambda r: -r.downloads)
        limit = int(q.get("limit", "1000"))
        return web.json_response(
            [
                {
                    "_id": r.sha[:24],
                    "id": r.id,
                    "modelId": r.id,
                    "likes": 3,
                    "downloads": r.downloads,
                    "private": False,
                    "pipeline_tag": r.pipeline_tag,
                    "library_name": "gguf" if "gguf" in r.tags else "transformers",
                    "tags": r.tags,
                    "createdAt": "2026-01-02T03:04:05.000Z",
                    "lastModified": "2026-02-03T04:05:06.000Z",
                }
                for r in found[:limit]
            ]
        )

    async def hf_info(self, request: web.Request) -> web.Response:
        repo = self._hf_repo(request)
        siblings = []
        for path, blob in repo.files.items():
            entry: dict[str, Any] = {"rfilename": path}
            if request.query.get("blobs"):
                entry["size"] = blob.size
                if repo.lfs(path):
                    entry["blobId"] = hashlib.sha1(blob.sha256.encode()).hexdigest()
                    entry["lfs"] = {"sha256": blob.sha256, "size": blob.size, "pointerSize": 134}
                else:
                    entry["blobId"] = blob.git_oid
            siblings.append(entry)
        info = {
            "_id": repo.sha[:24],
            "id": repo.id,
            "modelId": repo.id,
            "sha": repo.sha,
            "private": repo.private,
            "gated": "auto" if repo.gated else False,
            "disabled": False,
            "downloads": repo.downloads,
            "likes": 3,
            "tags": repo.tags,
            "pipeline_tag": repo.pipeline_tag,
            "library_name": "gguf" if "gguf" in repo.tags else "transformers",
            "lastModified": "2026-02-03T04:05:06.000Z",
            "createdAt": "2026-01-02T03:04:05.000Z",
            "siblings": siblings,
        }
        for key, value in repo.garbled.items():
            info[key] = value
            if value is None:
                del info[key]
        return web.json_response(info)

    async def hf_resolve(self, request: web.Request) -> web.StreamResponse:
        repo = self._hf_repo(request)
        path = request.match_info["path"]
        blob = repo.files.get(path)
        if blob is None:
            raise _hf_error(404, "EntryNotFound", "Entry not found")
        headers = {"X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes"}
        if repo.lfs(path):  # LFS files live on the CDN: a redirect with the X-Linked-* headers
            headers |= {
                "Location": f"{self.cdn_url}/cdn/{blob.sha256}",
                "X-Linked-Etag": f'"{blob.sha256}"',
                "X-Linked-Size": str(blob.size),
                "ETag": f'"{blob.sha256}"',
                "Content-Length": "0",
            }
            return web.Response(status=302, headers=headers)
        return await self._send(request, blob, etag=f'"{blob.git_oid}"', headers=headers)

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        sha = request.match_info["sha"]
        for blob in self._blobs():
            if blob.sha256 == sha:
                return await self._send(request, blob, etag=f'"{sha}"')
        raise web.HTTPNotFound()

    def _blobs(self) -> list[Blob]:
        found = [b for r in (*self.hf.values(), *self.ms.values()) for b in r.files.values()]
        return found + [b for layers in self.ollama.values() for b in layers.values()]

    # -- serving bytes -----------------------------------------------------------------------

    async def _send(
        self, request: web.Request, blob: Blob, *, etag: str, headers: dict[str, str] | None = None
    ) -> web.StreamResponse:
        fault = self._next_fault(blob)
        if fault is not None and fault.status is not None:
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return web.Response(status=fault.status, text="fault", headers=extra)
        start, end, status = 0, blob.size - 1, 200
        wanted = request.headers.get("Range")
        if_range = request.headers.get("If-Range")
        if wanted and not (fault and fault.ignore_range) and (if_range is None or if_range == etag):
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)
            if m is None:
                raise web.HTTPBadRequest()
            start = int(m.group(1))
            end = min(int(m.group(2)), blob.size - 1) if m.group(2) else blob.size - 1
            if start >= blob.size:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{blob.size}"})
            status = 206
        out = {
            **(headers or {}),
            "ETag": etag,
            "Accept-Ranges": "bytes",
            "Content-Length": str(end - start + 1),
        }
        if status == 206:
            out["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
        resp = web.StreamResponse(status=status, headers=out)
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        with contextlib.suppress(ConnectionError):  # the client went away (pause, cancel, kill)
            await self._body(request, resp, blob, start, end, fault)
        return resp

    async def _body(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        blob: Blob,
        start: int,
        end: int,
        fault: Fault | None,
    ) -> None:
        pos, sent = start, 0
        step = BLOCK if self.rate is None else max(4096, min(BLOCK, int(self.rate / 20)))
        while pos <= end:
            block = blob.read(pos, min(step, end + 1 - pos))
            if fault is not None and fault.corrupt and sent == 0:
                block = bytes([block[0] ^ 0xFF]) + block[1:]
            if fault is not None and fault.drop_after is not None and sent + len(block) > fault.drop_after:
                block = block[: fault.drop_after - sent]
                await resp.write(block)
                self.served[blob.sha256] += len(block)
                assert request.transport is not None
                request.transport.abort()
                return
            await resp.write(block)
            self.served[blob.sha256] += len(block)
            pos += len(block)
            sent += len(block)
            if fault is not None and fault.stall is not None:
                await asyncio.sleep(fault.stall)
                fault.stall = None
            if self.rate is not None:
                await asyncio.sleep(len(block) / self.rate)
        await resp.write_eof()

    def _next_fault(self, blob: Blob) -> Fault | None:
        queue = self.faults.get(blob.sha256)
        if not queue:
            return None
        fault = queue[0]
        if fault.times > 0:
            fault.times -= 1
            if fault.times == 0:
                queue.pop(0)
        return fault

    # -- ModelScope --------------------------------------------------------------------------

    def _ms_repo(self, request: web.Request) -> Repo:
        repo = self.ms.get(f"{request.match_info['org']}/{request.match_info['name']}")
        if repo is None:
            body = {"Code": 10010205001, "Message": "model not found", "Success": False, "RequestId": "x"}
            raise web.HTTPNotFound(text=json.dumps(body), content_type="application/json")
        return repo

    async def ms_list(self, request: web.Request) -> web.Response:
        search = request.query.get("search", "").lower()
        found = [r for r in self.ms.values() if search in r.id.lower()]
        models = [
            {
                "id": r.id,
                "display_name": r.id.split("/")[1],
                "downloads": r.downloads,
                "likes": 1,
                "tags": r.tags,
                "tasks": [r.pipeline_tag] if r.pipeline_tag else [],
                "last_modified": "2026-02-03T04:05:06Z",
            }
            for r in found
        ]
        data = {"models": models, "total_count": len(models), "page_number": 1, "page_size": 10}
        return web.json_response({"success": True, "request_id": "x", "data": data})

    async def ms_files(self, request: web.Request) -> web.Response:
        repo = self._ms_repo(request)
        files = [
            {
                "Name": p.rsplit("/", 1)[-1],
                "Path": p,
                "Size": b.size,
                "Sha256": b.sha256,
                "Type": "blob",
                "Revision": request.query.get("Revision", "master"),
                "CommittedDate": 1767225600,
            }
            for p, b in repo.files.items()
        ]
        return web.json_response(
            {"Code": 200, "Data": {"Files": files}, "Message": "success", "Success": True}
        )

    async def ms_file(self, request: web.Request) -> web.StreamResponse:
        repo = self._ms_repo(request)
        blob = repo.files.get(request.query.get("FilePath", ""))
        if blob is None:
            raise web.HTTPNotFound()
        return await self._send(request, blob, etag=f'"{blob.sha256}"')

    # -- Ollama ------------------------------------------------------------------------------

    async def ollama_manifest(self, request: web.Request) -> web.Response:
        m = request.match_info
        layers = self.ollama.get(f"{m['ns']}/{m['name']}:{m['tag']}")
        if layers is None:
            body = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
            return web.json_response(body, status=404)
        config = Blob.of(b'{"model_format":"gguf"}')
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": f"sha256:{config.sha256}",
                "size": config.size,
            },
            "layers": [
                {
                    "mediaType": f"application/vnd.ollama.image.{kind}",
                    "digest": f"sha256:{b.sha256}",
                    "size": b.size,
                }
                for kind, b in layers.items()
            ],
        }
        return web.Response(
            text=json.dumps(manifest), content_type="application/vnd.docker.distribution.manifest.v2+json"
        )

    async def ollama_blob(self, request: web.Request) -> web.Response:
        sha = request.match_info["digest"].removeprefix("sha256:")
        return web.Response(status=307, headers={"Location": f"{self.cdn_url}/cdn/{sha}"})


def _hf_error(status: int, code: str, message: str) -> web.HTTPException:
    headers = {"X-Error-Code": code, "X-Error-Message": message}
    cls = {401: web.HTTPUnauthorized, 403: web.HTTPForbidden, 404: web.HTTPNotFound}[status]
    return cls(text=json.dumps({"error": message}), content_type="application/json", headers=headers)


def main() -> None:  # pragma: no cover - the benchmark runs it
    path, repo = Path(sys.argv[1]), sys.argv[2]
    hub = FakeHub()
    hub.add_hf(repo, {path.name: Blob.on_disk(path)})
    hub.start(int(os.environ.get("FAKEHUB_PORT", "0")), send_buffer=256 << 10)
    print(hub.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
