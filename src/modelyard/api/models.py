"""Routes of the model library: /api/models, /api/inspect, /api/scan."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from modelyard.access.folders import Folders
from modelyard.api.routing import StrictRoute
from modelyard.api.schemas import (
    AdapterCheckOut,
    AdapterIn,
    AdapterPathIn,
    ImportIn,
    InspectionOut,
    ModelOut,
    ModelPatch,
    PathEntryOut,
    PathIn,
    ScanOut,
    SettingsIn,
    SettingsOut,
    Skipped,
    TemplateOut,
)
from modelyard.backends.external import probe
from modelyard.catalog.records import Model
from modelyard.categories import DEFAULT_CAPABILITIES, TEMPLATE_COMPONENTS, Template
from modelyard.errors import InvalidInput, PathNotFound
from modelyard.formats.detect import inspect_path
from modelyard.formats.files import usable_path
from modelyard.gateway.checks import library_of, runtime_of
from modelyard.http_errors import ErrorBody
from modelyard.library import ImportRequest, Library
from modelyard.library.lora import adapter_format
from modelyard.library.naming import default_name
from modelyard.library.paths import complete
from modelyard.library.requests import RemoteRequest

log = logging.getLogger(__name__)
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422)
}
router = APIRouter(route_class=StrictRoute, prefix="/api", responses=ERRORS)


def folders(request: Request) -> Folders:
    found: Folders = request.app.state.folders
    return found


Lib = Annotated[Library, Depends(library_of)]
Dirs = Annotated[Folders, Depends(folders)]
# Options that name files: a remote caller could point them anywhere.
PATH_OPTIONS = ("path", "config")


def paths_in(options: Any) -> list[str]:
    """The file paths an options object names, at any depth (peft_adapters[].path, config, ...)."""
    if isinstance(options, dict):
        found = [v for k, v in options.items() if k in PATH_OPTIONS and isinstance(v, str)]
        return found + [p for v in options.values() for p in paths_in(v)]
    if isinstance(options, list):
        return [p for v in options for p in paths_in(v)]
    return []


def out(lib: Library, model: Model) -> ModelOut:
    return ModelOut.of(model, loaded=lib.is_loaded(model.name))


@router.get("/models", tags=["models"])
def list_models(
    lib: Lib, category: str | None = Query(None, description="only this category")
) -> list[ModelOut]:
    return [out(lib, m) for m in lib.models(category)]


@router.post("/models", status_code=201, tags=["models"])
async def import_model(request: Request, lib: Lib, dirs: Dirs, body: ImportIn) -> ModelOut:
    """Import a model file or folder from the server's disk (the files stay where they are; on a
    cluster, a path only workers hold is inspected on one of them), or register a model of a
    server that already runs (``url``)."""
    if body.url is not None:
        url = body.url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"{body.url!r} is not an http(s) URL")
        api, served = await asyncio.to_thread(probe, url, body.api_key)
        remote = RemoteRequest(
            url=url, api=api, served=served, remote_model=body.remote_model or served[0], name=body.name,
            description=body.description, category=body.category, api_key=body.api_key,
        )  # fmt: skip
        return out(lib, await asyncio.to_thread(lib.add_remote, remote))
    assert body.path is not None
    for path in (body.path, *body.components.values()):
        dirs.check(path)
    wanted = ImportRequest(**body.model_dump(exclude={"url", "api_key", "remote_model"}))
    try:
        return out(lib, await asyncio.to_thread(lib.import_model, wanted))
    except PathNotFound:
        found = await runtime_of(request).executor.inspect(os.path.abspath(body.path))
        if found is None:  # no worker holds it either
            raise
    worker, inspection = found
    log.info("%s: inspected on worker %s, the only place it is", body.path, worker)
    return out(lib, await asyncio.to_thread(lib.import_found, inspection, wanted, worker))


@router.get("/models/{name}", tags=["models"])
def show_model(lib: Lib, name: str) -> ModelOut:
    return out(lib, lib.get(name))


@router.patch("/models/{name}", tags=["models"])
def edit_model(lib: Lib, name: str, body: ModelPatch) -> ModelOut:
    return out(
        lib,
        lib.update(
            name,
            new_name=body.name,
            description=body.description,
            category=body.category,
            capabilities=body.capabilities,
            autoload=body.autoload,
            aliases=body.aliases,
        ),
    )


@router.delete("/models/{name}", status_code=204, tags=["models"])
def delete_model(lib: Lib, name: str) -> Response:
    """Delete the record with its adapters and components. Files are never deleted."""
    lib.delete(name)
    return Response(status_code=204)


@router.get("/models/{name}/settings", tags=["settings"])
def get_settings(lib: Lib, name: str) -> SettingsOut:
    backend, saved, effective = lib.settings(name)
    return SettingsOut(backend=backend, saved=saved, effective=effective.model_dump())


@router.put("/models/{name}/settings", tags=["settings"])
def put_settings(request: Request, lib: Lib, dirs: Dirs, name: str, body: SettingsIn) -> SettingsOut:
    """Save options (merged into the saved ones unless replace); null removes an option."""
    named = paths_in(body.options)
    draft = body.options.get("draft_model")
    if isinstance(draft, str) and draft and not lib.has(draft):  # a file, not a library model
        named.append(draft)
    for path in named:
        dirs.check(path)
    lib.put_settings(name, body.options, merge=not body.replace, backend=body.backend)
    privileged = ["trust_remote_code"] if body.options.get("trust_remote_code") else []
    privileged += [f"the path {p}" for p in named]
    if privileged:  # who lets a model run its own code, or read files: on the record
        log.warning("%s set %s on %r", request.state.caller.name, ", ".join(privileged), name)
    return get_settings(lib, name)


@router.post("/models/{name}/adapters/check", tags=["adapters"])
def check_adapter(lib: Lib, dirs: Dirs, name: str, body: AdapterPathIn) -> AdapterCheckOut:
    """Whether the LoRA at a path fits the model, and the name it would get, importing nothing."""
    dirs.check(body.path)
    insp, reason = lib.adapter_fit(name, body.path)
    return AdapterCheckOut(
        fits=reason is None,
        reason=reason,
        name=default_name(insp.path),
        format=adapter_format(insp),
        size=insp.size,
    )


@router.post("/models/{name}/adapters", status_code=201, tags=["adapters"])
def add_adapter(lib: Lib, dirs: Dirs, name: str, body: AdapterIn) -> ModelOut:
    dirs.check(body.path)
    return out(lib, lib.add_adapter(name, body.path, body.name, body.description))


@router.delete("/models/{name}/adapters/{adapter}", tags=["adapters"])
def remove_adapter(lib: Lib, name: str, adapter: str) -> ModelOut:
    return out(lib, lib.remove_adapter(name, adapter))


@router.put("/models/{name}/components/{role}", tags=["components"])
def set_component(lib: Lib, dirs: Dirs, name: str, role: str, body: PathIn) -> ModelOut:
    dirs.check(body.path)
    return out(lib, lib.set_component(name, role, body.path))


@router.delete("/models/{name}/components/{role}", tags=["components"])
def remove_component(lib: Lib, name: str, role: str) -> ModelOut:
    return out(lib, lib.remove_component(name, role))


@router.get("/templates", tags=["library"])
def templates() -> list[TemplateOut]:
    """The image model templates, with the components each takes and its default capabilities."""
    return [
        TemplateOut(
            name=t, components=list(TEMPLATE_COMPONENTS[t]), capabilities=list(DEFAULT_CAPABILITIES[t])
        )
        for t in Template
    ]


@router.post("/inspect", tags=["library"])
def inspect(dirs: Dirs, body: PathIn) -> InspectionOut:
    """What a file or folder is, without importing it."""
    dirs.check(body.path)
    return InspectionOut.of(inspect_path(body.path))


@router.get("/paths", tags=["library"])
def paths(
    dirs: Dirs,
    prefix: str = Query("/", description="a path typed so far; a trailing / lists the folder"),
) -> list[PathEntryOut]:
    """How a path typed so far may go on, on the server's disk: folders first. A server limited
    to some folders offers those, and what lies in them."""
    if dirs.limited():
        allowed = [str(root) for root in dirs.allowed()]
        # the folder listed, as it resolves (.. and links followed), not the text typed
        folder = prefix if prefix.endswith("/") else os.path.dirname(prefix) or "/"
        real = os.path.realpath(usable_path(folder))
        outside = not any(real == root or real.startswith(root.rstrip("/") + "/") for root in allowed)
        if outside:
            return [
                PathEntryOut(path=root, name=root, folder=True, size=None, model=False)
                for root in sorted(set(allowed))
                if root.startswith(prefix)
            ]
    return [PathEntryOut.model_validate(e, from_attributes=True) for e in complete(prefix)]


@router.post("/scan", tags=["library"])
def scan(lib: Lib, dirs: Dirs, body: PathIn) -> ScanOut:
    """Import every recognisable model under a folder; running it again changes nothing."""
    dirs.check(body.path)
    report = lib.scan(body.path)
    return ScanOut(
        imported=report.imported,
        unchanged=report.unchanged,
        skipped=[Skipped(path=p, reason=r) for p, r in report.skipped],
        failed=[Skipped(path=p, reason=r) for p, r in report.failed],
    )
