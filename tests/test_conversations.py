"""Stored responses are kept for MODELYARD_RESPONSES_KEEP days: past them they are not found,
and the hourly purge removes them from the catalog."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelyard.catalog.store import Store
from modelyard.conversations import Conversations, input_items
from modelyard.errors import ResponseNotFound

pytestmark = pytest.mark.unit


def answer(rid: str, previous: str | None = None) -> dict[str, object]:
    output = [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": rid}]}]
    return {
        "id": rid,
        "model": "m",
        "status": "completed",
        "previous_response_id": previous,
        "output": output,
    }


def test_responses_past_their_days_are_gone(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'catalog.db'}")
    now = [datetime(2026, 12, 1, tzinfo=UTC)]
    kept = Conversations(store, keep_days=2, now=lambda: now[0])

    async def run() -> None:
        await kept.keep("ann", input_items("hello"), answer("resp_a"))
        now[0] += timedelta(days=1)
        await kept.keep("ann", input_items("again"), answer("resp_b", previous="resp_a"))
        history = await kept.history("resp_b", "ann")
        assert [item["type"] for item in history] == ["message"] * 4
        assert history[1]["content"][0]["text"] == "resp_a"
        with pytest.raises(ResponseNotFound):
            await kept.get("resp_a", None)  # the local user is not ann
        now[0] += timedelta(days=1, hours=1)  # resp_a is past its two days, resp_b is not
        with pytest.raises(ResponseNotFound, match="resp_a"):
            await kept.history("resp_b", "ann")
        assert (await kept.get("resp_b", "ann")).id == "resp_b"
        await kept.keep("ann", input_items("later"), answer("resp_c"))  # an hour on: the purge runs
        assert store.get_response("resp_a", "ann") is None
        assert store.get_response("resp_b", "ann") is not None

    try:
        asyncio.run(run())
    finally:
        store.close()
    assert not Conversations(store, keep_days=0).keeps


def test_a_background_response_a_stopped_server_left_has_failed(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'catalog.db'}")
    kept = Conversations(store, keep_days=30)

    async def run() -> None:
        never: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()
        queued = {**answer("resp_bg"), "status": "queued", "background": True}
        await kept.in_background("ann", input_items("slow"), queued, lambda: never)
        await kept.close()  # the server stops while it runs
        assert (await kept.get("resp_bg", "ann")).response["status"] == "failed"
        left = {**answer("resp_left"), "status": "in_progress", "background": True}
        await kept.keep("ann", input_items("left"), left)  # as a killed server leaves one
        await Conversations(store, keep_days=30).recover()  # the next start
        found = (await kept.get("resp_left", "ann")).response
        assert found["status"] == "failed"
        assert "the server stopped" in found["error"]["message"]

    try:
        asyncio.run(run())
    finally:
        store.close()
