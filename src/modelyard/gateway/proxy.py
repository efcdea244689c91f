"""Forward an OpenAI request to an engine instance and its answer back, streamed or not.

aiohttp, with its C HTTP parser, is the upstream client: on the hot path of every request it
costs a fraction of what a pure-Python client does, which shows in the time to first token.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable

import aiohttp
from fastapi import Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from modelyard.errors import EngineError
from modelyard.gateway.checks import state_of
from modelyard.gateway.exchange import TAIL, Exchange, with_prediction_usage
from modelyard.http_errors import engine_refusal, error_response, is_ours, sse_error

LARGE = 1 << 20  # bytes of a body above which aiohttp wants a file-like object (audio, images)

log = logging.getLogger(__name__)


class Unreachable(Exception):
    """The engine did not take the request: nothing reached the client yet, so it may go again.
    ``dead``: no connection could be made (the engine has most likely just died); else it
    dropped the connection before answering (a kept-alive one it closed as it was reused, or one
    of a burst it could not take)."""

    def __init__(self, url: str, *, dead: bool) -> None:
        super().__init__(url)
        self.dead = dead


def unreachable(url: str, e: aiohttp.ClientConnectionError) -> Unreachable:
    dead = isinstance(e, aiohttp.ClientConnectorError)
    log.log(logging.WARNING if dead else logging.INFO, "engine at %s did not take the request: %s", url, e)
    return Unreachable(url, dead=dead)


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


async def forward(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    *,
    stream: bool,
    done: Callable[[], None],
    headers: dict[str, str],
    exchange: Exchange,
    content_type: str = "application/json",
    quiet_usage: bool = False,
) -> Response:
    """POST ``body`` (JSON unless ``content_type`` says otherwise) to ``url`` with ``headers``
    (the engine's key). ``done`` is called exactly once, when the answer is finished (or failed,
    or the client went away): it frees the queue slot; then ``exchange`` records the request.
    Raises Unreachable when the engine did not take the request (``exchange`` goes on then).
    ``quiet_usage``: the stream's usage event was asked for by the gateway, not the client, and
    is counted but not relayed."""
    data = body if len(body) <= LARGE else io.BytesIO(body)  # a big one goes in pieces
    try:
        upstream = await session.post(url, data=data, headers={**headers, "Content-Type": content_type})
    except aiohttp.ClientConnectionError as e:  # refused, reset, dropped: no answer began
        done()
        raise unreachable(url, e) from e
    except (aiohttp.ClientError, OSError) as e:
        done()
        log.warning("engine at %s failed: %s", url, e)
        return _engine_down(f"the engine did not answer: {e.__class__.__name__}", exchange)
    if not stream or upstream.status != 200:
        try:
            raw = await upstream.read()
        except (aiohttp.ClientError, OSError) as e:
            return _engine_down(f"the engine failed while answering: {e.__class__.__name__}", exchange)
        finally:
            upstream.release()
            done()
        if upstream.status == 200:
            exchange.answered(raw)
            if exchange.timings.drafted:
                raw = with_prediction_usage(raw)
        elif not is_ours(raw):  # an engine's own error shape: the documented one, its message kept
            answer = error_response(engine_refusal(upstream.status, raw))
            exchange.finish(answer.status_code)
            return answer
        exchange.finish(upstream.status)
        kind = upstream.headers.get("Content-Type", "application/json")  # text and subtitles too
        return Response(raw, status_code=upstream.status, media_type=kind)

    async def relay() -> AsyncIterator[bytes]:
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
            log.warning("engine stream from %s broke: %s", url, e)
            status = 502
            yield sse_error(
                EngineError(f"the engine stopped while answering ({e.__class__.__name__}); it is restarting")
            )
        finally:
            # A stream cut short (the client left) closes the connection, which stops the
            # engine's generation; a finished one goes back to the pool.
            if upstream.content.at_eof():
                upstream.release()
            else:
                upstream.close()
                status = 499 if status == 200 else status
            done()
            if not counted:
                exchange.answered(b"".join(tail))
                exchange.finish(status)

    return EventStream(relay())


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
    which closes the engine's stream."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        self.chunks = chunks

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
        if relay.done() and not relay.cancelled() and relay.exception() is not None:
            raise relay.exception()  # type: ignore[misc]

    async def _relay(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        try:
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await self.chunks.aclose()  # type: ignore[attr-defined]


def _engine_down(message: str, exchange: Exchange) -> Response:
    exchange.finish(502)
    return error_response(EngineError(message))
