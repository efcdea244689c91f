"""Requests the gateway makes on a client's behalf and reads itself (the Ollama API translates
into them): the same checks, queue, engines and retries as a /v1 request, with the engine's
answer handed to the caller instead of relayed as it came."""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from fastapi import Request

from modelyard.backends.base import Backend
from modelyard.catalog.records import Model
from modelyard.errors import EngineError, ModelyardError
from modelyard.gateway.checks import caller_of, check, fits_context, gave_up
from modelyard.gateway.exchange import TAIL, Exchange
from modelyard.gateway.proxy import unreachable, upstream_of
from modelyard.http_errors import engine_refusal, status_of
from modelyard.runtime.queue import ClientGone
from modelyard.runtime.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Target:
    """The model a request is for, as the gateway resolved and checked it."""

    model: Model
    adapter: str | None
    backend: Backend

    @property
    def served(self) -> str:
        """The name the engine answers to for it."""
        return self.backend.served_name(self.model, self.adapter)


def resolve(runtime: Runtime, request: Request, name: str, endpoint: str) -> Target:
    """The model ``name`` names, which this caller may use and which serves ``endpoint``."""
    model, adapter = runtime.library.resolve(name)
    caller_of(request).check_model(model.name)
    backend = runtime.backend_for(model)
    check(backend, model, endpoint)
    return Target(model, adapter, backend)


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
    runtime: Runtime,
    request: Request,
    target: Target,
    endpoint: str,
    path: str,
    payload: dict[str, Any],
    *,
    load: bool = False,
    named: bool = True,
) -> AsyncIterator[Answer]:
    """POST ``payload`` (its model set to the served name, unless ``named`` is off: an API with
    no such field) to an instance of ``target`` and hold the answer open; the queue slot is freed
    when the block ends, and the request is counted in the metrics and the usage. ``load``: load
    the model when it is not (as Ollama does), whether or not its autoload is on."""
    exchange = Exchange.of(request, target.model.name, endpoint)
    status = 502
    try:
        body = orjson.dumps({**payload, "model": target.served} if named else payload)
        if endpoint in ("chat", "completions"):
            fits_context(body, target.model, runtime.context_of(target.model))
        by = caller_of(request).account
        dropped = refused = 0
        while True:
            queue, slot = await runtime.acquire(
                target.model, target.adapter, request.is_disconnected, load=load, by=by
            )
            exchange.waited()
            session = upstream_of(request).session(fresh=dropped > 0)
            headers = {**slot.headers, "Content-Type": "application/json"}
            try:
                upstream = await session.post(slot.url + path, data=body, headers=headers)
            except aiohttp.ClientConnectionError as e:
                queue.release(slot)
                if unreachable(slot.url + path, e).dead:
                    runtime.unreachable(target.model.name, slot)
                    refused += 1
                else:
                    dropped += 1
                if gave_up(dropped, refused):
                    raise EngineError(f"no instance of {target.model.name!r} answered") from None
                exchange.retried()
                continue
            except (aiohttp.ClientError, OSError) as e:
                queue.release(slot)
                raise EngineError(f"the engine did not answer: {e.__class__.__name__}") from None
            try:
                status = 499  # unless the block ends: the client left
                yield Answer(upstream, exchange)
                status = upstream.status
            finally:
                if upstream.content.at_eof():
                    upstream.release()
                else:
                    upstream.close()  # cut short: the engine stops generating
                queue.release(slot)
            return
    except ClientGone:
        status = 499
        raise
    except ModelyardError as e:
        status = status_of(e)[0]
        raise
    finally:
        exchange.finish(status)


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
