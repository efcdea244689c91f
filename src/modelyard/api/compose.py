"""Running a model-compose file (compose/): a component, or a workflow of jobs over its
components. A model component's model is applied to the library as a spec would apply it,
loaded on demand and asked once through the gateway with the job's input, its answer mapped to
the component's output; a vector store's action runs on its embedded index; an http-client's
request goes to its server."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.api.routing import StrictRoute
from modelyard.api.specs import applier_of, check_paths
from modelyard.compose import workflows
from modelyard.compose.component import ModelComponent
from modelyard.compose.files import AnyComponent, ComposeFile
from modelyard.compose.http import HttpClientComponent
from modelyard.compose.vectors import VectorStoreComponent, VectorStores
from modelyard.deployments.spec import Spec, ref_of, source_of
from modelyard.errors import EngineError
from modelyard.gateway.calls import admit, engine_call
from modelyard.gateway.checks import library_of
from modelyard.http_errors import ErrorBody
from modelyard.hub.refs import parse_ref

router = APIRouter(
    route_class=StrictRoute,
    prefix="/api",
    tags=["compose"],
    responses={c: {"model": ErrorBody} for c in (400, 404, 409, 502)},
)


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: ComposeFile = Field(description="the file, its paths absolute and ${env.NAME} filled in")
    component: str | None = Field(
        None, description="run this component (default: the workflow, else the one component)"
    )
    workflow: str | None = Field(None, description="which of the file's workflows")
    input: dict[str, Any] = Field(default_factory=dict, description="what ${input.NAME} reads")


class RunOut(BaseModel):
    output: Any = Field(description="the component's or the workflow's last job's output")
    models: list[str] = Field(description="the library models it ran on")


@router.post("/compose/run")
async def run(request: Request, body: RunIn) -> RunOut:
    """Run the file's workflow (or the component asked for) once with ``input``."""
    file = body.file
    flow = None if body.component is not None else file.chosen_workflow(body.workflow)
    runner = Runner(request, file)
    if flow is None:
        output = await runner.component(file.chosen(body.component), None, body.input)
    else:
        output = await workflows.run(flow, body.input, runner.job)
    return RunOut(output=output, models=list(runner.applied.values()))


class Runner:
    """The components of one run, their models applied once each."""

    def __init__(self, request: Request, file: ComposeFile) -> None:
        self.request = request
        self.file = file
        self.applied: dict[int, str] = {}  # component (by identity) -> its library name

    async def job(self, name: str, action: str | None, given: dict[str, Any]) -> Any:
        return await self.component(self.file.by_id(name), action, given)

    async def component(self, component: AnyComponent, action: str | None, given: dict[str, Any]) -> Any:
        if isinstance(component, VectorStoreComponent):
            stores: VectorStores = self.request.app.state.vector_stores
            return await asyncio.to_thread(stores.run, component, action, given)
        if isinstance(component, HttpClientComponent):
            return component.output_of(await _fetched(component, given), given)
        endpoint = component.endpoint()
        name = await self._applied(component)
        ticket = admit(self.request, name, endpoint, load=True)
        call = component.call(given, ticket.served, ticket.backend.name)
        async with engine_call(self.request, ticket, call.endpoint, call.path, call.body) as up:
            answer = await up.json()
        return component.output_of(component.result(answer), given)

    async def _applied(self, component: ModelComponent) -> str:
        if id(component) not in self.applied:
            name = _library_name(self.request, component)
            spec = Spec(models=[component.spec(name)])
            check_paths(self.request, spec)
            await applier_of(self.request).apply(spec)
            self.applied[id(component)] = name
        return self.applied[id(component)]


async def _fetched(component: HttpClientComponent, given: dict[str, Any]) -> Any:
    """The http-client component's request made, its answer read (see compose/http.py)."""
    asked = component.request(given)
    body = {"json": asked.body} if asked.body is not None else {}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=10)) as session,
            session.request(asked.method, asked.url, headers=asked.headers, params=asked.params, **body) as r,
        ):
            raw = await r.read()
    except (aiohttp.ClientError, OSError) as e:
        raise EngineError(f"{asked.url} could not be reached: {e.__class__.__name__}") from None
    return component.response(r.status, r.headers.get("Content-Type", ""), raw)


def _library_name(request: Request, component: ModelComponent) -> str:
    """The library's name for the component's model: the entry that holds its file or came
    from its repo, else the component's own name for it."""
    library = library_of(request)
    source = source_of(component.model)
    if source.path is not None and (found := library.store.find_by_path(source.path)) is not None:
        return found.name
    if source.repository is not None and source.provider != "server":
        repo = parse_ref(ref_of(component.model)).repo
        for model in library.store.list_models():
            if model.source_repo == repo:
                return model.name
    return component.name()
