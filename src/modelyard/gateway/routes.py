"""The /v1 routes: models, chat completions, completions, embeddings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from modelyard.backends.llama_cpp import endpoints_for
from modelyard.catalog.records import Model
from modelyard.errors import ChatTemplateMissing, ModelyardError, Unsupported
from modelyard.gateway.errors import from_exception, openai_error
from modelyard.gateway.protocol import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    ModelCard,
    ModelList,
    OpenAIRequest,
)
from modelyard.gateway.proxy import forward
from modelyard.runtime.controller import Runtime
from modelyard.runtime.gate import ClientGone

router = APIRouter(prefix="/v1", tags=["openai"])


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.get("/models")
def list_models(request: Request) -> ModelList:
    runtime = runtime_of(request)
    cards = []
    for m in runtime.library.models():
        created = int(m.created_at.timestamp()) if m.created_at else 0
        loaded = runtime.is_loaded(m.name)
        cards.append(ModelCard(id=m.name, created=created, category=m.category, loaded=loaded))
        cards += [
            ModelCard(id=f"{m.name}:{a.name}", created=created, category=m.category, loaded=False)
            for a in m.adapters
        ]
    return ModelList(data=cards)


@router.post("/chat/completions")
async def chat_completions(request: Request, body: ChatRequest) -> Response:
    return await _serve(request, body, "chat", "/v1/chat/completions")


@router.post("/completions")
async def completions(request: Request, body: CompletionRequest) -> Response:
    return await _serve(request, body, "completions", "/v1/completions")


@router.post("/embeddings")
async def embeddings(request: Request, body: EmbeddingRequest) -> Response:
    return await _serve(request, body, "embeddings", "/v1/embeddings")


def _check(model: Model, endpoint: str) -> None:
    if endpoint not in endpoints_for(model):
        raise Unsupported(f"{model.name!r} is a {model.category} model: it does not serve /v1/{endpoint}")
    if endpoint == "chat" and model.format == "gguf" and not model.facts.get("chat_template"):
        saved = model.settings.options if model.settings else {}
        if not saved.get("chat_template"):
            raise ChatTemplateMissing(model.name)


async def _serve(request: Request, body: OpenAIRequest, endpoint: str, path: str) -> Response:
    runtime = runtime_of(request)
    try:
        model, adapter = runtime.library.resolve(body.model)
        _check(model, endpoint)
        gate, slot = await runtime.acquire(model, adapter, request.is_disconnected)
    except ClientGone:
        return Response(status_code=499)
    except ModelyardError as e:
        return from_exception(e)
    payload: dict[str, Any] = body.model_dump(exclude_unset=True)
    payload["model"] = model.name
    return await forward(
        request.app.state.http,
        slot.url + path,
        payload,
        stream=body.stream,
        done=lambda: gate.release(slot),
    )


__all__ = ["openai_error", "router"]
