"""/v1/files and /v1/batches: OpenAI's Files and Batches APIs. A batch's requests go through
the same handlers as a client's (its one request path: admission, upstream, usage, quotas),
made for the key that created the batch, at low priority (batches/jobs.py runs them)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.types import Message

from modelyard.access.keys import Caller, Keys
from modelyard.batches.files import Files, file_object
from modelyard.batches.jobs import WINDOW, Batches, Send
from modelyard.errors import InvalidRequest, ModelyardError
from modelyard.gateway import responses
from modelyard.gateway.checks import caller_of, state_of
from modelyard.gateway.routes import HANDLERS
from modelyard.http_errors import OPENAI

router = APIRouter(prefix="/v1", tags=["openai"])
Handler = Callable[[Request], Awaitable[Response]]
HANDLED: dict[str, Handler] = {
    "/v1/chat/completions": HANDLERS["/v1/chat/completions"],
    "/v1/completions": HANDLERS["/v1/completions"],
    "/v1/embeddings": HANDLERS["/v1/embeddings"],
    "/v1/responses": responses.create,
}


def sender(app: FastAPI, keys: Keys) -> Send:
    """How a batch sends a request: to the endpoint's handler, as the key that made the batch,
    at low priority; its answer whole."""

    async def send(account: str | None, endpoint: str, body: bytes) -> tuple[int, bytes]:
        try:
            caller = keys.acting_for(account)
            response = await HANDLED[endpoint](_request(app, endpoint, body, caller))
        except ModelyardError as e:
            response = OPENAI.answer(e)
        return response.status_code, bytes(response.body)

    return send


def _request(app: FastAPI, path: str, body: bytes, caller: Caller) -> Request:
    """A request of ``body`` to ``path`` from ``caller``, made here: its client never leaves."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "client": None,
        "server": None, "app": app, "state": {"caller": caller},
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    given = False

    async def receive() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # no disconnect ever comes
        raise AssertionError

    return Request(scope, receive)


def files_of(request: Request) -> Files:
    files: Files = state_of(request).files
    return files


def batches_of(request: Request) -> Batches:
    batches: Batches = state_of(request).batches
    return batches


def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """A page of ``items`` (in their order) after the one whose id is ``after``."""
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidRequest(f"no {after!r} in this list", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}  # fmt: skip


@router.post("/files")
async def upload(request: Request) -> dict[str, Any]:
    """Upload a file (multipart: ``file``, and ``purpose`` batch): a batch's JSONL input, of
    MODELYARD_MAX_FILE bytes at most."""
    form = await request.form()
    try:
        given, purpose = form.get("file"), form.get("purpose")
        if not isinstance(given, UploadFile):
            raise InvalidRequest("send the file as the form's `file` field", param="file")
        if not isinstance(purpose, str):
            raise InvalidRequest(
                "say what the file is for in the form's `purpose` field: batch", param="purpose"
            )
        name = (given.filename or "upload.jsonl").rsplit("/", 1)[-1][:255]
        stored = await files_of(request).upload(caller_of(request).account, name, purpose, given.file)
    finally:
        await form.close()
    return file_object(stored)


@router.get("/files")
async def list_files(
    request: Request,
    purpose: str | None = None,
    order: Literal["asc", "desc"] = "desc",
    limit: int = Query(default=10_000, ge=1, le=10_000),
    after: str | None = None,
) -> dict[str, Any]:
    found = [file_object(f) for f in await files_of(request).listing(caller_of(request).account, purpose)]
    return _page(found if order == "desc" else found[::-1], after, limit)


@router.get("/files/{fid}")
async def retrieve_file(request: Request, fid: str) -> dict[str, Any]:
    return file_object(await files_of(request).get(fid, caller_of(request).account))


@router.get("/files/{fid}/content", response_class=FileResponse)
async def file_content(request: Request, fid: str) -> FileResponse:
    files = files_of(request)
    stored = await files.get(fid, caller_of(request).account)
    return FileResponse(files.path(stored.id), media_type="application/jsonl", filename=stored.filename)


@router.delete("/files/{fid}")
async def delete_file(request: Request, fid: str) -> dict[str, Any]:
    files = files_of(request)
    account = caller_of(request).account
    await files.get(fid, account)
    await batches_of(request).check_unused(fid)
    await files.delete(fid, account)
    return {"id": fid, "object": "file", "deleted": True}


class OutputExpiry(BaseModel):
    anchor: Literal["created_at"]
    seconds: int = Field(ge=3600, le=2_592_000)


class BatchRequest(BaseModel):
    """A new batch: the requests of an uploaded JSONL file, each {custom_id, method: POST, url:
    the endpoint, body}."""

    input_file_id: str
    endpoint: str
    completion_window: str = WINDOW
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    output_expires_after: OutputExpiry | None = None


@router.post("/batches")
async def create_batch(request: Request, body: BatchRequest) -> dict[str, Any]:
    """Run a file's requests (/v1/chat/completions, /v1/completions, /v1/embeddings or
    /v1/responses) at low priority; the answers go to its output file, the failures to its
    error file."""
    expiry = body.output_expires_after.seconds if body.output_expires_after else None
    return await batches_of(request).create(
        caller_of(request).account,
        body.input_file_id,
        body.endpoint,
        body.completion_window,
        body.metadata,
        expiry,
    )


@router.get("/batches")
async def list_batches(
    request: Request, limit: int = Query(default=20, ge=1, le=100), after: str | None = None
) -> dict[str, Any]:
    found = await batches_of(request).listing(caller_of(request).account)
    return _page([batch for _, batch in found], after, limit)


@router.get("/batches/{bid}")
async def retrieve_batch(request: Request, bid: str) -> dict[str, Any]:
    return await batches_of(request).get(bid, caller_of(request).account)


@router.post("/batches/{bid}/cancel")
async def cancel_batch(request: Request, bid: str) -> dict[str, Any]:
    """Stop a batch; what it answered stays in its output file."""
    return await batches_of(request).cancel(bid, caller_of(request).account)
