"""A stand-in for a text-generation-inference server that has only TGI's own API (/info,
/health, /generate, /generate_stream): TGI itself cannot run here. It answers a fixed text."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from background import Background


class FakeTgi(Background):
    """TGI's own API (/info, /health, /generate, /generate_stream), answering a fixed text."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    async def info(self, _r: web.Request) -> web.Response:
        return web.json_response({"model_id": "org/tgi-model", "max_total_tokens": 2048})

    async def health(self, _r: web.Request) -> web.Response:
        return web.Response()

    async def generate(self, r: web.Request) -> web.Response:
        body = await r.json()
        self.seen.append(body)
        n = body["parameters"]["max_new_tokens"]
        text = " ".join(["word"] * n)
        return web.json_response(
            {"generated_text": text, "details": {"finish_reason": "length", "generated_tokens": n}}
        )

    async def stream(self, r: web.Request) -> web.StreamResponse:
        body = await r.json()
        self.seen.append(body)
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(r)
        n = body["parameters"]["max_new_tokens"]
        for i in range(n):
            last = i == n - 1
            event = {"token": {"id": i, "text": " word", "special": False},
                     "generated_text": None, "details": {"finish_reason": "length", "generated_tokens": n} if last else None}  # fmt: skip
            await out.write(b"data:" + json.dumps(event).encode() + b"\n\n")
        return out

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/info", self.info), web.get("/health", self.health),
                web.post("/generate", self.generate), web.post("/generate_stream", self.stream)]  # fmt: skip
