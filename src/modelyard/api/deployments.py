"""Routes of deployments: deploy in one step, list, show, edit (a roll), stop, start, reload,
delete; delete an instance (a new one takes its place)."""

from __future__ import annotations

import logging
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi import Path as ApiPath
from pydantic import BaseModel, ConfigDict, Field

from modelyard.access.folders import Folders
from modelyard.api.downloads import JobOut
from modelyard.api.models import paths_in
from modelyard.api.routing import StrictRoute
from modelyard.api.runtime import DeploymentOut, deployment_out
from modelyard.deployments.deployer import Deployer, DeployRequest
from modelyard.deployments.spec import AutoscaleFields, DeploymentFields, SchedulingChanges
from modelyard.errors import NotFound
from modelyard.gateway.checks import caller_of, library_of, runtime_of
from modelyard.http_errors import ErrorBody
from modelyard.hub.refs import Source

log = logging.getLogger(__name__)
router = APIRouter(
    route_class=StrictRoute,
    prefix="/api",
    tags=["deployments"],
    responses={c: {"model": ErrorBody} for c in (400, 404, 409, 502)},
)


class DeploymentBody(DeploymentFields):
    settings: dict[str, Any] = Field(default_factory=dict, description="saved as the model's settings")
    force: bool = Field(False, description="start even when the estimate says it will not fit")


class DeployIn(DeploymentBody):
    """What to deploy: one of model, path and ref."""

    model: str | None = Field(None, description="a model of the library")
    path: str | None = Field(None, description="a model file or folder on the server's disk")
    ref: str | None = Field(None, description="anything pull takes: org/model:Q4_K_M, ollama:name:tag, ...")
    source: Source | None = None
    quantization: str | None = None
    files: list[str] = Field(default_factory=list, description="file paths or glob patterns")
    all: bool = Field(False, description="every file of the repo")
    name: str | None = Field(None, description="the name an imported or downloaded model gets")


class DeploymentPatch(SchedulingChanges):
    """Fields to change; a running deployment rolls to them."""

    model_config = ConfigDict(extra="forbid")

    replicas: int | None = Field(None, ge=0, le=64)
    autoscale: AutoscaleFields | Literal[False] | None = Field(
        None, description="its replicas follow its requests, between least and most; false: off"
    )
    backend: str | None = None
    backend_version: str | None = Field(None, description="empty: the default build")
    args: list[str] | None = None
    env: dict[str, str] | None = None
    settings: dict[str, Any] | None = Field(
        None, description="merged into the model's settings; null removes"
    )
    restart: bool | None = None
    force: bool = False


class Deployed(BaseModel):
    deployment: DeploymentOut | None = Field(description="the deployment, serving")
    download: JobOut | None = Field(description="the download that deploys once its files are in")


class Replaced(BaseModel):
    removed: int
    instance: int = Field(description="the instance that took its place")


def deployer_of(request: Request) -> Deployer:
    deployer: Deployer = request.app.state.deployer
    return deployer


def _check_paths(request: Request, body: DeploymentBody | DeploymentPatch, path: str | None = None) -> None:
    folders: Folders = request.app.state.folders
    named = paths_in(body.settings or {})
    for p in [*([path] if path else []), *named]:
        folders.check(p)
    if body.env or body.args:
        log.warning(
            "%s sets engine %s",
            request.state.caller.name,
            " and ".join(w for w, on in (("variables", body.env), ("arguments", body.args)) if on),
        )


@router.get("/deployments")
async def deployments(request: Request) -> list[DeploymentOut]:
    runtime = runtime_of(request)
    return [await deployment_out(runtime, d) for d in runtime.deployments()]


@router.post("/deployments", status_code=201, responses={202: {"model": Deployed}})
async def deploy(request: Request, response: Response, body: DeployIn) -> Deployed:
    """Deploy in one step: download what is missing (202 with the download, which deploys when
    done), import it, save the settings, start the deployment and wait until it serves (201)."""
    _check_paths(request, body, body.path)
    fields = body.record_fields(exclude={"force", "all"})
    done = await deployer_of(request).deploy(
        DeployRequest(**fields, everything=body.all), force=body.force, by=caller_of(request).account
    )
    if done.deployment is None:
        response.status_code = 202
        assert done.download is not None
        return Deployed(deployment=None, download=JobOut(**done.download.to_json()))
    return Deployed(deployment=await deployment_out(runtime_of(request), done.deployment), download=None)


class CheckIn(DeploymentBody):
    """A deployment to check: of a model of the library (or a path it holds), with settings
    that are checked and not saved."""

    model: str | None = Field(None, description="a model of the library")
    path: str | None = Field(None, description="a model file or folder the library holds")


class VerdictOut(BaseModel):
    worker: str
    fits: bool = Field(description="whether one instance fits there now, beside what runs")
    way: str | None = Field(description="how it would run there: gpu, gpus, offload, cpu, unestimated")
    kind: str | None = Field(description="why not: gone, drained, selector, backend, files, gpus, memory")
    reason: str | None = Field(description="why not, with the memory it is short by")


class CheckOut(BaseModel):
    model: str
    backend: str = Field(description="the backend that would run it")
    replicas: int
    placed: int = Field(description="how many of its instances would be placed now")
    fits: bool = Field(description="whether all would")
    reason: str | None = Field(description="why the others would not")
    workers: list[VerdictOut]


@router.post("/deployments/check")
async def check(request: Request, body: CheckIn) -> CheckOut:
    """Whether a deployment would run now, and where, without starting or saving anything: the
    deploy's own checks and the scheduler's placement, and for each worker why not."""
    _check_paths(request, body, body.path)
    fields = body.record_fields(exclude={"force"})
    found = await deployer_of(request).check(DeployRequest(**fields))
    return CheckOut(
        model=found.model, backend=found.backend, replicas=found.replicas, placed=found.placed,
        fits=found.placed == found.replicas, reason=found.reason,
        workers=[
            VerdictOut(worker=v.node, fits=not v.kind, way=v.way or None, kind=v.kind or None, reason=v.reason or None)
            for v in found.workers
        ],
    )  # fmt: skip


def _found(request: Request, name: str) -> None:
    library_of(request).get(name)
    if runtime_of(request).deployment(name) is None:
        raise NotFound(f"{name!r} has no deployment", hint=f"`modelyard deploy {name}` makes one")


@router.get("/deployments/{name}")
async def show(request: Request, name: str) -> DeploymentOut:
    _found(request, name)
    runtime = runtime_of(request)
    dep = runtime.deployment(name)
    assert dep is not None
    return await deployment_out(runtime, dep)


@router.patch("/deployments/{name}")
async def edit(request: Request, name: str, body: DeploymentPatch) -> DeploymentOut:
    """Change a deployment. A running one rolls: a new instance serves before an old one stops."""
    _check_paths(request, body)
    changes = body.model_dump(exclude={"settings", "force", "autoscale"}, exclude_none=True)
    if body.backend_version == "":
        changes["backend_version"] = None
    if body.autoscale is not None:
        changes["autoscale"] = body.autoscale.record() if body.autoscale else None
    dep = await deployer_of(request).edit(name, changes, body.settings, force=body.force)
    return await deployment_out(runtime_of(request), dep)


class StopIn(BaseModel):
    force: bool = Field(False, description="stop at once, even with requests in flight")


@router.post("/deployments/{name}/stop")
async def stop(request: Request, name: str, body: StopIn | None = None) -> DeploymentOut:
    """Stop its instances and keep the deployment."""
    runtime = runtime_of(request)
    dep = await runtime.stop(name, force=bool(body and body.force))
    return await deployment_out(runtime, dep)


@router.post("/deployments/{name}/start")
async def start(request: Request, name: str) -> DeploymentOut:
    runtime = runtime_of(request)
    return await deployment_out(runtime, await runtime.start_deployment(name))


@router.post("/deployments/{name}/reload")
async def reload(request: Request, name: str) -> DeploymentOut:
    """Roll it, so that its engines start again with the model's settings."""
    runtime = runtime_of(request)
    return await deployment_out(runtime, await runtime.reload(name))


@router.delete("/deployments/{name}", status_code=204)
async def delete(request: Request, name: str, body: StopIn | None = None) -> None:
    """Stop it (its requests finish first unless forced) and forget it."""
    await runtime_of(request).unload(name, force=bool(body and body.force))


@router.delete("/instances/{instance_id}")
async def delete_instance(request: Request, instance_id: int = ApiPath(ge=1, le=(1 << 63) - 1)) -> Replaced:
    """Delete an instance: a new one takes its place, and serves before the old one stops."""
    new = await runtime_of(request).recreate(instance_id)
    return Replaced(removed=instance_id, instance=new)
