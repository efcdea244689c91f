"""The web UI: the static files `npm run build` writes into the package (web/ is their source)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

BUILT = Path(__file__).resolve().parent.parent / "ui"

NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>modelyard</title>
<body style="font:15px system-ui;margin:3em">
<h1>modelyard</h1><p>The web UI is not built. <code>./scripts/setup</code> builds it
(it needs Node.js 20 and npm), then reload this page.</p>
<p>The API is up: <a href="/docs">/docs</a>.</p></body>"""


def mount(app: FastAPI, folder: Path | None = None) -> None:
    """Serve the UI at / after every other route; a page that says how to build it when it is missing."""
    folder = folder or BUILT
    if (folder / "index.html").is_file():
        app.mount("/", StaticFiles(directory=folder, html=True), name="ui")
        return

    @app.get("/", include_in_schema=False)
    def not_built() -> HTMLResponse:
        return HTMLResponse(NOT_BUILT, status_code=503)
