"""Running a model-compose component (compose/): its model applied to the library as a spec
would apply it, loaded on demand, asked once through the gateway with the run's input, its
answer mapped to the component's output."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.api.routing import StrictRoute
from modelyard.api.specs import applier_of, check_paths
from modelyard.compose.component import ModelComponent
from modelyard.deployments.spec import Spec, ref_of, source_of
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

    component: ModelComponent = Field(description="a component of type model, its paths absolute")
    input: dict[str, Any] = Field(default_factory=dict, description="what ${input.NAME} reads")


class RunOut(BaseModel):
    model: str = Field(description="the library model it ran on")
    output: Any = Field(description="the component's output (its whole result when it maps none)")


@router.post("/compose/run")
async def run(request: Request, body: RunIn) -> RunOut:
    """Apply the component's model (import or pull it, its settings and adapters), then run the
    component once with ``input``."""
    component = body.component
    endpoint = component.endpoint()
    name = _library_name(request, component)
    spec = Spec(models=[component.spec(name)])
    check_paths(request, spec)
    await applier_of(request).apply(spec)
    ticket = admit(request, name, endpoint, load=True)
    call = component.call(body.input, ticket.served, ticket.backend.name)
    async with engine_call(request, ticket, call.endpoint, call.path, call.body) as up:
        answer = await up.json()
    return RunOut(model=name, output=component.output_of(component.result(answer), body.input))


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
