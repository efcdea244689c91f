"""Requests the gateway makes on a client's behalf and reads itself (the Anthropic, Ollama and
TGI translations, forced tool calls): the same admission, upstream and retries as a /v1 request
(upstream.send), with the engine's answer handed to the caller instead of relayed as it came."""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import aiohttp
import orjson
from fastapi import Request

from modelyard.errors import EngineError, ModelyardError, Unsupported
from modelyard.gateway import truncation
from modelyard.gateway.checks import admission_of, caller_of, fits_context
from modelyard.gateway.exchange import TAIL, Exchange
from modelyard.gateway.upstream import SESSION, prompt_of, send
from modelyard.http_errors import engine_refusal, status_of
from modelyard.runtime.admission import Disconnected, Ticket
from modelyard.runtime.queue import ClientGone

log = logging.getLogger(__name__)


def admit(request: Request, name: str, endpoint: str, *, load: bool = False) -> Ticket:
    """The ticket of this request for ``name`` on ``endpoint`` (see runtime/admission.py)."""
    return admission_of(request).admit(name, endpoint, caller_of(request), load=load)


class Answer:
    """An engine's answer held open; what it reports of tokens and images is counted as it is
    read."""

    def __init__(self, response: aiohttp.ClientResponse, exchange: Exchange) -> None:
        self.response = response
        self.exchange = exchange

    @property
    def status(self) -> int:
        return self.response.status

    async def read(self) -> bytes:
        """The whole answer, as it came."""
        try:
            raw = await self.response.read()
        except (aiohttp.ClientError, OSError) as e:
            raise EngineError(f"the engine failed while answering: {e.__class__.__name__}") from None
        if self.response.status == 200:
            self.exchange.answered(raw)
        return raw

    async def json(self) -> dict[str, Any]:
        """The whole JSON answer; EngineError when it is an error."""
        raw = await self.read()
        if self.response.status != 200:
            raise engine_refusal(self.response.status, raw)
        answer: dict[str, Any] = orjson.loads(raw)
        return answer

    async def chunks(self) -> AsyncIterator[bytes]:
        """The answer's bytes as they come; EngineError when the engine stops."""
        tail: deque[bytes] = deque(maxlen=TAIL)
        try:
            async for chunk in self.response.content.iter_any():
                tail.append(chunk)
                yield chunk
        except (aiohttp.ClientError, OSError) as e:
            raise EngineError(f"the engine stopped while answering ({e.__class__.__name__})") from None
        finally:
            self.exchange.answered(b"".join(tail))

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The JSON events of a server-sent stream, until [DONE]; EngineError for an error
        answer or an error event."""
        if self.response.status != 200:
            raise engine_refusal(self.response.status, await self.read())
        try:
            async for line in self.response.content:
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    return
                event: dict[str, Any] = orjson.loads(data)
                if "error" in event:
                    raise engine_refusal(500, data)
                self.exchange.usage(event.get("usage"))
                yield event
        except (aiohttp.ClientError, OSError) as e:
            raise EngineError(f"the engine stopped while answering ({e.__class__.__name__})") from None


@contextlib.asynccontextmanager
async def engine_call(
    request: Request,
    ticket: Ticket,
    endpoint: str,
    path: str,
    payload: dict[str, Any],
    *,
    named: bool = True,
    disconnected: Disconnected | None = None,
    session: str | None = None,
    truncate: str | None = None,
) -> AsyncIterator[Answer]:
    """POST ``payload`` (its model set to the served name, unless ``named`` is off: an API with
    no such field) to an instance of ``ticket``'s model and hold the answer open; the slot is
    freed when the block ends, and the request is counted in the metrics and the usage.
    ``disconnected``: whether the client has gone (its connection's, unless given); ``session``:
    the conversation it belongs to, for routing (the X-Session-Id header's, unless given);
    ``truncate``: a chat's truncation as the request asks it (see fitted)."""
    exchange = Exchange.of(request, ticket.model.name, endpoint)
    status = 502
    try:
        body = orjson.dumps({**payload, "model": ticket.served} if named else payload)
        text = endpoint in ("chat", "completions")
        if text:
            body = await fitted(request, ticket, endpoint, body, truncate)
        # to the replica that has it cached
        session = session or request.headers.get(SESSION)
        prompt = prompt_of(body, session) if text and ticket.replicated else None
        sent = await send(
            request, ticket, path, body, exchange=exchange, prompt=prompt, disconnected=disconnected
        )
        try:
            status = 499  # unless the block ends: the client left
            yield Answer(sent.response, exchange)
            status = sent.response.status
        finally:
            sent.close()
    except ClientGone:
        status = 499
        raise
    except ModelyardError as e:
        status = status_of(e)[0]
        raise
    finally:
        exchange.finish(status)


def truncates(ticket: Ticket, asked: str | None = None) -> bool:
    """Whether a chat for ``ticket`` is cut to fit its context: as the request asks (``asked``,
    a Responses request's ``truncation``), else as the model's settings say."""
    settings = ticket.model.settings
    return truncation.wanted(settings.options.get("truncation") if settings else None, asked)


async def fitted(
    request: Request, ticket: Ticket, endpoint: str, raw: bytes, asked: str | None = None
) -> bytes:
    """The text request ``raw`` as it goes to the engine: refused when its prompt is far beyond
    the context; a chat cut to fit when truncation is on (``asked``: as the request asks it,
    else as the model's settings say; see truncation.py)."""
    context = ticket.context
    if endpoint != "chat" or not context or not truncates(ticket, asked):
        fits_context(raw, ticket.model, context)
        return raw
    chat = orjson.loads(raw)
    budget = context - truncation.answer_room(chat, context)
    if not truncation.may_overflow(len(raw), budget):
        return raw

    async def count(candidate: dict[str, Any]) -> int:
        try:
            return await count_tokens(request, ticket, candidate)
        except Unsupported as e:
            e.hint = (
                "truncation needs an engine that counts tokens: llama.cpp, vLLM or the transformers runner"
            )
            raise

    cut = await truncation.truncated(chat, budget, count)
    if cut is not chat:
        dropped = len(chat["messages"]) - len(cut["messages"])
        log.info(
            "%s: a chat cut by its %d oldest messages to fit %d tokens", ticket.model.name, dropped, budget
        )
    return raw if cut is chat else orjson.dumps(cut)


async def count_tokens(request: Request, ticket: Ticket, chat: dict[str, Any]) -> int:
    """The tokens of the prompt ``chat`` (a chat completion request) makes, as the model's own
    engine counts them: its chat template, its tokenizer."""
    asked = {k: chat[k] for k in ("messages", "tools", "chat_template_kwargs") if chat.get(k)}
    api = ticket.backend.tokenizer_api
    if api == "vllm":  # one call: the messages in, the count out
        async with engine_call(request, ticket, "tokenize", "/tokenize", asked) as up:
            return int((await up.json())["count"])
    if api == "llama.cpp":  # llama-server: the template's prompt, then its tokens
        async with engine_call(request, ticket, "tokenize", "/apply-template", asked) as up:
            prompt = (await up.json())["prompt"]
        tokenize = {"content": prompt, "add_special": True, "parse_special": True}
        async with engine_call(request, ticket, "tokenize", "/tokenize", tokenize) as up:
            return len((await up.json())["tokens"])
    raise Unsupported(
        f"{ticket.model.name!r} runs on {ticket.backend.name}, whose engine does not count tokens",
        hint="llama.cpp, vLLM and the transformers runner count them",
    )


class Translator(Protocol):
    """A dialect's stream made from chat completion chunks (anthropic.py, items.py)."""

    def start(self) -> bytes: ...

    def feed(self, chunk: dict[str, Any]) -> bytes: ...


async def translated_chat(
    request: Request,
    ticket: Ticket,
    chat: dict[str, Any],
    out: Translator,
    session: str | None = None,
    truncate: str | None = None,
) -> AsyncIterator[bytes]:
    """The engine's chat completion stream for ``chat`` as ``out``'s events: its opening once the
    answer has begun (an error answer raises before it), then each chunk's; the caller writes
    the end. ``session``, ``truncate``: see engine_call."""
    path = "/v1/chat/completions"
    async with engine_call(request, ticket, "chat", path, chat, session=session, truncate=truncate) as up:
        chunks = up.events()
        first = await anext(chunks, None)
        yield out.start()
        if first is not None:
            yield out.feed(first)
            async for chunk in chunks:
                if piece := out.feed(chunk):
                    yield piece


async def begun(
    lines: AsyncIterator[bytes], failed: Callable[[ModelyardError], bytes]
) -> AsyncIterator[bytes]:
    """``lines`` with its first piece already made: an error before it raises here (and answers
    with its status); one after it ends the stream with ``failed(error)``."""
    first = await anext(lines)

    async def chained() -> AsyncIterator[bytes]:
        yield first
        try:
            async for line in lines:
                yield line
        except ModelyardError as e:
            yield failed(e)

    return chained()
