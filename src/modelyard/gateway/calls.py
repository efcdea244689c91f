"""Requests the gateway makes on a client's behalf and reads itself (the Ollama API translates
into them): the same checks, queue, engines and retries as a /v1 request, with the engine's
answer handed to the caller instead of relayed as it came."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from fastapi import Request

from modelyard.backends.base import Backend
from modelyard.catalog.records import Model
from modelyard.errors import EngineError, ModelyardError
from modelyard.gateway.checks import RETRIES, caller_of, check, fits_context
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


@contextlib.asynccontextmanager
async def engine_call(
    runtime: Runtime,
    session: aiohttp.ClientSession,
    request: Request,
    target: Target,
    endpoint: str,
    path: str,
    payload: dict[str, Any],
    *,
    load: bool = False,
    named: bool = True,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """POST ``payload`` (its model set to the served name, unless ``named`` is off: an API with
    no such field) to an instance of ``target`` and hold the answer open; the queue slot is freed
    when the block ends. ``load``: load the model when it is not (as Ollama does), whether or not
    its autoload is on."""
    body = orjson.dumps({**payload, "model": target.served} if named else payload)
    if endpoint in ("chat", "completions"):
        fits_context(body, target.model, runtime.context_of(target.model))
    for attempt in range(RETRIES + 1):
        queue, slot = await runtime.acquire(target.model, target.adapter, request.is_disconnected, load=load)
        try:
            upstream = await session.post(
                slot.url + path, data=body, headers={**slot.headers, "Content-Type": "application/json"}
            )
        except aiohttp.ClientConnectionError:
            queue.release(slot)
            runtime.unreachable(target.model.name, slot)
            if attempt == RETRIES:
                raise EngineError(f"no instance of {target.model.name!r} answered") from None
            continue
        except (aiohttp.ClientError, OSError) as e:
            queue.release(slot)
            raise EngineError(f"the engine did not answer: {e.__class__.__name__}") from None
        try:
            yield upstream
        finally:
            if upstream.content.at_eof():
                upstream.release()
            else:
                upstream.close()  # cut short: the engine stops generating
            queue.release(slot)
        return


def engine_failure(status: int, raw: bytes) -> EngineError:
    """An engine's error answer as an error with its message."""
    try:
        error = orjson.loads(raw).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (orjson.JSONDecodeError, AttributeError):
        message = None
    return EngineError(f"the engine answered {status}: {message or raw[:200].decode(errors='replace')}")


async def read_json(upstream: aiohttp.ClientResponse) -> dict[str, Any]:
    """The engine's whole JSON answer; EngineError when it is an error."""
    try:
        raw = await upstream.read()
    except (aiohttp.ClientError, OSError) as e:
        raise EngineError(f"the engine failed while answering: {e.__class__.__name__}") from None
    if upstream.status != 200:
        raise engine_failure(upstream.status, raw)
    answer: dict[str, Any] = orjson.loads(raw)
    return answer


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


async def events(upstream: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """The JSON events of an engine's server-sent stream, until [DONE]; EngineError for an error
    answer or an error event."""
    if upstream.status != 200:
        raise engine_failure(upstream.status, await upstream.read())
    try:
        async for line in upstream.content:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            event: dict[str, Any] = orjson.loads(data)
            if "error" in event:
                raise engine_failure(500, data)
            yield event
    except (aiohttp.ClientError, OSError) as e:
        raise EngineError(f"the engine stopped while answering ({e.__class__.__name__})") from None
