"""Routes of the backends: what is installed, and installs with their progress (streamed)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from modelyard.api.routing import StrictRoute
from modelyard.api.sse import event_stream
from modelyard.backends import environments
from modelyard.backends.installs import Install, Installs
from modelyard.errors import ModelyardError
from modelyard.gateway.checks import runtime_of
from modelyard.http_errors import ErrorBody
from modelyard.monitor.gpus import vulkan_drivers

router = APIRouter(
    route_class=StrictRoute,
    prefix="/api",
    tags=["backends"],
    responses={c: {"model": ErrorBody} for c in (400, 401, 403, 404, 409)},
)
JobId = Annotated[int, Path(ge=1, le=(1 << 63) - 1, description="an install's id")]


def installs_of(request: Request) -> Installs:
    installs: Installs = request.app.state.installs
    return installs


class EnvironmentOut(BaseModel):
    variant: str
    folder: str


class BackendOut(BaseModel):
    name: str
    installed: bool
    engine: str = Field(description="what runs its engines, or what installs it")
    versions: list[str] = Field(description="builds installed beside the default one")
    environments: list[EnvironmentOut] = Field(description="its managed Python environments")
    installable: bool = Field(description="modelyard can install it (POST .../install)")
    variants: list[str] = Field(
        description="what this machine can use: cpu, cuda with an NVIDIA GPU, vulkan with a GPU's driver"
    )


class InstallIn(BaseModel):
    variant: str | None = Field(
        default=None,
        description="one of the backend's variants (cpu, cuda; vulkan for llama.cpp); default: cuda "
        "with an NVIDIA GPU, else cpu",
    )
    version: str | None = Field(
        default=None, description="llama.cpp: a llama-cpp-python release, built beside"
    )


class InstallOut(BaseModel):
    id: int
    backend: str
    variant: str
    version: str | None
    state: Literal["running", "done", "failed"]
    stage: str
    step: float
    steps: float
    started: float
    finished: float | None
    where: str | None = Field(description="what was installed")
    error: str | None
    hint: str | None

    @classmethod
    def of(cls, job: Install) -> InstallOut:
        return cls.model_validate(job.to_json())


def _variants(installs: tuple[str, ...]) -> list[str]:
    """The builds this machine can use: cpu; cuda with an NVIDIA GPU; vulkan with a GPU's driver."""
    usable = {"cpu", *(["cuda"] if environments.default_variant() == "cuda" else [])}
    if vulkan_drivers():
        usable.add("vulkan")
    return [v for v in installs if v in usable]


@router.get("/backends")
async def backends(request: Request) -> list[BackendOut]:
    """The backends, whether their engine is installed, their versions side by side and
    environments, and whether modelyard installs them."""
    runtime = runtime_of(request)
    out = []
    for backend in runtime.backends:
        try:
            engine, installed = backend.preflight(), True
        except ModelyardError as e:
            engine, installed = e.hint or e.message, False
        envs = environments.installed(runtime.settings.envs_dir, backend.name)
        out.append(
            BackendOut(
                name=backend.name,
                installed=installed,
                engine=engine,
                versions=backend.versions(),
                environments=[EnvironmentOut(variant=v, folder=str(f)) for v, f in envs],
                installable=getattr(backend, "installable", True),
                variants=_variants(runtime.backends.variants(backend)),
            )
        )
    return out


@router.post("/backends/{name}/install", status_code=202)
async def install(name: str, body: InstallIn, request: Request) -> InstallOut:
    """Install a backend's engine or environment in the background: follow it with
    `GET /api/installs/{id}/events`."""
    variant = body.variant or environments.default_variant()
    return InstallOut.of(await installs_of(request).start(name, variant, body.version))


@router.get("/installs")
async def installs(request: Request) -> list[InstallOut]:
    return [InstallOut.of(j) for j in installs_of(request).all()]


@router.get("/installs/{job}")
async def install_job(job: JobId, request: Request) -> InstallOut:
    return InstallOut.of(installs_of(request).get(job))


@router.get("/installs/{job}/events", response_class=StreamingResponse)
async def install_events(job: JobId, request: Request) -> StreamingResponse:
    """Server-sent events: the install now, then each change, until it ends."""
    installs = installs_of(request)
    installs.get(job)  # 404 before the stream starts
    return event_stream(installs.events(job))
