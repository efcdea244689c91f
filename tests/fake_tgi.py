"""A stand-in for a text-generation-inference server that has only TGI's own API (/info,
/health, /generate, /generate_stream): TGI itself cannot run here. It answers a fixed text."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from aiohttp import web

from conftest import free_port


class FakeTgi:
    """TGI's own API (/info, /health, /generate, /generate_stream), answering a fixed text."""

    def __init__(self) -> None:
        self.port = free_port()
        self.seen: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()

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

    def start(self) -> str:
        def run() -> None:
            asyncio.set_event_loop(self.loop)
            webapp = web.Application()
            webapp.add_routes([web.get("/info", self.info), web.get("/health", self.health),
                               web.post("/generate", self.generate), web.post("/generate_stream", self.stream)])  # fmt: skip
            runner = web.AppRunner(webapp)
            self.loop.run_until_complete(runner.setup())
            self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
            self.runner = runner
            self.ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.ready.wait(10)
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
