"""The Settings page installs llama.cpp's Vulkan build where it offers it: a machine with a GPU's
Vulkan driver. None is here (Mesa's software driver does not count), so the test says there is
one; the build is the real one scripts/test made (MODELYARD_LLAMA_SERVER_VULKAN), installed in
the server's home first, so that the install checks its inputs and keeps it."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from browser import browsing_with_shots
from conftest import serve
from modelyard.api import backends as backends_api

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_vulkan_build_installs_from_the_settings_page(
    browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = Path(os.environ.get("MODELYARD_LLAMA_SERVER_VULKAN", ""))
    assert built.is_file(), "scripts/test builds it and sets MODELYARD_LLAMA_SERVER_VULKAN"
    monkeypatch.setattr(backends_api, "vulkan_drivers", lambda: ["radeon_icd.x86_64"])
    home = tmp_path / "home"
    shutil.copytree(built.parent, home / "bin", ignore=shutil.ignore_patterns("*.log"))
    with (
        serve(home) as server,
        browsing_with_shots(browser, server.url, "test_the_vulkan_build_installs_from_the_settings_page") as (
            page,
            shots,
        ),
    ):
        page.goto("/#/settings")
        row = page.locator("tr[data-backend='llama.cpp']")
        variant = row.get_by_label("Variant of llama.cpp")
        expect(variant).to_have_value("vulkan")  # offered, and picked where a GPU's driver is
        expect(variant.locator("option")).to_have_text(["CPU", "Vulkan (a GPU's driver)"])
        shots("offered")
        row.get_by_role("button", name=re.compile("install", re.IGNORECASE)).click()
        progress = row.get_by_label("Install of llama.cpp")
        expect(progress).to_contain_text("installed:", timeout=300_000)
        shots("installed")
        (job,) = server.http.get("/api/installs").json()
        assert (job["backend"], job["variant"], job["state"]) == ("llama.cpp", "vulkan", "done")
        assert job["where"] == str(home / "bin" / "llama-server")
        stamp = json.loads((home / "bin" / ".llama-server.build.json").read_text())
        assert stamp["inputs"]["variant"] == "vulkan"
        assert "is built from these inputs already" in (home / "bin" / "llama-server-build.log").read_text()
