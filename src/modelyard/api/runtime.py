"""Routes of the runtime: load, unload, instances, logs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from modelyard.api.schemas import ErrorOut
from modelyard.backends import llama_cpp
from modelyard.errors import NotFound
from modelyard.estimate import config_of, fit, fit_folder
from modelyard.estimate.llama import Breakdown
from modelyard.library.settings import backend_of, validate
from modelyard.monitor.gpus import nvidia
from modelyard.runtime.controller import Runtime, State

router = APIRouter(
    prefix="/api", tags=["runtime"], responses={c: {"model": ErrorOut} for c in (400, 404, 409, 502)}
)


class LoadIn(BaseModel):
    adapter: str | None = Field(None, description="a LoRA adapter of the model")
    replicas: int = Field(1, ge=1, le=64)
    force: bool = Field(False, description="load even when the estimate says it will not fit")


class UnloadIn(BaseModel):
    force: bool = Field(False, description="stop at once, even with requests in flight")


class InstanceOut(BaseModel):
    id: int
    model: str
    adapter: str | None
    state: str
    url: str | None
    pid: int | None
    starts: int
    restarts: int
    memory: int = Field(description="resident memory of the engine and its children, bytes")
    cpu_percent: float = Field(description="CPU use since the last look, % of one core")
    error: str | None
    history: list[dict[str, object]]


class DeploymentOut(BaseModel):
    model: str
    adapter: str | None
    replicas: int
    backend: str
    options: dict[str, object]
    instances: list[InstanceOut]


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _instances(runtime: Runtime) -> list[InstanceOut]:
    adapters = {name: r.deployment.adapter for name, r in runtime.running.items()}
    return [
        InstanceOut(
            id=i.id,
            model=i.model,
            adapter=adapters.get(i.model),
            state=i.state,
            url=i.url,
            pid=i.pid,
            starts=i.starts,
            restarts=i.restarts,
            memory=runtime.memory(i.id),
            cpu_percent=runtime.cpu_percent(i.id),
            error=i.error,
            history=i.history,
        )
        for i in runtime.instances()
    ]


@router.post("/models/{name}/load")
async def load(request: Request, name: str, body: LoadIn) -> DeploymentOut:
    """Load a model (a deployment of `replicas` instances); waits until it serves."""
    runtime = runtime_of(request)
    dep = await runtime.load(name, adapter=body.adapter, replicas=body.replicas, force=body.force)
    return DeploymentOut(
        model=dep.model,
        adapter=dep.adapter,
        replicas=dep.replicas,
        backend=dep.backend,
        options=dep.options,
        instances=[i for i in _instances(runtime) if i.model == name],
    )


@router.post("/models/{name}/unload", status_code=204)
async def unload(request: Request, name: str, body: UnloadIn | None = None) -> None:
    """Unload a model: its requests finish first (up to the switch timeout) unless forced."""
    await runtime_of(request).unload(name, force=bool(body and body.force))


@router.get("/instances")
def instances(request: Request) -> list[InstanceOut]:
    return _instances(runtime_of(request))


@router.get("/instances/{instance_id}/logs")
async def logs(
    request: Request,
    instance_id: int,
    lines: int = Query(200, ge=0, le=100_000, description="how many lines from the end"),
    follow: bool = Query(False, description="keep streaming new lines, across restarts"),
    start: int | None = Query(None, ge=1, description="which start's log (default: the latest)"),
) -> StreamingResponse:
    """An instance's log: the last lines, and with follow=true everything written after."""
    runtime = runtime_of(request)
    found = runtime.log_path(instance_id, start)
    if found is None:
        raise NotFound(f"no instance {instance_id}", hint="`modelyard ps` lists the instances")
    path, number = found
    return StreamingResponse(
        _stream(runtime, request, instance_id, Path(path), number, lines, follow), media_type="text/plain"
    )


async def _stream(
    runtime: Runtime, request: Request, instance_id: int, path: Path, number: int, lines: int, follow: bool
) -> AsyncIterator[bytes]:
    text = path.read_bytes() if path.is_file() else b""
    kept = b"\n".join(text.splitlines()[-lines:]) + b"\n" if lines and text else b""
    yield kept
    if not follow:
        return
    position = len(text)
    while not await request.is_disconnected():
        if path.is_file():
            with path.open("rb") as f:
                f.seek(position)
                chunk = f.read()
            if chunk:
                position += len(chunk)
                yield chunk
                continue
        latest = runtime.log_path(instance_id)
        if latest is None:
            return  # the instance is gone (unloaded)
        if latest[1] != number:  # restarted: go on with the new start's log
            path, number, position = Path(latest[0]), latest[1], 0
            yield f"--- start {number} ---\n".encode()
            continue
        if any(i.id == instance_id and i.state == State.STOPPED for i in runtime.instances()):
            return
        await asyncio.sleep(0.2)


class BreakdownOut(BaseModel):
    weights: int
    kv_cache: int
    compute: int
    overhead: int
    total: int


class EstimateOut(BaseModel):
    model: str
    runtime: str
    n_ctx: int
    n_gpu_layers: int
    ram: BreakdownOut
    vram: list[BreakdownOut]
    free_ram: int
    fits: bool
    max_ctx: int | None = Field(description="the largest context that fits the free RAM")
    free_vram: list[int] = Field(description="free memory of each NVIDIA GPU now")
    max_gpu_layers: int | None = Field(description="the most layers the GPUs take (none without a GPU)")
    rule_of_thumb: int = Field(description="the beginner's guide: file size + 2 GB")


def _breakdown(b: Breakdown) -> BreakdownOut:
    return BreakdownOut(
        weights=b.weights, kv_cache=b.kv_cache, compute=b.compute, overhead=b.overhead, total=b.total
    )


@router.get("/models/{name}/estimate")
def estimate(
    request: Request,
    name: str,
    n_ctx: int | None = Query(None, ge=0, description="default: the saved setting; 0 = the model's own"),
    n_gpu_layers: int | None = Query(None, ge=-1, description="GGUF"),
    parallel: int | None = Query(None, ge=1, le=256, description="GGUF"),
    cache_type_k: str | None = Query(None, description="GGUF"),
    cache_type_v: str | None = Query(None, description="GGUF"),
    precision: str | None = Query(None, description="safetensors: auto, float32, float16, bfloat16"),
    device: str | None = Query(None, description="safetensors: auto, cpu, cuda"),
    quantization: str | None = Query(None, description="safetensors: none, int8, int4, nf4"),
) -> EstimateOut:
    """The RAM (and VRAM) the model needs with its saved settings and these overrides, without
    loading it; whether that fits what is free now, and the largest context that does."""
    runtime = runtime_of(request)
    model = runtime.library.get(name)
    overrides = {
        "n_ctx": n_ctx, "n_gpu_layers": n_gpu_layers, "parallel": parallel,
        "cache_type_k": cache_type_k, "cache_type_v": cache_type_v, "precision": precision,
        "device": device, "quantization": quantization,
    }  # fmt: skip
    saved = model.settings.options if model.settings else {}
    options = {**saved, **{k: v for k, v in overrides.items() if v is not None}}
    options = validate(model, options).model_dump()
    if not options.get("n_ctx"):
        options["n_ctx"] = model.context_length or options.get("n_ctx")
    free_vram = [g.memory_total - (g.memory_used or 0) for g in nvidia() if g.memory_total]
    free_ram = psutil.virtual_memory().available
    if model.format == "gguf":
        engine, _ = llama_cpp.find_runtime(runtime.settings.llama_server, runtime.settings.bin_dir)
        report = fit(model, config_of(model, options, engine, n_gpus=len(free_vram)), free_ram, free_vram)
    else:
        engine = backend_of(model)
        report = fit_folder(model, options, free_ram, free_vram)
    e = report.estimate
    return EstimateOut(
        model=name,
        runtime=engine,
        n_ctx=e.n_ctx,
        n_gpu_layers=e.n_gpu_layers,
        ram=_breakdown(e.ram),
        vram=[_breakdown(v) for v in e.vram],
        free_ram=report.free_ram,
        fits=report.fits,
        max_ctx=report.max_ctx,
        free_vram=free_vram,
        max_gpu_layers=report.max_gpu_layers,
        rule_of_thumb=report.rule_of_thumb,
    )
