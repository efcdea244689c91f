"""The gateway's one way to an engine: take a lease on an admitted request's model, POST, and try
again where the engine did not take the request; every dialect (OpenAI bytes relayed, Anthropic,
Ollama, TGI, forced tool calls, merged embeddings) sends through ``send``.

aiohttp, with its C HTTP parser, is the upstream client: on the hot path of every request it
costs a fraction of what a pure-Python client does, which shows in the time to first token.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass

import aiohttp
import orjson
from fastapi import Request

from modelyard.errors import EngineError, ModelyardError
from modelyard.gateway.checks import state_of
from modelyard.gateway.exchange import Exchange
from modelyard.runtime.admission import Disconnected, Lease, Ticket
from modelyard.runtime.routes import answered_badly, passed_over
from modelyard.runtime.routing import Prompt

log = logging.getLogger(__name__)
LARGE = 1 << 20  # bytes of a body above which aiohttp wants a file-like object (audio, images)

# A request an engine dropped before answering goes once more (RESENDS); one that could not even
# connect (nothing was sent: the instance just died) goes to another instance, up to RECONNECTS.
RESENDS = 1
RECONNECTS = 2


class Upstream:
    """The gateway's clients to the engines: no total timeout (generations are long), no pool
    limit, no decompression (bytes are relayed as they come). ``pooled`` keeps connections
    alive; ``fresh`` opens a new one for each request, for a request sent again after a pooled
    connection failed (an engine may close one just as it is reused)."""

    def __init__(self) -> None:
        self.pooled = self._session(force_close=False)
        self.fresh = self._session(force_close=True)

    @staticmethod
    def _session(*, force_close: bool) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=10),
            connector=aiohttp.TCPConnector(limit=0, force_close=force_close),
            auto_decompress=False,
        )

    def session(self, fresh: bool) -> aiohttp.ClientSession:
        return self.fresh if fresh else self.pooled

    async def close(self) -> None:
        await self.pooled.close()
        await self.fresh.close()


def upstream_of(request: Request) -> Upstream:
    upstream: Upstream = state_of(request).upstream
    return upstream


@dataclass
class Sent:
    """An engine's answer, begun: its status and headers are here, its body is still to read.
    ``close`` ends it (a body not read to the end closes the connection, which stops the
    engine's generation) and frees the slot."""

    response: aiohttp.ClientResponse
    lease: Lease

    def close(self) -> None:
        if self.response.content.at_eof():
            self.response.release()
        else:
            self.response.close()
        self.lease.release()


async def send(
    request: Request,
    ticket: Ticket,
    path: str,
    body: bytes,
    *,
    exchange: Exchange | None = None,
    content_type: str = "application/json",
    prompt: Prompt | None = None,
    disconnected: Disconnected | None = None,
    traced: str | None = None,
) -> Sent:
    """POST ``body`` to ``path`` on an instance of ``ticket``'s model and wait for the answer to
    begin. An engine that dropped the connection before answering gets it once more, on a new
    connection; one that could not be reached at all, or whose process has ended, leaves the
    rotation, and the request goes to another instance (or waits for its restart). ``exchange`` hears of the wait and each retry;
    ``prompt`` (a text request's) routes it where it is cached; ``disconnected`` (the client's,
    unless given) stops the wait for a slot; ``traced``: the traceparent the engine gets where
    no ``exchange`` gives one (a merged request's: its first client's).

    A route's ticket goes on to the route's next target (``ticket.then``, those that answer
    ``path``) where one is overloaded, cannot be loaded or reached, or answers 429 or a server
    error before its first byte; the last one's answer is the client's, whatever it is."""
    if ticket.route is None:
        return await _send(request, ticket, path, body, exchange, content_type, prompt, disconnected, traced)
    routes = state_of(request).admission.routes
    chain = [ticket, *(t for t in ticket.then if t.stands_in(ticket, path))]
    for i, target in enumerate(chain):
        last = i == len(chain) - 1
        name = target.model.name
        if i > 0:
            body = renamed(body, target.served) if content_type == "application/json" else body
            if exchange is not None:
                exchange.moved(name)
        try:
            sent = await _send(
                request, target, path, body, exchange, content_type, prompt, disconnected, traced
            )
        except ModelyardError as e:
            why = passed_over(e)
            if why is None or last:
                routes.count(ticket.route, name, why or "failed")
                raise
            log.info("route %s: %s passed over (%s): %s", ticket.route, name, why, e.message)
            routes.count(ticket.route, name, why)
            continue
        why = answered_badly(sent.response.status)
        routes.count(ticket.route, name, why or "served")
        if why is None or last:
            return sent
        log.info("route %s: %s passed over: it answered %d", ticket.route, name, sent.response.status)
        sent.close()
    raise AssertionError("a route's last target answers or raises")


def renamed(body: bytes, served: str) -> bytes:
    """A JSON body with ``model`` set to ``served`` (a route's next target's name)."""
    payload = orjson.loads(body)
    if isinstance(payload, dict) and "model" in payload:
        payload["model"] = served
        return orjson.dumps(payload)
    return body


async def _send(
    request: Request,
    ticket: Ticket,
    path: str,
    body: bytes,
    exchange: Exchange | None,
    content_type: str,
    prompt: Prompt | None,
    disconnected: Disconnected | None,
    traced: str | None = None,
) -> Sent:
    """``send`` to one model."""
    dropped = refused = 0
    while True:
        lease = await ticket.lease(disconnected or request.is_disconnected, prompt=prompt)
        if exchange is not None:
            exchange.waited(lease)
        url = lease.url + path
        data = body if len(body) <= LARGE else io.BytesIO(body)  # a big one goes in pieces
        session = upstream_of(request).session(fresh=dropped > 0)
        headers = {**lease.headers, "Content-Type": content_type}
        if exchange is not None and exchange.trace is not None:
            traced = exchange.trace.parent
        if traced is not None:
            headers["traceparent"] = traced  # the engine's spans under the request's
        try:
            response = await session.post(url, data=data, headers=headers)
        except aiohttp.ClientConnectionError as e:  # refused, reset, dropped: no answer began
            # not connected, or dropped by an engine that has ended (its restart serves it)
            dead = isinstance(e, aiohttp.ClientConnectorError) or lease.engine_exited()
            log.log(
                logging.WARNING if dead else logging.INFO, "engine at %s did not take the request: %s", url, e
            )
            if dead:  # out of the rotation: the next try goes to another instance
                lease.unreachable()
                refused += 1
            else:  # the next try goes on a new connection
                lease.release()
                dropped += 1
            if dropped > RESENDS or refused > RECONNECTS:
                raise EngineError(f"no instance of {ticket.model.name!r} answered") from None
            if exchange is not None:
                exchange.retried()
            continue
        except (aiohttp.ClientError, OSError) as e:
            lease.release()
            log.warning("engine at %s failed: %s", url, e)
            raise EngineError(f"the engine did not answer: {e.__class__.__name__}") from None
        except asyncio.CancelledError:  # stopped before the answer began (a preempted batch request)
            lease.release()
            raise
        return Sent(response, lease)


SESSION = "x-session-id"  # the header that names a conversation, for routing


def prompt_of(raw: bytes, session: str | None = None) -> Prompt | None:
    """What routing reads of a text request (see routing.py): its prompt as text, the tools and
    messages of a chat in their order (so that a conversation's next turn begins as its last
    did), or a completion's prompt; and its session (X-Session-Id, or prompt_cache_key). None
    when it has no prompt."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        tools = body.get("tools")
        text = (orjson.dumps(tools) if tools else b"") + orjson.dumps(messages)
        return Prompt.of(text, session)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
        prompt = prompt[0]
    return Prompt.of(prompt, session) if isinstance(prompt, str) and prompt else None
