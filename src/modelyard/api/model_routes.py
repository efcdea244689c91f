"""Routes of the model routes (runtime/routes.py): list, show, create, change, delete; each with
what its targets did since the server started."""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.api.routing import StrictRoute
from modelyard.catalog.records import Route, Target
from modelyard.http_errors import ErrorBody
from modelyard.runtime.routes import OUTCOMES, Counted, Routes
from modelyard.runtime.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(
    route_class=StrictRoute,
    prefix="/api/routes",
    tags=["routes"],
    responses={c: {"model": ErrorBody} for c in (400, 401, 403, 404, 409)},
)


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="a library model (a server elsewhere: import it with its URL and key)")
    weight: int = Field(1, ge=0, le=1000, description="its share of the requests; 0: a fallback only")


class RouteEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: list[TargetIn] = Field(description="tried in this order after the one picked by weight")
    description: str = ""


class RouteIn(RouteEdit):
    name: str = Field(description="what clients ask for, as a model")


class TargetOut(BaseModel):
    model: str
    weight: int
    loaded: bool
    requests: dict[str, int] = Field(
        description="since the server started: served, or passed over (overloaded, unavailable, failed)"
    )


class RouteOut(BaseModel):
    name: str
    description: str
    targets: list[TargetOut]
    created_at: datetime | None


def routes_of(request: Request) -> Routes:
    routes: Routes = request.app.state.routes
    return routes


def _out(request: Request, route: Route) -> RouteOut:
    runtime: Runtime = request.app.state.runtime
    counts = routes_of(request).counts
    targets = [
        TargetOut(
            model=t.model,
            weight=t.weight,
            loaded=runtime.is_loaded(t.model),
            requests={o: n for o in OUTCOMES if (n := counts[Counted(route.name, t.model, o)])},
        )
        for t in route.targets
    ]
    return RouteOut(
        name=route.name, description=route.description, targets=targets, created_at=route.created_at
    )


def _targets(body: RouteEdit) -> list[Target]:
    return [Target(t.model, t.weight) for t in body.targets]


@router.get("")
def list_routes(request: Request) -> list[RouteOut]:
    return [_out(request, r) for r in routes_of(request).all()]


@router.get("/{name}")
def show_route(request: Request, name: str) -> RouteOut:
    return _out(request, routes_of(request).get(name))


@router.post("", status_code=201)
def create_route(request: Request, body: RouteIn) -> RouteOut:
    route = routes_of(request).put(body.name, _targets(body), body.description, new=True)
    log.warning("%s created the route %r", request.state.caller.name, route.name)
    return _out(request, route)


@router.put("/{name}")
def edit_route(request: Request, name: str, body: RouteEdit) -> RouteOut:
    """Replace a route's targets (and description)."""
    route = routes_of(request).put(name, _targets(body), body.description, new=False)
    log.warning("%s changed the route %r", request.state.caller.name, name)
    return _out(request, route)


@router.delete("/{name}", status_code=204)
def delete_route(request: Request, name: str) -> None:
    routes_of(request).delete(name)
    log.warning("%s deleted the route %r", request.state.caller.name, name)
