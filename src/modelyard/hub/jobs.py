"""Download jobs: persistent, several at once up to a limit, paused / resumed / cancelled,
watched through events, and imported into the library when done."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from modelyard.catalog.records import Download
from modelyard.config import Settings
from modelyard.errors import DownloadActive, InvalidImport, InvalidInput, ModelyardError, NoSpace
from modelyard.formats.detect import inspect_path
from modelyard.formats.files import usable_path
from modelyard.formats.inspection import ADAPTER
from modelyard.hub.huggingface import HuggingFace
from modelyard.hub.modelscope import ModelScope
from modelyard.hub.network import reachable
from modelyard.hub.ollama import Ollama
from modelyard.hub.refs import Source, parse_ref
from modelyard.hub.remote import Hub, RemoteFile, SearchHit, Snapshot
from modelyard.hub.selection import choose
from modelyard.hub.transfer import Transfer, client_session
from modelyard.library import Library
from modelyard.library.naming import unique_name

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running", "importing", "deploying")
ENDED = ("completed", "failed", "cancelled")
SPACE_MARGIN = 256 << 20  # bytes left free on the disk after a download
TICK = 0.5  # seconds between progress events
SPEED_WINDOW = 5.0  # seconds the speed is averaged over


@dataclass
class PullRequest:
    ref: str
    source: Source | None = None
    quantization: str | None = None
    files: list[str] = field(default_factory=list)  # exact paths or glob patterns
    everything: bool = False
    base: str | None = None  # the base model a LoRA binds to
    name: str | None = None
    directory: str | None = None  # the files go into DIRECTORY/<repo name>; else under models_dir
    deploy: dict[str, Any] | None = None  # a deployment to start once imported (see Deployer)
    token: str | None = None  # this request's own hub token (kept in memory only, with the job)


@dataclass
class _Live:
    """What a running job knows that the catalog is not told every moment."""

    bytes_done: int
    files_done: int
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None

    def add(self, n: int) -> None:
        self.bytes_done += n

    def speed(self) -> float:
        now = time.monotonic()
        self.samples.append((now, self.bytes_done))
        while len(self.samples) > 2 and now - self.samples[0][0] > SPEED_WINDOW:
            self.samples.popleft()
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0


@dataclass
class JobView:
    """A job as the API and the CLI show it."""

    id: int
    ref: str
    source: str
    repo: str
    revision: str
    state: str
    bytes_total: int
    bytes_done: int
    files_total: int
    files_done: int
    speed: float  # bytes per second
    eta: float | None  # seconds
    destination: str
    files: list[str]
    models: list[str]
    error: str | None
    hint: str | None
    note: str | None
    deploy: dict[str, Any] | None  # the deployment it starts once imported

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Downloads:
    def __init__(self, settings: Settings, library: Library, hubs: dict[Source, Hub] | None = None) -> None:
        self.settings = settings
        self.library = library
        self.store = library.store
        self.hubs: dict[Source, Hub] = hubs or {
            Source.HF: HuggingFace(settings.hf_endpoint, settings.hf_token),
            Source.MODELSCOPE: ModelScope(settings.modelscope_endpoint, settings.modelscope_token),
            Source.OLLAMA: Ollama(settings.ollama_registry),
        }
        self._live: dict[int, _Live] = {}
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False
        # what starts the deployment a job asks for once its files are imported: the job and
        # the models it imported -> what to say about it (the Deployer sets it)
        self.deployer: Callable[[Download, list[str]], Awaitable[str]] | None = None
        self._tokens: dict[int, str] = {}  # job -> its request's token: never written to the catalog
        self.received = 0  # bytes downloaded since the server started

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.settings.downloads_dir.mkdir(parents=True, exist_ok=True)
        self._session = client_session(self.settings.stall_timeout)
        for job in self.store.downloads(("running", "importing")):  # the server stopped under them
            self.store.update_download(job.id, state="queued")
        for job in self.store.downloads(("deploying",)):  # imported; the deployment is the runtime's
            self.store.update_download(job.id, state="completed", note="the server stopped while it deployed")
        self._ticker = asyncio.create_task(self._tick())
        self._schedule()

    async def close(self) -> None:
        self._closing = True
        live = [lv.task for lv in self._live.values() if lv.task is not None]
        for task in live:
            task.cancel()
        await asyncio.gather(*live, return_exceptions=True)
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    # -- asking the hubs ---------------------------------------------------------------------

    def hub(self, source: Source, token: str | None = None) -> Hub:
        hub = self.hubs[source]
        return hub.with_token(token) if token else hub

    async def search(
        self, query: str, *, source: Source, category: str | None, gguf_only: bool, limit: int
    ) -> list[SearchHit]:
        hub = self.hub(source)
        await asyncio.to_thread(reachable, hub.endpoint)
        return await asyncio.to_thread(hub.search, query, category=category, gguf_only=gguf_only, limit=limit)

    async def snapshot(
        self, ref_text: str, source: Source | None = None, token: str | None = None
    ) -> Snapshot:
        ref = parse_ref(ref_text, source)
        hub = self.hub(ref.source, token)
        await asyncio.to_thread(reachable, hub.endpoint)
        return await asyncio.to_thread(hub.snapshot, ref.repo, ref.revision)

    # -- jobs --------------------------------------------------------------------------------

    async def create(self, request: PullRequest) -> JobView:
        ref = parse_ref(request.ref, request.source)
        folder = _chosen_folder(request.directory) if request.directory else None
        if request.base is not None:
            self.library.get(request.base)  # a missing base fails now, not after the download
        snap = await self.snapshot(request.ref, request.source, request.token)
        exact = [p for p in request.files if not any(c in p for c in "*?[")]
        chosen = choose(
            snap,
            quantization=request.quantization or ref.quantization,
            patterns=request.files or None,
            file=ref.file or (exact[0] if len(exact) == 1 == len(request.files) else None),
            everything=request.everything,
        )
        if request.deploy is not None and (done := self._already(snap, chosen)) is not None:
            return done  # what a deployment needs is here: nothing to fetch
        total = sum(f.size or 0 for f in chosen)
        if folder is not None:
            destination = folder / _repo_name(snap.repo)
        else:
            destination = self.settings.models_dir / snap.source.value / snap.repo / snap.revision
        self._check_space(total, destination)
        job = self.store.add_download(
            source=snap.source.value,
            repo=snap.repo,
            revision=snap.revision,
            ref=request.ref,
            files=[f.to_json() for f in chosen],
            destination=str(destination),
            base=request.base,
            name=request.name,
            deploy=request.deploy,
            state="queued",
            bytes_total=total,
            bytes_done=0,
            files_done=0,
            models=[],
        )
        if request.token:
            self._tokens[job.id] = request.token
        self._publish(job)
        self._schedule()
        return self.view(job)

    def _already(self, snap: Snapshot, chosen: list[RemoteFile]) -> JobView | None:
        """A completed job that brought the same files of the same revision, whose models are
        all still in the library."""
        paths = sorted(f.path for f in chosen)
        for job in self.store.downloads(("completed",)):
            same = (job.source, job.repo, job.revision) == (snap.source.value, snap.repo, snap.revision)
            files = sorted(f["path"] for f in job.files)
            kept = bool(job.models) and all(self.store.has_name(m) for m in job.models)
            if same and files == paths and job.base is None and kept:
                return self.view(job)
        return None

    def all(self) -> list[JobView]:
        return [self.view(j) for j in self.store.downloads()]

    def get(self, job: int) -> JobView:
        return self.view(self.store.get_download(job))

    async def pause(self, job_id: int) -> JobView:
        job = self.store.get_download(job_id)
        if job.state not in ("queued", "running"):
            return self.view(job)
        await self._stop(job_id)
        return self._set(job_id, state="paused")

    async def resume(self, job_id: int) -> JobView:
        job = self.store.get_download(job_id)
        if job.state not in ("paused", "failed"):
            return self.view(job)
        view = self._set(job_id, state="queued", error=None, hint=None)
        self._schedule()
        return view

    async def cancel(self, job_id: int) -> JobView:
        job = self.store.get_download(job_id)
        if job.state in ENDED:
            return self.view(job)
        await self._stop(job_id)
        await asyncio.to_thread(shutil.rmtree, self._work(job_id), True)
        self._tokens.pop(job_id, None)
        return self._set(job_id, state="cancelled")

    def forget(self, job_id: int) -> None:
        job = self.store.get_download(job_id)
        if job.state in ACTIVE:
            raise DownloadActive(
                f"download {job_id} is {job.state}",
                hint=f"cancel it first: `modelyard downloads cancel {job_id}`",
            )
        shutil.rmtree(self._work(job_id), ignore_errors=True)
        self._tokens.pop(job_id, None)
        self.store.delete_download(job_id)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Every job now, then each change: state changes at once, progress every half second."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._subscribers.add(queue)
        try:
            for view in self.all():
                yield view.to_json()
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)

    # -- inside ------------------------------------------------------------------------------

    def view(self, job: Download) -> JobView:
        live = self._live.get(job.id)
        done = live.bytes_done if live else job.bytes_done
        speed = live.speed() if live and job.state == "running" else 0.0
        eta = (job.bytes_total - done) / speed if speed > 0 else None
        return JobView(
            id=job.id,
            ref=job.ref,
            source=job.source,
            repo=job.repo,
            revision=job.revision,
            state=job.state,
            bytes_total=job.bytes_total,
            bytes_done=done,
            files_total=len(job.files),
            files_done=live.files_done if live else job.files_done,
            speed=speed,
            eta=eta,
            destination=job.destination,
            files=[f["path"] for f in job.files],
            models=job.models,
            error=job.error,
            hint=job.hint,
            note=job.note,
            deploy=job.deploy,
        )

    def _set(self, job_id: int, **fields: Any) -> JobView:
        job = self.store.update_download(job_id, **fields)
        return self._publish(job)

    def _publish(self, job: Download) -> JobView:
        view = self.view(job)
        payload = view.to_json()
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(payload)
        return view

    def _work(self, job_id: int) -> Path:
        return self.settings.downloads_dir / str(job_id)

    def _check_space(self, needed: int, destination: Path | None = None) -> None:
        """The files are fetched under downloads_dir, then moved to the destination: both disks
        need the room when they differ."""
        self.settings.downloads_dir.mkdir(parents=True, exist_ok=True)
        places = [self.settings.downloads_dir]
        if destination is not None:
            existing = next(p for p in (destination, *destination.parents) if p.exists())
            if existing.stat().st_dev != self.settings.downloads_dir.stat().st_dev:
                places.append(existing)
        for place in places:
            free = shutil.disk_usage(place).free
            if needed + SPACE_MARGIN > free:
                raise NoSpace(
                    f"the download needs {needed / 2**30:.2f} GiB and {place} has {free / 2**30:.2f} GiB free",
                    hint="free some space, or pick a smaller quantization or fewer files",
                )

    async def _stop(self, job_id: int) -> None:
        live = self._live.get(job_id)
        if live is not None and live.task is not None:
            live.task.cancel()
            await asyncio.gather(live.task, return_exceptions=True)

    def _schedule(self) -> None:
        if self._closing or self._session is None:
            return
        running = sum(1 for lv in self._live.values() if lv.task is not None and not lv.task.done())
        for job in self.store.downloads(("queued",)):
            if running >= self.settings.max_downloads:
                break
            if job.id in self._live:
                continue
            live = _Live(bytes_done=job.bytes_done, files_done=job.files_done)
            self._live[job.id] = live
            live.task = asyncio.create_task(self._run(job.id, live))
            running += 1

    async def _run(self, job_id: int, live: _Live) -> None:
        assert self._session is not None
        job = self.store.get_download(job_id)
        try:
            files = [RemoteFile.from_json(f) for f in job.files]

            def file_done(_path: str) -> None:
                live.files_done += 1

            def got(n: int) -> None:
                live.add(n)
                self.received += n

            transfer = Transfer(
                self._session,
                self.hub(Source(job.source), self._tokens.get(job_id)),
                files,
                work=self._work(job_id),
                dest=Path(job.destination),
                connections=self.settings.download_connections,
                retries=self.settings.download_retries,
                on_bytes=got,
                on_file=file_done,
            )
            live.bytes_done = transfer.done_bytes()
            live.files_done = len(transfer.finished())
            self._check_space(transfer.pending_bytes(), Path(job.destination))
            self._set(job_id, state="running", bytes_done=live.bytes_done)
            await transfer.run()
            self._set(job_id, state="importing", bytes_done=live.bytes_done, files_done=live.files_done)
            models, note = await asyncio.to_thread(self._import, self.store.get_download(job_id))
            await asyncio.to_thread(shutil.rmtree, self._work(job_id), True)
            job = self.store.get_download(job_id)
            if job.deploy is not None and self.deployer is not None and models:
                self._set(job_id, state="deploying", models=models, note=note)
                said = await self.deployer(job, models)
                note = f"{note}; {said}" if note else said
            self._tokens.pop(job_id, None)
            self._set(job_id, state="completed", models=models, note=note)
        except asyncio.CancelledError:
            # pause / cancel set the state themselves; a server that stops leaves it to resume.
            self.store.update_download(job_id, bytes_done=live.bytes_done, files_done=live.files_done)
            if self._closing and self.store.get_download(job_id).state == "running":
                self.store.update_download(job_id, state="queued")
            raise
        except ModelyardError as e:
            self._set(job_id, state="failed", error=e.message, hint=e.hint, bytes_done=live.bytes_done)
        except Exception as e:
            log.exception("download %s failed", job_id)
            self._set(job_id, state="failed", error=f"internal error: {e}", bytes_done=live.bytes_done)
        finally:
            self._live.pop(job_id, None)
            self._schedule()

    async def _tick(self) -> None:
        """Progress events for running jobs; the catalog hears of their bytes every few ticks."""
        n = 0
        while True:
            await asyncio.sleep(TICK)
            n += 1
            for job_id, live in list(self._live.items()):
                try:
                    job = self.store.get_download(job_id)
                    if job.state != "running":
                        continue
                    if n % 4 == 0:
                        job = self.store.update_download(
                            job_id, bytes_done=live.bytes_done, files_done=live.files_done
                        )
                    self._publish(job)
                except ModelyardError:
                    continue

    def _import(self, job: Download) -> tuple[list[str], str | None]:
        """Put what was downloaded into the library: a LoRA onto its base, models by a scan."""
        dest = Path(job.destination)
        origin = f"{job.source}:{job.repo}@{job.revision}"
        if job.base is not None:
            target = self._adapter_path(job, dest)
            model = self.library.add_adapter(job.base, str(target), job.name)
            added = model.adapters[-1].name
            return [f"{job.base}:{added}"], None
        report = self.library.scan(str(dest))
        imported = list(report.imported)
        for i, name in enumerate(imported):
            if ":" in name:
                continue
            model = self.library.get(name)
            new_name = None
            if model.path == str(dest) or (job.name and len(imported) == 1):
                new_name = job.name or unique_name(_repo_name(job.repo), self.store.name_taken)
            updated = self.library.update(name, new_name=new_name, description=model.description or origin)
            imported[i] = updated.name
        notes = [f"{Path(p).name}: {why}" for p, why in report.skipped + report.failed]
        if not imported and not report.unchanged:
            notes.insert(0, "nothing was imported")
        return imported, "; ".join(notes) or None

    @staticmethod
    def _adapter_path(job: Download, dest: Path) -> Path:
        paths = [dest / f["path"] for f in job.files]
        weights = [p for p in paths if p.suffix in (".gguf", ".safetensors") and "mmproj" not in p.name]
        target = weights[0] if len(weights) == 1 and weights[0].suffix == ".gguf" else dest
        if inspect_path(target).kind != ADAPTER:
            raise InvalidImport(
                f"{job.repo} is not a LoRA adapter, so it cannot be bound to {job.base!r}",
                hint="pull it without --base to import it as a model",
            )
        return target


def _repo_name(repo: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", repo.rsplit("/", 1)[-1]).strip("-._")
    return name[:128] or "model"


def _chosen_folder(directory: str) -> Path:
    """A save folder the user picked: absolute, and a folder (made when missing) we may write in."""
    folder = usable_path(directory)
    if not folder.is_absolute():
        raise InvalidInput(f"the save folder must be an absolute path: {directory}", hint="e.g. /data/models")
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"{folder} is a file, not a folder", hint="pick a folder to save into")
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not os.access(existing, os.W_OK):
        raise InvalidInput(f"cannot write in {existing}", hint="pick a folder you may write in")
    return folder
