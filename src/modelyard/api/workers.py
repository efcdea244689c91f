"""Routes of the workers: the nodes engines run on (one, "local", without a cluster), what each
has free, what runs there, and the labels and note people keep about each."""

from __future__ import annotations

from dataclasses import replace

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from modelyard.api.routing import StrictRoute
from modelyard.catalog.records import WorkerNote
from modelyard.deployments.spec import Selector
from modelyard.errors import NotFound
from modelyard.gateway.checks import runtime_of
from modelyard.http_errors import ErrorBody

router = APIRouter(
    route_class=StrictRoute,
    prefix="/api",
    tags=["workers"],
    responses={c: {"model": ErrorBody} for c in (400, 404)},
)


class WorkerGpuOut(BaseModel):
    index: int
    name: str
    vram_total: int
    vram_free: int
    temperature: float | None = Field(description="Celsius, where the driver tells")


class WorkerOut(BaseModel):
    name: str
    address: str = Field(description="where the gateway reaches its engines")
    alive: bool
    labels: dict[str, str] = Field(description="those it joined with, and people's over them")
    note: str
    drained: bool = Field(description="taken out for maintenance: nothing new is placed there")
    ram_total: int
    ram_free: int
    gpus: list[WorkerGpuOut]
    backends: list[str] | None = Field(description="the backends installed there; null: not reported")
    instances: list[int] = Field(description="the instances that run there")


class WorkerIn(BaseModel):
    labels: Selector | None = Field(None, description="people's labels to set; an empty value removes one")
    note: str | None = Field(None, max_length=2000)


@router.get("/workers")
async def workers(request: Request) -> list[WorkerOut]:
    runtime = runtime_of(request)
    notes = runtime.worker_notes()
    by_node: dict[str, list[int]] = {}
    for i in runtime.instances():
        if i.node:
            by_node.setdefault(i.node, []).append(i.id)
    return [
        WorkerOut(
            name=n.id, address=n.address, alive=n.alive, labels=n.labels,
            note=notes[n.id].note if n.id in notes else "", drained=n.drained,
            ram_total=n.ram_total, ram_free=n.ram_free,
            gpus=[
                WorkerGpuOut(index=g.index, name=g.name, vram_total=g.vram_total, vram_free=g.vram_free,
                             temperature=g.temperature)
                for g in n.gpus
            ],
            backends=sorted(n.backends) if n.backends is not None else None,
            instances=by_node.get(n.id, []),
        )
        for n in await runtime.nodes()
    ]  # fmt: skip


@router.put("/workers/{name}")
async def edit(request: Request, name: str, body: WorkerIn) -> WorkerOut:
    """Set a worker's own labels (merged over those it joined with) and note."""
    runtime = runtime_of(request)
    if name not in {n.id for n in await runtime.nodes()}:
        raise NotFound(f"no worker {name!r}", hint="`modelyard workers` lists them")
    kept = runtime.worker_notes().get(name, WorkerNote(name))
    labels = {k: v for k, v in {**kept.labels, **(body.labels or {})}.items() if v}
    runtime.note_worker(replace(kept, labels=labels, note=kept.note if body.note is None else body.note))
    return await _worker(request, name)


class MovedOut(BaseModel):
    model: str
    instance: int = Field(description="the instance that stopped")
    to: int = Field(description="the instance that serves in its place")
    worker: str = Field(description="where the new one runs")


class StayedOut(BaseModel):
    model: str
    instance: int
    reason: str = Field(description="why no other worker takes it")


class DrainOut(BaseModel):
    worker: WorkerOut
    moved: list[MovedOut]
    stayed: list[StayedOut] = Field(description="instances still there: the drain could not place them")


@router.post("/workers/{name}/drain")
async def drain(request: Request, name: str) -> DrainOut:
    """Take a worker out for maintenance: nothing new is placed there, and each of its
    instances is replaced elsewhere (the new one serves before the old one drains and stops)."""
    done = await runtime_of(request).drain(name)
    return DrainOut(
        worker=await _worker(request, name),
        moved=[MovedOut(model=m.model, instance=m.instance, to=m.to, worker=m.node) for m in done.moved],
        stayed=[StayedOut(model=s.model, instance=s.instance, reason=s.reason) for s in done.stayed],
    )


@router.post("/workers/{name}/undrain")
async def undrain(request: Request, name: str) -> WorkerOut:
    """Bring a drained worker back: new instances may go there again."""
    await runtime_of(request).undrain(name)
    return await _worker(request, name)


async def _worker(request: Request, name: str) -> WorkerOut:
    found = next((w for w in await workers(request) if w.name == name), None)
    if found is None:
        raise NotFound(f"worker {name!r} is not in the cluster now", hint="`modelyard workers` lists them")
    return found
