"""Routes of the resource monitor: current values, a short history, events, and a live stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from modelyard.api.routing import StrictRoute
from modelyard.api.sse import event_stream
from modelyard.monitor.sampler import Monitor

router = APIRouter(route_class=StrictRoute, prefix="/api/monitor", tags=["monitor"])


class GpuOut(BaseModel):
    index: int
    name: str
    vendor: str
    memory_total: int | None
    memory_used: int | None
    temperature: float | None
    live: bool


class SampleOut(BaseModel):
    """One sample (also each event of /api/monitor/stream); ``gpus`` only when there are GPUs."""

    at: float
    cpu_percent: float
    memory_used: int
    memory_total: int
    memory_percent: float
    gpus: list[GpuOut] | None = None
    pressure_percent: float = Field(description="memory_percent at and above which it is memory pressure")


class EventOut(BaseModel):
    at: float
    kind: str
    message: str


def monitor_of(request: Request) -> Monitor:
    monitor: Monitor = request.app.state.monitor
    return monitor


@router.get("", response_model=SampleOut, response_model_exclude_unset=True)
def current(request: Request) -> dict[str, Any]:
    """CPU %, memory used/total and, when there are GPUs, each GPU's memory, temperature, vendor."""
    return monitor_of(request).current.as_dict()


@router.get("/history", response_model=list[SampleOut], response_model_exclude_unset=True)
def history(request: Request, seconds: float = Query(60, gt=0, le=3600)) -> list[dict[str, Any]]:
    since = time.time() - seconds
    return [s.as_dict() for s in monitor_of(request).history if s.at >= since]


@router.get("/events", response_model=list[EventOut])
def events(request: Request) -> list[dict[str, Any]]:
    """Memory pressure warnings and what was unloaded to relieve it."""
    return [asdict(e) for e in monitor_of(request).events]


@router.get("/stream")
async def stream(request: Request) -> StreamingResponse:
    """Server-sent events: one sample per interval."""

    async def samples() -> AsyncIterator[dict[str, Any]]:
        async for sample in monitor_of(request).subscribe():
            yield sample.as_dict()

    return event_stream(samples())
