"""/v1/files and /v1/batches: OpenAI's Files and Batches APIs. A batch's requests go through
the same handlers as a client's (its one request path: admission, upstream, usage, quotas),
made for the key that created the batch, at low priority (batches/jobs.py runs them)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import orjson
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
from modelyard.gateway.pages import page
from modelyard.gateway.routes import HANDLERS
from modelyard.http_errors import OPENAI
from modelyard.runtime.queue import Yielding

router = APIRouter(prefix="/v1", tags=["openai"])
Handler = Callable[[Request], Awaitable[Response]]
HANDLED: dict[str, Handler] = {
    "/v1/chat/completions": HANDLERS["/v1/chat/completions"],
    "/v1/completions": HANDLERS["/v1/completions"],
    "/v1/embeddings": HANDLERS["/v1/embeddings"],
    "/v1/responses": responses.create,
}


STREAMED = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
)  # preemptible: the engine stops at once


def sender(app: FastAPI, keys: Keys) -> Send:
    """How a batch sends a request: to the endpoint's handler, as the key that made the batch,
    at low priority; its answer whole. A generation is asked for as a stream (and answered
    whole), so that an interactive request that preempts it stops it at once; it is sent
    again once the interactive requests are served."""

    async def send(account: str | None, endpoint: str, body: bytes) -> tuple[int, bytes]:
        while True:
            low = Yielding(preemptible=endpoint in STREAMED)
            try:
                caller = keys.acting_for(account, low)
            except ModelyardError as e:
                return _refusal(e)
            answer = asyncio.create_task(_answer(app, endpoint, body, caller))
            preempted = asyncio.create_task(low.preempted.wait())
            try:
                await asyncio.wait({answer, preempted}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (answer, preempted):
                    if not task.done():
                        task.cancel()
                await asyncio.gather(answer, preempted, return_exceptions=True)
            if not answer.cancelled():
                return answer.result()

    return send


async def _answer(app: FastAPI, endpoint: str, body: bytes, caller: Caller) -> tuple[int, bytes]:
    streamed = endpoint in STREAMED
    if streamed:
        payload = orjson.loads(body)
        payload["stream"] = True
        if endpoint != "/v1/responses":
            payload["stream_options"] = {"include_usage": True}
        body = orjson.dumps(payload)
    request = _request(app, endpoint, body, caller)
    try:
        response = await HANDLED[endpoint](request)
    except ModelyardError as e:
        return _refusal(e)
    status = 500
    pieces: list[bytes] = []

    async def send(message: Message) -> None:  # the answer as a client would read it
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            pieces.append(message.get("body", b""))

    await response(request.scope, request.receive, send)
    raw = b"".join(pieces)
    if not streamed or status != 200:
        return status, raw
    return whole(endpoint, sse_events(raw))


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


def _refusal(e: ModelyardError) -> tuple[int, bytes]:
    response = OPENAI.answer(e)
    return response.status_code, bytes(response.body)


def sse_events(chunk: bytes) -> list[dict[str, Any]]:
    """The JSON events of a server-sent stream."""
    found = []
    for line in chunk.splitlines():
        if line.startswith(b"data:") and (data := line[5:].strip()) and data != b"[DONE]":
            found.append(orjson.loads(data))
    return found


def whole(endpoint: str, events: list[dict[str, Any]]) -> tuple[int, bytes]:
    """A streamed answer as the endpoint answers it whole: the status, the body."""
    failed = next((e for e in events if "error" in e and e.get("type") != "response.failed"), None)
    if failed is not None:
        return 500, orjson.dumps({"error": failed["error"]})
    if endpoint == "/v1/responses":
        last = events[-1] if events else {}
        response = last.get("response") or {}
        if last.get("type") == "response.failed" or not response:
            return 500, orjson.dumps({"error": response.get("error") or {"message": "the response failed"}})
        return 200, orjson.dumps(response)
    chat = endpoint == "/v1/chat/completions"
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for event in events:
        usage = event.get("usage") or usage
        for delta in event.get("choices") or []:
            i = delta.get("index", 0)
            choice = choices.setdefault(i, _choice(i, chat))
            if delta.get("finish_reason"):
                choice["finish_reason"] = delta["finish_reason"]
            if delta.get("logprobs"):
                logprobs = choice["logprobs"] = choice["logprobs"] or {}
                for key, value in delta["logprobs"].items():
                    logprobs[key] = (logprobs.get(key) or []) + value if isinstance(value, list) else value
            if chat:
                _add_delta(choice["message"], delta.get("delta") or {})
            else:
                choice["text"] += delta.get("text") or ""
    first = events[0] if events else {}
    answer = {
        "id": first.get("id"), "object": "chat.completion" if chat else "text_completion",
        "created": first.get("created"), "model": first.get("model"),
        "choices": [choices[i] for i in sorted(choices)], "usage": usage,
    }  # fmt: skip
    if first.get("system_fingerprint"):
        answer["system_fingerprint"] = first["system_fingerprint"]
    return 200, orjson.dumps(answer)


def _choice(i: int, chat: bool) -> dict[str, Any]:
    if chat:
        return {
            "index": i,
            "message": {"role": "assistant", "content": None},
            "finish_reason": None,
            "logprobs": None,
        }
    return {"index": i, "text": "", "finish_reason": None, "logprobs": None}


def _add_delta(message: dict[str, Any], delta: dict[str, Any]) -> None:
    """A chat chunk's delta added to the message it builds: text, reasoning, tool calls."""
    for key in ("content", "reasoning_content"):
        if delta.get(key):
            message[key] = (message.get(key) or "") + delta[key]
    for call in delta.get("tool_calls") or []:
        calls = message.setdefault("tool_calls", [])
        while len(calls) <= call.get("index", 0):
            calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        made = calls[call.get("index", 0)]
        made["id"] = call.get("id") or made["id"]
        function = call.get("function") or {}
        made["function"]["name"] += function.get("name") or ""
        made["function"]["arguments"] += function.get("arguments") or ""


def files_of(request: Request) -> Files:
    files: Files = state_of(request).files
    return files


def batches_of(request: Request) -> Batches:
    batches: Batches = state_of(request).batches
    return batches


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
    return page(found if order == "desc" else found[::-1], after, limit)


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
    return page([batch for _, batch in found], after, limit)


@router.get("/batches/{bid}")
async def retrieve_batch(request: Request, bid: str) -> dict[str, Any]:
    return await batches_of(request).get(bid, caller_of(request).account)


@router.post("/batches/{bid}/cancel")
async def cancel_batch(request: Request, bid: str) -> dict[str, Any]:
    """Stop a batch; what it answered stays in its output file."""
    return await batches_of(request).cancel(bid, caller_of(request).account)
