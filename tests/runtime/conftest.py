"""Helpers for serving tests: import, load, and a request that holds a slot."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from conftest import RunningServer


def add(server: RunningServer, path: Path, **body: object) -> dict[str, object]:
    r = server.http.post("/api/models", json={"path": str(path), **body})
    assert r.status_code == 201, r.text
    result: dict[str, object] = r.json()
    return result


@asynccontextmanager
async def generating(http: httpx.AsyncClient, body: dict[str, object]) -> AsyncIterator[AsyncIterator[str]]:
    """A streaming completion that has started to generate (it holds a slot) while inside."""
    async with http.stream("POST", "/v1/completions", json=body) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()  # keep a reference: a collected iterator closes the stream
        await lines.__anext__()
        yield lines


def load(server: RunningServer, name: str, **body: object) -> dict[str, object]:
    r = server.http.post(f"/api/models/{name}/load", json=body)
    assert r.status_code == 200, r.text
    result: dict[str, object] = r.json()
    return result
