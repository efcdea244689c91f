"""An aiohttp app served from a thread of its own: the stand-ins for servers that cannot run
here (TGI) or that must misbehave on cue (an engine that drops connections)."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from conftest import free_port


class Background:
    """Subclasses list their routes; ``start`` serves them on 127.0.0.1 and gives the URL."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def start(self) -> str:
        def run() -> None:
            asyncio.set_event_loop(self.loop)
            webapp = web.Application()
            webapp.add_routes(self.routes())
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
