"""llama-server built on the first use of a GGUF model, in the web UI: Load on a machine with
no engine for it shows the install's progress in the library, then the model loads (the build
is a stand-in: tests/first_use.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

import builders as b
from browser import browsing_with_shots
from conftest import serve
from first_use import no_gguf_engine

pytestmark = [pytest.mark.browser, pytest.mark.engine]


def test_load_shows_the_build_it_started_then_loads(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_gguf_engine(monkeypatch, pause=1.0)
    gguf = b.write_llama_gguf(tmp_path / "models" / "tiny-chat.gguf", chat_template=b.CHAT_TEMPLATE)[0]
    with serve(tmp_path / "home", llama_server=None) as server:
        assert server.http.post("/api/models", json={"path": str(gguf)}).status_code == 201
        with browsing_with_shots(browser, server.url, "first-use-build") as (page, shots):
            page.goto("/")
            page.get_by_role("radio", name="Select tiny-chat").check()
            page.get_by_role("toolbar").get_by_role("button", name="Load", exact=True).click()
            page.get_by_role("dialog").get_by_role("button", name="Load", exact=True).click()
            expect(page.get_by_text("installing llama.cpp, build llama-server")).to_be_visible()
            shots("building-llama-server")
            row = page.locator('tr[data-model="tiny-chat"]')
            expect(row.locator(".status")).to_have_text("loaded", timeout=60_000)
        assert (tmp_path / "home" / "bin" / "llama-server").is_file()
