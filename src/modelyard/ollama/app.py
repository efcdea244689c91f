"""The Ollama-compatible listener: /api/tags, /api/show, /api/ps, /api/chat, /api/generate,
/api/embed, /api/embeddings and /api/version over the library and the gateway's engines; its
/v1 is modelyard's OpenAI API (api/app.py's Listeners), as Ollama serves one there too.

As Ollama does, a request loads its model when it is not loaded (``keep_alive`` says how long it
stays: MODELYARD_IDLE_UNLOAD otherwise), chat and generate stream NDJSON unless ``stream`` is
false, and errors are ``{"error": "..."}``. A request with ``num_ctx`` beyond the context the
model runs with saves it as the model's n_ctx and reloads it (admin callers only)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelyard import __version__
from modelyard.access.keys import OPEN, Caller
from modelyard.catalog.records import Model
from modelyard.errors import InvalidRequest, ModelyardError, ScopeDenied
from modelyard.gateway.calls import admit, begun, engine_call
from modelyard.gateway.checks import caller_of, library_of
from modelyard.http_errors import OLLAMA
from modelyard.library.settings import effective
from modelyard.ollama import translate as t
from modelyard.ollama.protocol import ChatIn, EmbeddingsIn, EmbedIn, GenerateIn, OllamaRequest, ShowIn
from modelyard.runtime.admission import Ticket
from modelyard.runtime.queue import ClientGone
from modelyard.runtime.runtime import Runtime
from modelyard.validation import describe

log = logging.getLogger(__name__)
# The Ollama API version this listener answers as: its clients check for features by it (0.13.3
# added /v1/responses, which agents use where the version says it is there).
OLLAMA_VERSION = "0.13.5"
Body = TypeVar("Body", bound=BaseModel)


def create_ollama_app(main: FastAPI) -> FastAPI:
    """The listener's app; ``main`` (the modelyard app) holds the runtime and the sessions."""
    app = FastAPI(title="modelyard (Ollama API)", version=__version__, docs_url=None, redoc_url=None)
    app.state.main = main

    @app.exception_handler(ModelyardError)
    async def _domain(_request: Request, exc: ModelyardError) -> Response:
        return OLLAMA.answer(exc)

    @app.exception_handler(ClientGone)
    async def _gone(_request: Request, _exc: ClientGone) -> Response:
        return Response(status_code=499)  # it left while it waited: nobody to answer

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        return OLLAMA.answer(InvalidRequest(describe(exc.errors(), skip=1)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        """No such route (or method) on this listener: in Ollama's shape too."""
        if exc.status_code == 404:
            message = f"{request.url.path} is not a route of this Ollama API"
        elif exc.status_code == 405:
            message = f"{request.url.path} does not take {request.method}"
        else:
            message = exc.detail if isinstance(exc.detail, str) else "the request was refused"
        return OLLAMA.refused(exc.status_code, message)

    @app.get("/", response_class=PlainTextResponse)
    @app.head("/", response_class=PlainTextResponse)
    async def root() -> str:
        return "Ollama is running"

    @app.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": OLLAMA_VERSION}

    @app.get("/api/tags")
    async def tags(request: Request) -> dict[str, Any]:
        return {"models": [t.tag(m) for m in _served(request)]}

    @app.post("/api/show")
    async def show(request: Request) -> dict[str, Any]:
        body = await _parse(request, ShowIn)
        model, _adapter = library_of(request).resolve(t.model_name(body.model))
        _caller(request).check_model(model.name)
        template = str(model.facts.get("chat_template") or "")
        return t.show(model, template)

    @app.get("/api/ps")
    async def ps(request: Request) -> dict[str, Any]:
        caller = _caller(request)
        out = []
        for s in _runtime(request).serving():
            if not s.loaded or not caller.may_use(s.model):
                continue
            model = library_of(request).get(s.model)
            ttl = s.kept_for
            out.append(
                {
                    **t.tag(model),
                    "expires_at": t.at(time.time() + ttl - s.idle) if ttl is not None else t.FOREVER,
                    "size_vram": 0,
                    "context_length": s.context or model.context_length or 0,
                }
            )
        return {"models": out}

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        body = await _parse(request, ChatIn)
        target = await _prepare(request, body, "chat")
        if not body.messages:
            return await _loaded(request, body, target, "message", {"role": "assistant", "content": ""})
        payload = t.chat_body(body, body.stream)
        return await _answer(
            request, body, target, "chat", "/v1/chat/completions", payload, _chat_piece, "message"
        )

    @app.post("/api/generate")
    async def generate(request: Request) -> Response:
        body = await _parse(request, GenerateIn)
        endpoint = "completions" if body.raw else "chat"
        target = await _prepare(request, body, endpoint)
        if not body.prompt and not body.images:
            return await _loaded(request, body, target, "response", "")
        endpoint, path, payload = t.generate_body(body, body.stream)
        return await _answer(request, body, target, endpoint, path, payload, _text_piece, "response")

    @app.post("/api/embed")
    async def embed(request: Request) -> dict[str, Any]:
        body = await _parse(request, EmbedIn)
        target = await _prepare(request, body, "embeddings")
        texts = [body.input] if isinstance(body.input, str) else body.input
        started = time.perf_counter()
        payload: dict[str, Any] = {"input": texts}
        if body.dimensions:
            payload["dimensions"] = body.dimensions
        answer = await _call_json(request, target, "embeddings", "/v1/embeddings", payload)
        vectors = [t.normalized(d["embedding"]) for d in sorted(answer["data"], key=lambda d: d["index"])]
        timing = t.timings(started, time.perf_counter(), answer.get("usage"))
        return {
            "model": body.model,
            "embeddings": vectors,
            "total_duration": timing["total_duration"],
            "load_duration": 0,
            "prompt_eval_count": timing["prompt_eval_count"],
        }

    @app.post("/api/embeddings")
    async def embeddings(request: Request) -> dict[str, Any]:
        body = await _parse(request, EmbeddingsIn)
        target = await _prepare(request, body, "embeddings")
        answer = await _call_json(request, target, "embeddings", "/v1/embeddings", {"input": [body.prompt]})
        return {"embedding": answer["data"][0]["embedding"]}

    return app


# -- inside ------------------------------------------------------------------------------------


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.main.state.runtime
    return runtime


def _caller(request: Request) -> Caller:
    caller: Caller = getattr(request.state, "caller", OPEN)
    return caller


def _served(request: Request) -> list[Model]:
    caller = _caller(request)
    models = library_of(request).models()
    return [m for m in models if m.category in t.SERVED and caller.may_use(m.name)]


async def _parse(request: Request, schema: type[Body]) -> Body:
    raw = await request.body()
    try:
        return schema.model_validate_json(raw or b"{}")
    except ValidationError as e:
        raise InvalidRequest(describe(e.errors())) from None


async def _prepare(request: Request, body: OllamaRequest, endpoint: str) -> Ticket:
    """The ticket of the request (a model that is not loaded loads, as Ollama's do), its
    keep_alive applied and its num_ctx honoured."""
    runtime = _runtime(request)
    asked = t.model_name(body.model)
    target = admit(request, asked, endpoint, load=True)
    name = target.model.name
    loaded = runtime.is_loaded(name)
    if body.keep_alive is not None:
        ttl = t.keep_alive(body.keep_alive)  # a wrong one is refused even where it is not used
        if _on_demand(runtime, name):
            runtime.keep(name, ttl)
    n_ctx = body.options.get("num_ctx")
    if isinstance(n_ctx, int) and n_ctx > (target.context or 0):
        await _grow_context(request, runtime, target, n_ctx, loaded)
        target = admit(request, asked, endpoint, load=True)  # with its new context
    return target


async def _grow_context(request: Request, runtime: Runtime, target: Ticket, n_ctx: int, loaded: bool) -> None:
    """Give each request to ``target``'s model ``n_ctx`` tokens (num_ctx is a request's, as
    Ollama's: where the slots split the context, it is theirs together)."""
    model = target.model
    slots = getattr(effective(model), "parallel", 1) if target.backend.slots_share_context else 1
    total = n_ctx * slots
    if not _caller(request).admin:
        raise ScopeDenied(
            f"num_ctx {n_ctx} is beyond the context {model.name!r} runs with",
            hint=f"an admin sets it: `modelyard settings {model.name} --set n_ctx={total}`",
        )
    library_of(request).put_settings(model.name, {"n_ctx": total})
    if loaded:
        await runtime.reload(model.name)


def _on_demand(runtime: Runtime, name: str) -> bool:
    """Whether ``name`` is loaded on demand (or not at all): a deployment an admin keeps running
    is not the Ollama API's to unload."""
    dep = runtime.deployment(name)
    return dep is None or dep.jit


async def _loaded(request: Request, body: OllamaRequest, target: Ticket, field: str, empty: Any) -> Response:
    """A request with nothing to answer: Ollama's way to load a model (or, with keep_alive 0,
    to unload it)."""
    runtime = _runtime(request)
    name = target.model.name
    if body.keep_alive is not None and t.keep_alive(body.keep_alive) == 0:
        reason = "unload"
        if runtime.is_loaded(name) and _on_demand(runtime, name):
            await runtime.unload(name)
    else:
        reason = "load"
        if not runtime.is_loaded(name):
            await runtime.load(name, adapter=target.adapter, jit=True, by=caller_of(request).account)
    answer = {"model": body.model, "created_at": t.now(), field: empty, "done": True, "done_reason": reason}
    return Response(orjson.dumps(answer), media_type="application/json")


async def _call_json(
    request: Request, target: Ticket, endpoint: str, path: str, payload: dict[str, Any]
) -> dict[str, Any]:
    async with engine_call(request, target, endpoint, path, payload) as upstream:
        return await upstream.json()


Piece = Callable[[dict[str, Any]], Any]


def _chat_piece(choice: dict[str, Any]) -> dict[str, Any]:
    """A chat answer's message (or a stream's delta) as Ollama's."""
    message = choice.get("message") or choice.get("delta") or {}
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if reasoning := message.get("reasoning_content"):
        out["thinking"] = reasoning
    if calls := t.tool_calls(message.get("tool_calls")):
        out["tool_calls"] = calls
    return out


def _empty(part: Any) -> bool:
    """A piece with nothing in it (a chunk with only a role, or the usage): not sent on."""
    if isinstance(part, dict):
        return not part["content"] and not part.get("thinking") and not part.get("tool_calls")
    return not part


def _text_piece(choice: dict[str, Any]) -> str:
    if "text" in choice:
        return str(choice.get("text") or "")
    message = choice.get("message") or choice.get("delta") or {}
    return str(message.get("content") or "")


async def _answer(
    request: Request,
    body: ChatIn | GenerateIn,
    target: Ticket,
    endpoint: str,
    path: str,
    payload: dict[str, Any],
    piece: Piece,
    field: str,
) -> Response:
    """The engine's answer as Ollama's: one JSON object, or NDJSON lines ending with the counts."""
    started = time.perf_counter()

    def line(
        part: Any, finish: str | None = None, usage: dict[str, Any] | None = None, done: bool = True
    ) -> bytes:
        out: dict[str, Any] = {"model": body.model, "created_at": t.now(), field: part, "done": done}
        if done:
            out["done_reason"] = t.done_reason(finish)
            out.update(t.timings(started, time.perf_counter(), usage))
        return orjson.dumps(out)

    if not body.stream:
        answer = await _call_json(request, target, endpoint, path, payload)
        choice = (answer.get("choices") or [{}])[0]
        return Response(
            line(piece(choice), choice.get("finish_reason"), answer.get("usage")),
            media_type="application/json",
        )

    async def lines() -> AsyncIterator[bytes]:
        finish, usage = None, None
        async with engine_call(request, target, endpoint, path, payload) as up:
            async for event in up.events():
                usage = event.get("usage") or usage
                for choice in event.get("choices") or []:
                    finish = choice.get("finish_reason") or finish
                    if not _empty(part := piece(choice)):
                        yield line(part, done=False) + b"\n"
        yield line(piece({}), finish, usage) + b"\n"

    stream = await begun(lines(), OLLAMA.piece)
    return StreamingResponse(stream, media_type="application/x-ndjson")
