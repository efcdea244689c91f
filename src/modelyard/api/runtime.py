"""Routes of the runtime: load, unload, instances, logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict

from fastapi import APIRouter, Query, Request, Response
from fastapi import Path as ApiPath
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from modelyard.api.routing import StrictRoute
from modelyard.catalog.records import Deployment
from modelyard.deployments.spec import AutoscaleFields, SchedulingChanges, SchedulingFields, scheduling_fields
from modelyard.errors import NotFound
from modelyard.estimate.llama import Breakdown
from modelyard.gateway.checks import caller_of, library_of, runtime_of
from modelyard.http_errors import ErrorBody
from modelyard.library.settings import effective
from modelyard.metrics import Metrics
from modelyard.runtime import placement
from modelyard.runtime.executor import LogRef
from modelyard.runtime.runtime import Runtime
from modelyard.runtime.supervisor import State

log = logging.getLogger(__name__)
router = APIRouter(
    route_class=StrictRoute,
    prefix="/api",
    tags=["runtime"],
    responses={c: {"model": ErrorBody} for c in (400, 404, 409, 502)},
)


class LoadIn(SchedulingChanges):
    """A load; the scheduling fields not given stay as a kept deployment has them."""

    adapter: str | None = Field(None, description="a LoRA adapter of the model")
    replicas: int = Field(1, ge=1, le=64)
    force: bool = Field(False, description="load even when the estimate says it will not fit")
    env: dict[str, str] = Field(default_factory=dict, description="environment variables of its engines")


class UnloadIn(BaseModel):
    force: bool = Field(False, description="stop at once, even with requests in flight")


class GpuClaimOut(BaseModel):
    gpu: int
    bytes: int


class ClaimOut(BaseModel):
    node: str
    ram: int = Field(description="bytes of RAM the placement claimed for it there")
    vram: list[GpuClaimOut] = Field(description="bytes of each GPU's memory it claimed there")


class InstanceOut(BaseModel):
    id: int
    model: str
    adapter: str | None
    state: str
    node: str | None
    url: str | None
    pid: int | None = Field(description="the engine's process id on its node, while it runs")
    starts: int
    restarts: int
    memory: int = Field(description="resident memory of the engine and its children, bytes")
    claimed: list[ClaimOut] = Field(
        description="the memory the placement claimed for it, per node (none: it was not estimated)"
    )
    cpu_percent: float = Field(description="CPU use since the last look, % of one core")
    error: str | None
    history: list[dict[str, object]]
    draft_acceptance: float | None = Field(
        None, description="speculative decoding: the share of drafted tokens its model's engines accepted"
    )
    tokens_per_second: float | None = Field(
        None, description="its model's engines' decode rate so far, as they report it"
    )


class DeploymentOut(SchedulingFields):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    model: str
    adapter: str | None
    replicas: int
    autoscale: AutoscaleFields | None = Field(description="its replicas follow its requests; null: off")
    backend: str = Field(description="the backend asked for; empty: the one the registry chooses")
    serving_backend: str | None = Field(description="the backend its instances run on, while they run")
    backend_version: str | None = Field(description="the build of the backend; null: the default one")
    args: list[str] = Field(description="more engine arguments")
    env: dict[str, str] = Field(description="environment variables of its engines")
    restart: bool = Field(description="an engine that exits is started again")
    stopped: bool = Field(description="no instances; the rest is kept for a start")
    state: str = Field(
        description="running, starting, stopped; or held back: retrying (its start failed; tried "
        "again after a backoff), evicted (unloaded under memory pressure; loads again when memory "
        "frees), failed (its start failed and restart is off)"
    )
    reason: str | None = Field(description="why it is held back")
    retry_in: float | None = Field(description="seconds until it is tried again")
    jit: bool = Field(description="loaded on demand by a request (forgotten when the server stops)")
    options: dict[str, object] = Field(description="the options its instances started with")
    instances: list[InstanceOut]


async def deployment_out(runtime: Runtime, dep: Deployment) -> DeploymentOut:
    serving = next((s for s in runtime.serving() if s.model == dep.model), None)
    state, reason, retry_in = runtime.wish_state(dep)
    return DeploymentOut(
        state=state,
        reason=reason,
        retry_in=retry_in,
        model=dep.model,
        adapter=dep.adapter,
        replicas=dep.replicas,
        autoscale=AutoscaleFields(**asdict(dep.autoscale)) if dep.autoscale is not None else None,
        backend=dep.backend,
        serving_backend=serving.backend if serving is not None else None,
        backend_version=dep.backend_version,
        args=dep.args,
        env=dep.env,
        restart=dep.restart,
        stopped=dep.stopped,
        jit=dep.jit,
        options=dep.options,
        instances=await instances_of(runtime, dep.model),
        **scheduling_fields(dep.scheduling),
    )


async def instances_of(
    runtime: Runtime, model: str | None = None, metrics: Metrics | None = None
) -> list[InstanceOut]:
    """The instances (of ``model``), with the drafts their models' engines had accepted where
    ``metrics`` is given."""
    out = []
    for i in runtime.instances():
        if model is not None and i.model != model:
            continue
        engine = runtime.engine(i.id)
        live = runtime.live(i.id)
        usage = await runtime.usage(i.id)
        acceptance, rate = metrics.engine_report(i.model) if metrics is not None else (None, None)
        out.append(
            InstanceOut(
                id=i.id,
                model=i.model,
                adapter=runtime.adapter_of(i.id),
                state=i.state,
                node=i.node,
                url=i.url,
                pid=engine.pid if engine is not None and engine.returncode() is None else None,
                starts=i.starts,
                restarts=i.restarts,
                memory=usage.memory,
                claimed=[
                    ClaimOut(node=c.node, ram=c.ram, vram=[GpuClaimOut(gpu=g, bytes=b) for g, b in c.vram])
                    for c in (live.claims if live is not None else ())
                ],
                cpu_percent=usage.cpu_percent,
                error=i.error,
                history=i.history,
                draft_acceptance=acceptance,
                tokens_per_second=rate,
            )
        )
    return out


@router.post("/models/{name}/load", responses={202: {"description": "some instances are pending"}})
async def load(request: Request, response: Response, name: str, body: LoadIn) -> DeploymentOut:
    """Load a model (a deployment of `replicas` instances); waits until it serves. On a cluster,
    instances that fit on no worker yet are pending (202), with the reason, until one takes them."""
    runtime = runtime_of(request)
    if body.env:
        log.warning(
            "%s loads %r with engine variables %s", request.state.caller.name, name, ", ".join(body.env)
        )
    dep = await runtime.load(
        name,
        adapter=body.adapter,
        replicas=body.replicas,
        force=body.force,
        env=body.env or None,
        by=caller_of(request).account,
        scheduling=body.applied,
    )
    out = await deployment_out(runtime, dep)
    if any(i.state == "pending" for i in out.instances):
        response.status_code = 202
    return out


@router.post("/models/{name}/unload", status_code=204)
async def unload(request: Request, name: str, body: UnloadIn | None = None) -> None:
    """Unload a model: its requests finish first (up to the switch timeout) unless forced."""
    await runtime_of(request).unload(name, force=bool(body and body.force))


@router.get("/instances")
async def instances(request: Request) -> list[InstanceOut]:
    return await instances_of(runtime_of(request), metrics=request.app.state.metrics)


@router.get("/instances/{instance_id}/logs")
async def logs(
    request: Request,
    instance_id: int = ApiPath(ge=1, le=(1 << 63) - 1),
    lines: int = Query(200, ge=0, le=100_000, description="how many lines from the end"),
    follow: bool = Query(False, description="keep streaming new lines, across restarts"),
    start: int | None = Query(None, ge=1, description="which start's log (default: the latest)"),
) -> StreamingResponse:
    """An instance's log: the last lines, and with follow=true everything written after."""
    runtime = runtime_of(request)
    ref = runtime.log_ref(instance_id, start)
    if ref is None:
        raise NotFound(f"no instance {instance_id}", hint="`modelyard ps` lists the instances")
    return StreamingResponse(_stream(runtime, request, ref, lines, follow), media_type="text/plain")


async def _stream(
    runtime: Runtime, request: Request, ref: LogRef, lines: int, follow: bool
) -> AsyncIterator[bytes]:
    text = b""
    while chunk := await runtime.read_log(ref, len(text)):
        text += chunk
    kept = b"\n".join(text.splitlines()[-lines:]) + b"\n" if lines and text else b""
    yield kept
    if not follow:
        return
    position = len(text)
    while not await request.is_disconnected():
        chunk = await runtime.read_log(ref, position)
        if chunk:
            position += len(chunk)
            yield chunk
            continue
        latest = runtime.log_ref(ref.instance)
        if latest is None:
            return  # the instance is gone (unloaded)
        if latest.start != ref.start:  # restarted: go on with the new start's log
            ref, position = latest, 0
            yield f"--- start {ref.start} ---\n".encode()
            continue
        if any(i.id == ref.instance and i.state == State.STOPPED for i in runtime.instances()):
            return
        await asyncio.sleep(0.2)


class BreakdownOut(BaseModel):
    weights: int
    kv_cache: int = Field(description="the context's KV cache")
    compute: int
    overhead: int
    prompt_cache: int = Field(
        description="llama-server's reserve for earlier prompts' KV states (--cache-ram): its ceiling, "
        "filled only as prompts are cached"
    )
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
        weights=b.weights, kv_cache=b.kv_cache, compute=b.compute, overhead=b.overhead,
        prompt_cache=b.prompt_cache, total=b.total,
    )  # fmt: skip


@router.get("/models/{name}/estimate")
async def estimate(
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
    model = library_of(request).get(name)
    backend = runtime.backend_for(model)
    overrides = {
        "n_ctx": n_ctx, "n_gpu_layers": n_gpu_layers, "parallel": parallel,
        "cache_type_k": cache_type_k, "cache_type_v": cache_type_v, "precision": precision,
        "device": device, "quantization": quantization,
    }  # fmt: skip
    known = backend.options.model_fields
    options = effective(
        model, backend.options, {k: v for k, v in overrides.items() if v is not None and k in known}
    )
    (node,) = (await runtime.executor.nodes())[:1]
    report = await asyncio.to_thread(placement.estimate, backend, model, options, None, node)
    e = report.estimate
    return EstimateOut(
        model=name,
        runtime=backend.name,
        n_ctx=e.n_ctx,
        n_gpu_layers=e.n_gpu_layers,
        ram=_breakdown(e.ram),
        vram=[_breakdown(v) for v in e.vram],
        free_ram=report.free_ram,
        fits=report.fits,
        max_ctx=report.max_ctx,
        free_vram=[g.vram_free for g in node.gpus],
        max_gpu_layers=report.max_gpu_layers,
        rule_of_thumb=report.rule_of_thumb,
    )
