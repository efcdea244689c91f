"""The modelyard server: builds the store and the library from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from modelyard import __version__
from modelyard.api import errors, models
from modelyard.catalog.store import Store
from modelyard.config import Settings
from modelyard.library import Library


def create_app(settings: Settings) -> FastAPI:
    settings.ensure_home()
    store = Store(settings.catalog_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="modelyard", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.library = Library(store)
    errors.install(app)
    app.include_router(models.router)

    @app.get("/api/health", tags=["server"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
