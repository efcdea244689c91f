"""Screenshots of the browser tests, kept as artifacts in test-artifacts/web/<test>/."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

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
