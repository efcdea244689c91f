"""Routes of declarative specs: apply one (or see what it would change), export the library as
one, and the JSON Schema of the format."""

from __future__ import annotations

import os
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from modelyard.access.folders import Folders
from modelyard.api.models import paths_in
from modelyard.api.routing import StrictRoute
from modelyard.deployments.apply import Applier
from modelyard.deployments.spec import Spec, json_schema, resolved, source_of
from modelyard.http_errors import ErrorBody

router = APIRouter(
    route_class=StrictRoute,
    prefix="/api",
    tags=["specs"],
    responses={c: {"model": ErrorBody} for c in (400, 404, 409, 502)},
)


class ApplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: Spec = Field(description="the spec, with absolute paths and ${env.NAME} filled in")
    dry_run: bool = Field(False, description="only say what would change")


class OutcomeOut(BaseModel):
    name: str
    kind: Literal["model", "route"]
    action: str = Field(description="created, updated, unchanged, would create, would change")
    changes: list[str] = Field(description="one line per difference: field: before -> after")


def applier_of(request: Request) -> Applier:
    applier: Applier = request.app.state.applier
    return applier


def check_paths(request: Request, spec: Spec) -> None:
    folders: Folders = request.app.state.folders
    for m in spec.models:
        for where in [m.model, *(a.model for a in [*(m.peft_adapters or []), *(m.adapters or [])])]:
            source = source_of(where) if where is not None else None
            for path in (source.path, source.cache_dir) if source is not None else ():
                if path is not None:
                    folders.check(os.path.expanduser(path))
        for path in paths_in(m.settings or {}):
            folders.check(path)


@router.post("/specs/apply")
async def apply(request: Request, body: ApplyIn) -> list[OutcomeOut]:
    """Make the library and the deployments what the spec says; hub models are pulled first."""
    spec = resolved(body.spec, None)
    check_paths(request, spec)
    outcomes = await applier_of(request).apply(spec, dry_run=body.dry_run)
    return [OutcomeOut(name=o.name, kind=o.kind, action=o.action, changes=o.changes) for o in outcomes]


@router.get("/specs/export")
async def export(request: Request) -> Spec:
    """The library, its deployments and the routes as a spec."""
    return applier_of(request).export()


@router.get("/schema/spec")
async def schema() -> dict[str, Any]:
    """The JSON Schema of the spec format, for editor completion."""
    return json_schema()
