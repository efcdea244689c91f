"""The modelyard server: builds the store and the library from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from modelyard import __version__
from modelyard.access.folders import Folders
from modelyard.access.keys import Keys
from modelyard.api import deployments, downloads, errors, models, monitor, runtime, specs, ui
from modelyard.api import keys as keys_api
from modelyard.api.guard import Guard
from modelyard.catalog.store import Store
from modelyard.config import Settings
from modelyard.deployments.apply import Applier
from modelyard.deployments.deployer import Deployer
from modelyard.gateway import routes as gateway
from modelyard.gateway.coalesce import Coalescer
from modelyard.gateway.proxy import upstream_session
from modelyard.hub.jobs import Downloads
from modelyard.library import Library
from modelyard.monitor.sampler import Monitor
from modelyard.runtime.runtime import Runtime


def create_app(settings: Settings) -> FastAPI:
    settings.ensure_home()
    store = Store(settings.catalog_url)
    library = Library(store)
    keys = Keys(store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.upstream = upstream_session()
        app.state.runtime = runtime = Runtime(settings, library)
        await runtime.start()
        app.state.monitor = Monitor(
            interval=settings.monitor_interval,
            pressure=settings.memory_pressure,
            on_pressure=runtime.relieve_pressure if settings.pressure_unload else None,
        )
        app.state.monitor.start()
        app.state.downloads = Downloads(settings, library)
        app.state.deployer = Deployer(library, runtime, app.state.downloads)
        app.state.applier = Applier(library, runtime, app.state.downloads, app.state.deployer)
        await app.state.downloads.start()
        try:
            yield
        finally:
            await app.state.downloads.close()
            await app.state.monitor.stop()
            await runtime.close()
            await app.state.upstream.close()
            store.close()

    app = FastAPI(title="modelyard", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.library = library
    app.state.keys = keys
    app.state.folders = Folders(settings, store, keys)
    app.state.coalescer = Coalescer()
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
    app.include_router(models.router)
    app.include_router(runtime.router)
    app.include_router(deployments.router)
    app.include_router(specs.router)
    app.include_router(monitor.router)
    app.include_router(downloads.hub_router)
    app.include_router(downloads.router)
    app.include_router(keys_api.router)

    @app.get("/api/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    ui.mount(app, settings.ui_dir)  # last: it answers every path the API does not
    return app
