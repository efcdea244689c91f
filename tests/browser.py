"""Screenshots of the browser tests, kept as artifacts in test-artifacts/web/<test>/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "web"


class Shots:
    """Numbered screenshots of one test, kept as artifacts."""

    def __init__(self, page: Page, test: str) -> None:
        self.page = page
        self.folder = ARTIFACTS / test
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.n = 0

    def __call__(self, what: str) -> None:
        self.n += 1
        self.page.screenshot(path=str(self.folder / f"{self.n:02d}-{what}.png"), full_page=True)


@contextmanager
def browsing(browser: Browser, url: str) -> Iterator[Page]:
    """A page on the server at ``url``; afterwards, what the page threw fails the test."""
    context = browser.new_context(base_url=url, viewport={"width": 1360, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.set_default_timeout(20_000)
    try:
        yield p
    finally:
        context.close()
    assert not errors, f"the page threw: {errors}"


@contextmanager
def browsing_with_shots(browser: Browser, url: str, test: str) -> Iterator[tuple[Page, Shots]]:
    """The same, for a test with its own server: screenshots kept, the last one at the end."""
    with browsing(browser, url) as p:
        shots = Shots(p, test)
        try:
            yield p, shots
        finally:
            shots("end")
