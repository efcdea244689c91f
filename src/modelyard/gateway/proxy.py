"""Relay an engine's answer to an OpenAI request back to the client as it came, streamed or
not, counted on the way (upstream.py sends the request)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable

import aiohttp
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from modelyard.errors import EngineError
from modelyard.gateway.exchange import TAIL, Exchange, with_prediction_usage
from modelyard.gateway.upstream import Sent
from modelyard.http_errors import OPENAI, engine_refusal, is_ours

log = logging.getLogger(__name__)


async def relay(sent: Sent, *, stream: bool, exchange: Exchange, quiet_usage: bool = False) -> Response:
    """The engine's answer as the client gets it, streamed or not; the slot is freed when it is
    finished (or failed, or the client went away), then ``exchange`` records the request.
    ``quiet_usage``: the stream's usage event was asked for by the gateway, not the client, and
    is counted but not relayed."""
    upstream = sent.response
    if not stream or upstream.status != 200:
        try:
            raw = await upstream.read()
        except (aiohttp.ClientError, OSError) as e:
            return _engine_down(f"the engine failed while answering: {e.__class__.__name__}", exchange)
        finally:
            sent.close()
        if upstream.status == 200:
            exchange.answered(raw)
            if exchange.timings.drafted:
                raw = with_prediction_usage(raw)
        elif not is_ours(raw):  # an engine's own error shape: the documented one, its message kept
            answer = OPENAI.answer(engine_refusal(upstream.status, raw))
            exchange.finish(answer.status_code)
            return answer
        exchange.finish(upstream.status)
        kind = upstream.headers.get("Content-Type", "application/json")  # text and subtitles too
        return Response(raw, status_code=upstream.status, media_type=kind)

    async def relayed() -> AsyncIterator[bytes]:
        status = 200
        counted = False
        tail: deque[bytes] = deque(maxlen=TAIL)
        try:
            async for chunk in upstream.content.iter_any():
                if not tail:
                    exchange.began()
                tail.append(chunk)
                if chunk.endswith(b"data: [DONE]\n\n"):  # the end: counted before the client sees it
                    exchange.answered(b"".join(tail))
                    exchange.finish(status)
                    counted = True
                if quiet_usage and (b'"choices":[]' in chunk or b'"choices": []' in chunk):
                    chunk = without_usage(chunk)
                    if not chunk:
                        continue
                yield chunk
        except (aiohttp.ClientError, OSError) as e:
            # The engine died mid-stream: end the client's stream with an error event.
            log.warning("engine stream from %s broke: %s", upstream.url, e)
            status = 502
            yield OPENAI.piece(
                EngineError(f"the engine stopped while answering ({e.__class__.__name__}); it is restarting")
            )
        finally:
            # A stream cut short (the client left) closes the connection, which stops the
            # engine's generation; a finished one goes back to the pool.
            if not upstream.content.at_eof():
                status = 499 if status == 200 else status
            sent.close()
            if not counted:
                exchange.answered(b"".join(tail))
                exchange.finish(status)

    def unread() -> None:  # the stream never began (its relay was stopped first)
        sent.close()
        exchange.finish(499)

    return EventStream(relayed(), unread)


def without_usage(chunk: bytes) -> bytes:
    """``chunk`` without its usage-only event (``"choices":[]``), when the chunk holds all of it."""
    at = max(chunk.find(b'"choices":[]'), chunk.find(b'"choices": []'))
    start, end = chunk.rfind(b"data:", 0, at), chunk.find(b"\n\n", at)
    if start < 0 or end < 0:
        return chunk
    return chunk[:start] + chunk[end + 2 :]


class EventStream(Response):
    """Server-sent events relayed chunk by chunk. Leaner than Starlette's StreamingResponse on
    the first chunk (no task group per response); a client that disconnects stops the relay,
    which closes the engine's stream. ``unread``: what ends it when its relay is stopped before
    the first chunk is asked for (the chunks' own cleanup never runs then)."""

    def __init__(self, chunks: AsyncIterator[bytes], unread: Callable[[], None] | None = None) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self.chunks = chunks
        self.unread = unread
        self.begun = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(gone())
        relay = asyncio.ensure_future(self._relay(send))
        try:
            await asyncio.wait({watcher, relay}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (watcher, relay):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await relay
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if not self.begun and self.unread is not None:
                self.unread()
        if relay.done() and not relay.cancelled() and relay.exception() is not None:
            raise relay.exception()  # type: ignore[misc]

    async def _relay(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        self.begun = True  # the chunks' own cleanup runs from here on (aclose below)
        try:
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self.chunks.aclose()  # type: ignore[attr-defined]


def _engine_down(message: str, exchange: Exchange) -> Response:
    exchange.finish(502)
    return OPENAI.answer(EngineError(message))
