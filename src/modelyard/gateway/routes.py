"""The /v1 routes: models, chat completions, completions, embeddings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.routing import Route

from modelyard.errors import EngineError, InvalidRequest, ModelNotLoaded, ModelyardError, Unsupported
from modelyard.gateway import fields, infill, tgi, tools
from modelyard.gateway.answers import (
    CaptionAnswer,
    ClassifyAnswer,
    EmbeddingsAnswer,
    FaceAnswer,
    RerankAnswer,
)
from modelyard.gateway.calls import admit, engine_call, fitted
from modelyard.gateway.checks import (
    admission_of,
    caller_of,
    client_files_of,
    library_of,
    lower,
    runtime_of,
)
from modelyard.gateway.coalesce import Coalescer
from modelyard.gateway.exchange import Exchange
from modelyard.gateway.media import inline_files, may_name_files
from modelyard.gateway.protocol import (
    CaptionRequest,
    ChatRequest,
    ClassifyRequest,
    CompletionRequest,
    EmbeddingRequest,
    GenerationRequest,
    ImageEditRequest,
    ImageRequest,
    ModelCard,
    ModelList,
    OpenAIRequest,
    RerankRequest,
    SpeechRequest,
    TranscriptionRequest,
    UpscaleRequest,
    VideoRequest,
    VoiceList,
    documented,
)
from modelyard.gateway.proxy import relay
from modelyard.gateway.upscaling import STEP, generate_then_upscale
from modelyard.gateway.upstream import SESSION, prompt_of, send, upstream_of
from modelyard.http_errors import OPENAI
from modelyard.runtime.admission import Ticket, stays
from modelyard.runtime.queue import ClientGone
from modelyard.validation import describe

router = APIRouter(prefix="/v1", tags=["openai"])
TEXT = ("chat", "completions")  # the endpoints that generate text from a prompt


@router.get("/models", response_model_exclude_none=True)
def list_models(request: Request) -> ModelList:
    """The models this caller may use, and the routes (with their targets)."""
    caller = caller_of(request)
    runtime = runtime_of(request)
    cards = []
    categories: dict[str, str] = {}
    for m in library_of(request).models():
        categories[m.name] = m.category
        if not caller.may_use(m.name):
            continue
        created = int(m.created_at.timestamp()) if m.created_at else 0
        loaded = runtime.is_loaded(m.name)
        cards.append(ModelCard(id=m.name, created=created, category=m.category, loaded=loaded))
        cards += [
            ModelCard(id=f"{m.name}:{a.name}", created=created, category=m.category, loaded=False)
            for a in m.adapters
        ]
    for route in admission_of(request).routes.all():
        targets = [t.model for t in route.targets]
        if not caller.may_use(route.name) or not targets:
            continue
        created = int(route.created_at.timestamp()) if route.created_at else 0
        cards.append(
            ModelCard(
                id=route.name, created=created, category=categories.get(targets[0], "chat"),
                loaded=any(runtime.is_loaded(t) for t in targets), targets=targets,
            )
        )  # fmt: skip
    return ModelList(data=cards)


@router.post("/chat/completions", openapi_extra=documented(ChatRequest))
async def chat_completions(request: Request) -> Response:
    return await _serve(request, ChatRequest, "chat", "/v1/chat/completions")


@router.post("/completions", openapi_extra=documented(CompletionRequest))
async def completions(request: Request) -> Response:
    return await _serve(request, CompletionRequest, "completions", "/v1/completions")


@router.post(
    "/embeddings",
    openapi_extra=documented(EmbeddingRequest),
    responses={
        200: {"model": EmbeddingsAnswer | FaceAnswer, "description": "a face model's answer has faces"}
    },
)
async def embeddings(request: Request) -> Response:
    return await _serve(request, EmbeddingRequest, "embeddings", "/v1/embeddings", coalesce=True)


@router.post("/rerank", openapi_extra=documented(RerankRequest), responses={200: {"model": RerankAnswer}})
async def rerank(request: Request) -> Response:
    """Documents ordered by relevance to the query (the shape llama-server and GPUStack use)."""
    return await _serve(request, RerankRequest, "rerank", "/v1/rerank")


@router.post(
    "/classify", openapi_extra=documented(ClassifyRequest), responses={200: {"model": ClassifyAnswer}}
)
async def classify(request: Request) -> Response:
    """A label and a score for each input text."""
    return await _serve(request, ClassifyRequest, "classify", "/v1/classify")


@router.post("/images/generations", openapi_extra=documented(GenerationRequest))
async def image_generations(request: Request) -> Response:
    """Images from a prompt: b64_json, or url (a file under MODELYARD_HOME/outputs/images);
    with ``upscale``, each made bigger by that upscale model."""
    path, capability = "/v1/images/generations", "text-to-image"
    raw = await request.body()
    if b'"upscale' not in raw:
        return await _serve(request, ImageRequest, "images", path, capability=capability)
    try:
        body = GenerationRequest.model_validate_json(raw)
    except ValidationError as e:
        return OPENAI.answer(InvalidRequest(describe(e.errors())))
    payload = body.model_dump(exclude_unset=True)
    if body.upscale is not None:
        return await generate_then_upscale(request, payload, path, capability, _route)
    plain = {k: v for k, v in payload.items() if k not in STEP}  # upscale: null
    return await _route(request, orjson.dumps(plain), body.model, "images", path, capability=capability)


@router.post("/images/edits", openapi_extra=documented(ImageEditRequest))
async def image_edits(request: Request) -> Response:
    """Image-to-image: a multipart form as OpenAI's API sends it, or JSON with the image as a
    data URL, base64 or a local path."""
    path = "/v1/images/edits"
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _serve(request, ImageEditRequest, "images", path, capability="image-to-image")
    raw = await request.body()
    async with request.form() as form:
        name, prompt = form.get("model"), form.get("prompt")
        has_image = form.get("image") is not None or form.get("image[]") is not None
    if not isinstance(name, str) or not name or not isinstance(prompt, str) or not has_image:
        return OPENAI.answer(InvalidRequest("the form needs model, prompt and image"))
    # the form goes to the engine as it came; the engine knows the model by its own name
    return await _route(request, raw, name, "images", path, capability="image-to-image", form=True)


@router.post(
    "/images/captions", openapi_extra=documented(CaptionRequest), responses={200: {"model": CaptionAnswer}}
)
async def image_captions(request: Request) -> Response:
    """Captions of images (a captioning model): JSON, or a multipart form with model, image
    (files: image[]) and prompt."""
    return await _images_in(request, CaptionRequest, "images/captions")


@router.post("/images/upscale", openapi_extra=documented(UpscaleRequest))
async def image_upscale(request: Request) -> Response:
    """Images made bigger (an upscale model), as PNG in b64_json: JSON, or a multipart form
    with model, image (files: image[]), scale and tile_size."""
    return await _images_in(request, UpscaleRequest, "images/upscale")


async def _images_in(request: Request, schema: type[OpenAIRequest], endpoint: str) -> Response:
    """A route that takes images: JSON, or a form whose files the engine reads as it came."""
    path = f"/v1/{endpoint}"
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _serve(request, schema, endpoint, path)
    raw = await request.body()
    async with request.form() as form:
        name = form.get("model")
        has_image = form.get("image") is not None or form.get("image[]") is not None
    if not isinstance(name, str) or not name or not has_image:
        return OPENAI.answer(InvalidRequest("the form needs model and image"))
    return await _route(request, raw, name, endpoint, path, form=True)


@router.post("/videos/generations", openapi_extra=documented(VideoRequest))
async def video_generations(request: Request) -> Response:
    """A clip from a prompt (a model tagged video): an animated WebP, b64_json or url."""
    return await _serve(request, VideoRequest, "images", "/v1/videos/generations", capability="video")


@router.post("/audio/transcriptions", openapi_extra=documented(TranscriptionRequest, "multipart/form-data"))
async def audio_transcriptions(request: Request) -> Response:
    """Speech to text (a speech-to-text model): OpenAI's multipart form; json, text, srt, vtt
    or verbose_json (segments, words)."""
    return await _audio(request, "audio/transcriptions")


@router.post("/audio/translations", openapi_extra=documented(TranscriptionRequest, "multipart/form-data"))
async def audio_translations(request: Request) -> Response:
    """Speech in any language to English text (multilingual Whisper models)."""
    return await _audio(request, "audio/translations")


@router.post("/audio/speech", openapi_extra=documented(SpeechRequest))
async def audio_speech(request: Request) -> Response:
    """Text to speech (a text-to-speech model): the audio itself, as mp3, opus, flac, wav or pcm."""
    return await _serve(request, SpeechRequest, "audio/speech", "/v1/audio/speech")


@router.get("/audio/voices")
async def audio_voices(request: Request, model: str) -> VoiceList:
    """The voices a loaded text-to-speech model speaks in (its speakers), as its engine says."""
    found = library_of(request).resolve(model)[0]
    caller_of(request).check_model(found.name)
    if found.category != "text-to-speech":
        raise Unsupported(f"{found.name!r} is a {found.category} model: it has no voices")
    instances = runtime_of(request).instances()
    urls = [i.url for i in instances if i.model == found.name and i.state == "running" and i.url]
    if not urls:
        raise ModelNotLoaded(found.name)
    try:
        async with upstream_of(request).pooled.get(urls[0] + "/health") as r:
            health = await r.json() if r.status == 200 else {}
    except (aiohttp.ClientError, OSError) as e:
        raise EngineError(f"the engine of {found.name!r} did not answer: {e.__class__.__name__}") from e
    return VoiceList(model=found.name, voices=[str(v) for v in health.get("voices", [])])


async def _audio(request: Request, endpoint: str) -> Response:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return OPENAI.answer(
            InvalidRequest("send a multipart form with model and file, as OpenAI's API does")
        )
    raw = await request.body()
    async with request.form() as form:
        name, has_file = form.get("model"), form.get("file") is not None
    if not isinstance(name, str) or not name or not has_file:
        return OPENAI.answer(InvalidRequest("the form needs model and file"))
    return await _route(request, raw, name, endpoint, f"/v1/{endpoint}", form=True)


# The POST endpoints by path: the server calls them straight from its outermost app (api/hot.py),
# or, when CORS is on, as bare Starlette routes matched before the rest (hot_routes). The FastAPI
# routes above stay for the OpenAPI docs.
HANDLERS: dict[str, Callable[[Request], Awaitable[Response]]] = {
    "/v1/chat/completions": chat_completions,
    "/v1/completions": completions,
    "/v1/embeddings": embeddings,
    "/v1/rerank": rerank,
    "/v1/classify": classify,
    "/v1/images/generations": image_generations,
    "/v1/images/edits": image_edits,
    "/v1/images/captions": image_captions,
    "/v1/images/upscale": image_upscale,
    "/v1/videos/generations": video_generations,
    "/v1/audio/transcriptions": audio_transcriptions,
    "/v1/audio/translations": audio_translations,
    "/v1/audio/speech": audio_speech,
}


def hot_routes() -> list[Route]:
    return [Route(path, handler, methods=["POST"]) for path, handler in HANDLERS.items()]


async def _coalesced(
    request: Request, ticket: Ticket, texts: list[str], body: dict[str, Any], path: str, exchange: Exchange
) -> Response:
    """One client's part of a merged embeddings request (see coalesce.py)."""
    name = ticket.model.name
    extras: dict[str, Any] = {k: body[k] for k in ("encoding_format", "dimensions") if k in body}

    async def merged(batch: list[str], extras: dict[str, Any]) -> tuple[int, Any]:
        payload = orjson.dumps({"model": name, "input": batch, **extras, "modelyard_tokens": True})
        traced = exchange.trace.parent if exchange.trace is not None else None
        # many clients' request, traced as the first one's
        sent = await send(request, ticket, path, payload, disconnected=stays, traced=traced)
        try:
            answer = await sent.response.read()
        except (aiohttp.ClientError, OSError) as e:
            raise EngineError(f"the engine of {name!r} failed while answering: {e.__class__.__name__}") from e
        finally:
            sent.close()
        status = sent.response.status
        return status, orjson.loads(answer) if status == 200 else answer

    key = (name, ticket.adapter, tuple(sorted(extras.items())))
    coalescer: Coalescer = request.app.state.coalescer
    status, answer = await coalescer.embed(key, name, texts, extras, merged)
    if status == 200:
        exchange.answered(answer)
    exchange.finish(status)
    return Response(answer, status_code=status, media_type="application/json")


async def _serve(
    request: Request,
    schema: type[OpenAIRequest],
    endpoint: str,
    path: str,
    *,
    coalesce: bool = False,
    capability: str | None = None,
) -> Response:
    """The hot path of every request: parse and check the body (pydantic-core straight from the
    bytes), resolve the model, wait for a slot, forward the bytes as they came."""
    raw = await request.body()
    cache_key = None
    try:
        if endpoint in TEXT:
            ready = fields.prepared(raw)
            raw, cache_key = ready.raw, ready.cache_key
            if ready.tier is not None:
                lower(request, ready.tier)
        body = schema.model_validate_json(raw)
    except ValidationError as e:
        return OPENAI.answer(InvalidRequest(describe(e.errors())))
    except ModelyardError as e:
        return OPENAI.answer(e)
    if endpoint == "chat" and b'"tool_choice"' in raw:
        try:
            forced = await _forced(request, body.model, orjson.loads(raw), stream=body.stream)
        except ClientGone:
            return Response(status_code=499)
        except ModelyardError as e:
            return OPENAI.answer(e)
        if forced is not None:
            return forced
    # a stream's usage comes only when asked for: the gateway asks, counts it, and keeps it
    # from a client that did not ask
    quiet = body.stream and endpoint in TEXT and "stream_options" not in (body.model_extra or ())
    return await _route(
        request, raw, body.model, endpoint, path, stream=body.stream, coalesce=coalesce,
        capability=capability, quiet_usage=quiet, cache_key=cache_key,
    )  # fmt: skip


async def _forced(request: Request, name: str, payload: dict[str, Any], *, stream: bool) -> Response | None:
    """A chat request whose tool_choice forces calls, which no engine promises its own way
    (llama-server lets text come first, vLLM wants a parser, a runner model may not know the
    format): the engine writes the calls as JSON a schema constrains (tools.py), the gateway
    answers with them as tool_calls (streamed when asked). None: nothing forced."""
    force = tools.forced(payload)
    if force is None:
        return None
    ticket = admit(request, name, "chat")
    constrained = tools.constrained(payload, force)
    async with engine_call(request, ticket, "chat", "/v1/chat/completions", constrained) as up:
        answer = tools.answer_with_calls(await up.json(), force)  # a refusal: in the documented shape
    if not stream:
        return Response(orjson.dumps(answer), media_type="application/json")
    usage = bool((payload.get("stream_options") or {}).get("include_usage"))
    return Response(tools.stream_of(answer, usage), media_type="text/event-stream")


async def _route(
    request: Request,
    raw: bytes,
    name: str,
    endpoint: str,
    path: str,
    *,
    stream: bool = False,
    coalesce: bool = False,
    capability: str | None = None,
    form: bool = False,
    quiet_usage: bool = False,
    cache_key: str | None = None,
) -> Response:
    """Admit the request, send it (upstream.py: a slot, retries), relay the answer: JSON bodies
    with the model's own name and local images inlined where needed; a multipart form as it
    came. Each request a model takes is counted (exchange.py)."""
    exchange: Exchange | None = None
    try:
        ticket = admission_of(request).admit(name, endpoint, caller_of(request), capability=capability)
        model = ticket.model
        if ticket.backend.dialect == "tgi":
            return await tgi.completion(request, ticket, orjson.loads(raw), name)
        if endpoint == "completions" and b'"suffix"' in raw and (asked := orjson.loads(raw)).get("suffix"):
            return await infill.completion(request, ticket, asked, name)  # fill-in-the-middle
        exchange = Exchange.of(request, model.name, endpoint)
        if endpoint in TEXT:
            raw = await fitted(request, ticket, endpoint, raw)
        if coalesce and ticket.backend.merges_embeddings:
            parsed = orjson.loads(raw)
            texts = Coalescer.texts_of(parsed)
            if texts is not None:
                return await _coalesced(request, ticket, texts, parsed, path, exchange)
        content = raw if form else await _payload(request, raw, ticket.served, name, endpoint, model.category)
        if quiet_usage:
            content = _asking_usage(content)
        session = cache_key or request.headers.get(SESSION)
        prompt = prompt_of(raw, session) if endpoint in TEXT and ticket.replicated else None
        kind = request.headers["content-type"] if form else "application/json"
        sent = await send(request, ticket, path, content, exchange=exchange, content_type=kind, prompt=prompt)
        return await relay(sent, stream=stream, exchange=exchange, quiet_usage=quiet_usage)
    except ClientGone:
        if exchange is not None:
            exchange.finish(499)
        return Response(status_code=499)
    except ModelyardError as e:
        answer = OPENAI.answer(e)
        if exchange is None and e.model is not None:  # refused by the model: counted for it
            exchange = Exchange.of(request, e.model, endpoint)
        if exchange is not None:
            exchange.finish(answer.status_code)
        return answer


def _asking_usage(content: bytes) -> bytes:
    """The JSON body ``content`` with ``stream_options.include_usage`` on (it had no
    stream_options)."""
    end = content.rstrip()
    if not end.endswith(b"}"):
        return content
    return end[:-1] + b',"stream_options":{"include_usage":true}}'


async def _payload(
    request: Request, raw: bytes, served: str, name: str, endpoint: str, category: str
) -> bytes:
    """The JSON body for the engine: parsed only when it may name a file (sent as its content:
    engines never read what a client names), or when the engine must hear another name than the
    one asked for (the model's own for an alias; ``base:adapter`` for an engine that picks a LoRA
    by name)."""
    files_here = may_name_files(endpoint, category, raw)
    if name == served and not files_here:
        return raw
    payload = orjson.loads(raw)
    payload["model"] = served
    if files_here:
        await inline_files(payload, endpoint, category, client_files_of(request), caller_of(request))
    return orjson.dumps(payload)
