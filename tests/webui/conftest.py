"""A real modelyard server with the built web UI, a fake hub, and Debian's Chromium driven by
Playwright. Screenshots go to test-artifacts/web/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from browser import Shots, browsing
from conftest import RunningServer, serve
from fakehub import FakeHub
from modelyard.api.ui import BUILT

CHROMIUM = os.environ.get("MODELYARD_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    assert (BUILT / "index.html").is_file(), (
        "the web UI is not built: run ./scripts/setup (npm run build in web/)"
    )
    assert Path(CHROMIUM).is_file(), f"no Chromium at {CHROMIUM}: apt-get install chromium"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub()
    fake.start(send_buffer=64 << 10)  # small, so a slow download is slow from its first byte
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def server(tmp_path: Path, hub: FakeHub) -> Iterator[RunningServer]:
    with serve(tmp_path / "home", hf_endpoint=hub.url, monitor_interval=0.5) as running:
        yield running


@pytest.fixture
def page(browser: Browser, server: RunningServer) -> Iterator[Page]:
    with browsing(browser, server.url) as p:
        yield p


@pytest.fixture
def shots(page: Page, request: pytest.FixtureRequest) -> Iterator[Shots]:
    taken = Shots(page, request.node.name)
    yield taken
    taken("end")  # what the page showed at the end, pass or fail
