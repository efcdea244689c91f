"""The modelyard server: builds the store and the library from the settings."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelyard import __version__
from modelyard.access.files import ClientFiles
from modelyard.access.folders import Folders
from modelyard.access.keys import ADOPTED_KEY, Keys
from modelyard.address import IDLE_CONNECTION_S
from modelyard.api import (
    backends,
    batches,
    compose,
    create,
    deployments,
    downloads,
    errors,
    model_routes,
    models,
    monitor,
    runtime,
    specs,
    ui,
    usage,
    workers,
)
from modelyard.api import keys as keys_api
from modelyard.api.guard import Guard
from modelyard.api.hot import HotPath
from modelyard.backends.registry import Backends
from modelyard.batches.files import Files
from modelyard.batches.jobs import Batches
from modelyard.catalog.store import Store
from modelyard.compose.vectors import VectorStores
from modelyard.config import Settings
from modelyard.conversations import Conversations
from modelyard.create.jobs import Creations
from modelyard.deployments.apply import Applier
from modelyard.deployments.deployer import Deployer
from modelyard.gateway import batches as batch_routes
from modelyard.gateway import messages, responses
from modelyard.gateway import routes as gateway
from modelyard.gateway.coalesce import Coalescer
from modelyard.gateway.upstream import Upstream
from modelyard.hub.jobs import Downloads
from modelyard.library import Library
from modelyard.metrics import CONTENT_TYPE, Metrics
from modelyard.monitor.sampler import Monitor
from modelyard.ollama.app import create_ollama_app
from modelyard.runtime.admission import Admission
from modelyard.runtime.executors import executor_for
from modelyard.runtime.routes import Routes
from modelyard.runtime.runtime import Runtime
from modelyard.tracing import Tracing
from modelyard.usage.meter import Meter
from modelyard.usage.quotas import Quotas


def create_app(settings: Settings) -> FastAPI:
    settings.ensure_home()
    store = Store(settings.catalog_url)
    library = Library(store)
    keys = Keys(store)
    if settings.admin_key:
        keys.adopt(ADOPTED_KEY, settings.admin_key)
    meter = Meter(store)
    quotas = Quotas(meter)
    metrics = Metrics()
    routes = Routes(store)
    tracing = Tracing.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.upstream = Upstream()
        backends = Backends.from_settings(settings)
        executor = executor_for(settings, backends)
        app.state.runtime = runtime = Runtime(
            settings, library, executor=executor, backends=backends, quotas=quotas
        )
        app.state.admission = Admission(runtime, routes)
        meter.start()
        await runtime.start()
        await app.state.conversations.recover()
        await app.state.batches.recover(after=runtime.restored())
        app.state.monitor = Monitor(
            interval=settings.monitor_interval,
            pressure=settings.memory_pressure,
            on_pressure=runtime.watching.relieve_pressure if settings.pressure_unload else None,
        )
        app.state.monitor.start()
        app.state.downloads = Downloads(settings, library)
        app.state.deployer = Deployer(library, runtime, app.state.downloads)
        app.state.applier = Applier(library, runtime, app.state.downloads, app.state.deployer, routes)
        await app.state.downloads.start()
        app.state.installs = runtime.installs
        app.state.creations = Creations(
            settings,
            library,
            app.state.folders,
            lambda: create.memory_now(app.state.monitor),
            runtime.installs,
        )
        metrics.watch(runtime, app.state.monitor, app.state.downloads, routes)
        try:
            yield
        finally:
            await app.state.batches.close()
            await app.state.conversations.close()
            await app.state.creations.close()
            await app.state.installs.close()
            await app.state.downloads.close()
            await app.state.monitor.stop()
            await runtime.close()
            await meter.close()
            await app.state.upstream.close()
            await asyncio.to_thread(app.state.tracing.close)  # the last spans go out
            store.close()

    app = FastAPI(title="modelyard", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.library = library
    app.state.routes = routes
    app.state.keys = keys
    app.state.folders = Folders(settings, store, keys)
    app.state.client_files = ClientFiles(app.state.folders, keys_may_name_paths=settings.client_paths)
    app.state.coalescer = Coalescer()
    app.state.vector_stores = VectorStores(settings.home / "vector-stores")
    app.state.conversations = Conversations(store, settings.responses_keep)
    app.state.files = Files(store, settings.files_dir, settings.max_file)
    app.state.batches = Batches(store, app.state.files, batch_routes.sender(app, keys))
    app.state.meter = meter
    app.state.quotas = quotas
    app.state.metrics = metrics
    app.state.tracing = tracing
    errors.install(app)
    app.add_middleware(Guard, settings=settings, keys=keys)
    if settings.cors_origins:  # outside the guard: it answers browsers' preflight requests
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "X-Api-Key"],
        )
    app.router.routes.extend(gateway.hot_routes())  # first: routes match in order; /v1 is the hot path
    app.include_router(gateway.router)
    app.include_router(messages.router)
    app.include_router(responses.router)
    app.include_router(batch_routes.router)
    app.include_router(models.router)
    app.include_router(runtime.router)
    app.include_router(deployments.router)
    app.include_router(specs.router)
    app.include_router(compose.router)
    app.include_router(monitor.router)
    app.include_router(downloads.hub_router)
    app.include_router(downloads.router)
    app.include_router(keys_api.router)
    app.include_router(model_routes.router)
    app.include_router(usage.router)
    app.include_router(batches.router)
    app.include_router(create.router)
    app.include_router(backends.router)
    app.include_router(workers.router)

    @app.get("/metrics", tags=["server"], response_class=Response)
    async def prometheus() -> Response:
        """Prometheus metrics, in its text format (an admin key once keys exist). In the loop:
        the collector reads the runtime's state, which only the loop changes."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/api/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    ui.mount(app, settings.ui_dir)  # last: it answers every path the API does not
    return app


class Listeners:
    """One server, two listeners: what comes in on the Ollama port goes to the Ollama API, but
    for its OpenAI API (/v1, as Ollama serves it there too); the rest (and the lifespan, which
    starts the runtime both use) to modelyard's app."""

    def __init__(self, main: ASGIApp, ollama: ASGIApp, ollama_port: int) -> None:
        self.main = main
        self.ollama = ollama
        self.ollama_port = ollama_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        on_ollama = scope["type"] != "lifespan" and server is not None and server[1] == self.ollama_port
        path: str = scope.get("path", "")
        if on_ollama and not (path == "/v1" or path.startswith("/v1/")):
            await self.ollama(scope, receive, send)
        else:
            await self.main(scope, receive, send)


def server_of(app: FastAPI) -> tuple[uvicorn.Server, list[socket.socket]]:
    """The uvicorn server that runs ``app`` and its sockets: the settings' host and port, and
    the Ollama port when set."""
    settings: Settings = app.state.settings
    served = asgi_app(app)

    def config(port: int) -> uvicorn.Config:
        return uvicorn.Config(
            served, host=settings.host, port=port, log_level="warning", access_log=False,
            timeout_keep_alive=IDLE_CONNECTION_S,
        )  # fmt: skip

    main = config(settings.port)
    sockets = [main.bind_socket()]
    if settings.ollama_port is not None:  # the same server on a second socket
        sockets.append(config(settings.ollama_port).bind_socket())
    return uvicorn.Server(main), sockets


def asgi_app(app: FastAPI) -> ASGIApp:
    """What the server runs: ``app`` with the OpenAI endpoints' hot path in front (without CORS:
    its middleware must see every request), and the Ollama listener's app beside it when
    MODELYARD_OLLAMA_PORT is set (behind the same guard: hosts, origins, keys, bodies)."""
    settings: Settings = app.state.settings
    keys: Keys = app.state.keys
    main: ASGIApp = app
    if not settings.cors_origins:
        main = HotPath(app, lambda handler: Guard(handler, settings=settings, keys=keys))
    if settings.ollama_port is None:
        return main
    ollama = Guard(create_ollama_app(app), settings=settings, keys=keys, ollama=True)
    return Listeners(main, ollama, settings.ollama_port)
