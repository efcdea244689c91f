"""Routes of the hubs (search, a repo's files) and of download jobs (with an event stream)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from modelyard.access.folders import Folders
from modelyard.api.routing import StrictRoute
from modelyard.api.sse import event_stream
from modelyard.hub.jobs import Downloads, PullRequest
from modelyard.hub.refs import Source
from modelyard.hub.selection import groups, is_gguf_repo

hub_router = APIRouter(route_class=StrictRoute, prefix="/api/hub", tags=["hub"])
router = APIRouter(route_class=StrictRoute, prefix="/api/downloads", tags=["downloads"])


def downloads_of(request: Request) -> Downloads:
    downloads: Downloads = request.app.state.downloads
    return downloads


class HitOut(BaseModel):
    source: Source
    repo: str
    downloads: int
    likes: int
    task: str | None
    gguf: bool
    updated: str | None


class RemoteFileOut(BaseModel):
    path: str
    size: int | None
    sha256: str | None


class GroupOut(BaseModel):
    name: str = Field(description="a quantization (Q4_K_M), 'mmproj', or 'other'")
    size: int
    shards: int
    files: list[RemoteFileOut]


class RepoOut(BaseModel):
    source: Source
    repo: str
    revision: str
    gguf: bool
    task: str | None
    groups: list[GroupOut]


# ids are 64-bit integers in the catalog: a bigger number names nothing (and is a clear 400)
JobId = Annotated[int, Path(ge=1, le=(1 << 63) - 1, description="a download's id")]


class PullIn(BaseModel):
    ref: str = Field(description="org/model[:quant|:branch], a URL, hf.co/org/model:Q4_K_M, ollama:name:tag")
    source: Source | None = Field(default=None, description="when the ref does not say")
    quantization: str | None = None
    files: list[str] = Field(default_factory=list, description="file paths or glob patterns")
    all: bool = Field(default=False, description="every file of the repo")
    base: str | None = Field(default=None, description="the library model a LoRA repo binds to")
    name: str | None = Field(default=None, description="the name the imported model gets")
    directory: str | None = Field(
        default=None, description="save into DIRECTORY/<repo name> on the server (default: under its home)"
    )


class JobOut(BaseModel):
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
    speed: float = Field(description="bytes per second")
    eta: float | None = Field(description="seconds")
    destination: str
    files: list[str]
    models: list[str]
    error: str | None
    hint: str | None
    note: str | None
    deploy: dict[str, Any] | None = Field(description="the deployment it starts once imported")


@hub_router.get("/search")
async def search(
    request: Request,
    q: str = "",
    source: Source = Source.HF,
    category: str | None = None,
    gguf: bool = False,
    limit: int = Query(20, ge=1, le=100),
) -> list[HitOut]:
    hits = await downloads_of(request).search(
        q, source=source, category=category, gguf_only=gguf, limit=limit
    )
    return [HitOut.model_validate(h, from_attributes=True) for h in hits]


@hub_router.get("/files")
async def files(request: Request, ref: str, source: Source | None = None) -> RepoOut:
    """A repo's files, GGUF files grouped by quantization (shards together), with sizes."""
    snap = await downloads_of(request).snapshot(ref, source)
    return RepoOut(
        source=snap.source,
        repo=snap.repo,
        revision=snap.revision,
        gguf=is_gguf_repo(snap),
        task=snap.task,
        groups=[
            GroupOut(
                name=g.name,
                size=g.size,
                shards=g.shards,
                files=[RemoteFileOut(path=f.path, size=f.size, sha256=f.sha256) for f in g.files],
            )
            for g in groups(snap)
        ],
    )


@router.post("", status_code=201)
async def pull(request: Request, body: PullIn) -> JobOut:
    """Start a download; it is imported into the library when it is done."""
    if body.directory is not None:
        folders: Folders = request.app.state.folders
        folders.check(body.directory)
    view = await downloads_of(request).create(
        PullRequest(
            ref=body.ref,
            source=body.source,
            quantization=body.quantization,
            files=body.files,
            everything=body.all,
            base=body.base,
            name=body.name,
            directory=body.directory,
        )
    )
    return JobOut(**view.to_json())


@router.get("")
def jobs(request: Request) -> list[JobOut]:
    return [JobOut(**v.to_json()) for v in downloads_of(request).all()]


@router.get("/events")
async def events(request: Request) -> StreamingResponse:
    """Server-sent events: every job at first, then each change (progress twice a second)."""
    return event_stream(downloads_of(request).events())


@router.get("/{job}")
def job(request: Request, job: JobId) -> JobOut:
    return JobOut(**downloads_of(request).get(job).to_json())


@router.post("/{job}/pause")
async def pause(request: Request, job: JobId) -> JobOut:
    return JobOut(**(await downloads_of(request).pause(job)).to_json())


@router.post("/{job}/resume")
async def resume(request: Request, job: JobId) -> JobOut:
    return JobOut(**(await downloads_of(request).resume(job)).to_json())


@router.post("/{job}/cancel")
async def cancel(request: Request, job: JobId) -> JobOut:
    """Stop the download and delete its partial files."""
    return JobOut(**(await downloads_of(request).cancel(job)).to_json())


@router.delete("/{job}", status_code=204)
def forget(request: Request, job: JobId) -> None:
    """Remove an ended download from the list (its imported files stay)."""
    downloads_of(request).forget(job)
