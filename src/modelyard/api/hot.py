"""The hot path: a POST to an OpenAI endpoint goes through the guard straight to its handler,
past FastAPI's middleware stack and router, which cost more per request than the rest of the
gateway (measured by bench/throughput.py). Everything else goes to the app as usual."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard.api.errors import internal, refused
from modelyard.errors import ModelyardError
from modelyard.gateway.routes import HANDLERS
from modelyard.http_errors import OPENAI


class HotPath:
    """``guard`` wraps the handlers as it wraps the app (hosts, origins, keys, bodies)."""

    def __init__(self, app: FastAPI, guard: Callable[[ASGIApp], ASGIApp]) -> None:
        self.app = app
        self.handlers = HANDLERS
        self.guarded = guard(self._handle)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.handlers:
            scope["app"] = self.app  # what request.app is to the handlers
            await self.guarded(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await self.handlers[scope["path"]](request)
        except ModelyardError as e:
            response = OPENAI.answer(e)
        except HTTPException as e:
            response = refused(scope["path"], e)
        except Exception as e:
            response = internal(e)
        await response(scope, receive, send)
