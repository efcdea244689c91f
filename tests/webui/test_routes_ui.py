"""The Routes page in Chromium: a route over two servers that already run is made in the page
(targets picked from the library, weighted, reordered), answers a request as a model, shows what
each target served, is changed and deleted."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from browser import Shots
from conftest import RunningServer
from fake_engine import FakeEngine

pytestmark = pytest.mark.browser


def test_make_use_change_and_delete_a_route(page: Page, shots: Shots, server: RunningServer) -> None:
    near, far = FakeEngine(), FakeEngine()
    try:
        for name, engine in (("near", near), ("far", far)):
            r = server.http.post("/api/models", json={"url": engine.start(), "name": name})
            assert r.status_code == 201, r.text
        page.goto("/#/routes")
        expect(page.get_by_text("No route yet")).to_be_visible()
        page.get_by_role("button", name="New route").click()
        form = page.get_by_role("form", name="New route")
        form.get_by_label("Name").fill("team")
        form.get_by_label("Description").fill("far first")
        form.get_by_role("button", name="Add a target").click()
        form.get_by_role("button", name="Add a target").click()
        form.get_by_label("Model of target 1").select_option("near")
        form.get_by_label("Model of target 2").select_option("far")
        form.get_by_label("Weight of target 1").fill("0")
        form.get_by_role("group", name="Target 2").get_by_role("button", name="Up").click()  # far first
        shots("new-route")
        form.get_by_role("button", name="Save").click()
        route = page.get_by_role("article", name="Route team")
        expect(route.locator("tr[data-target]")).to_have_count(2)
        expect(route.locator("tr[data-target]").first).to_contain_text("far")
        expect(route.locator("tr[data-target='near']")).to_contain_text("0 (fallback)")

        body = {"model": "team", "messages": [{"role": "user", "content": "hi"}]}
        assert server.http.post("/v1/chat/completions", json=body).status_code == 200
        expect(route.locator("tr[data-target='far'] [data-served]")).to_have_text("1")
        expect(route.locator("tr[data-target='far']")).to_contain_text("loaded")
        shots("served")

        route.get_by_role("button", name="Edit").click()
        form = page.get_by_role("form", name="Edit route team")
        form.get_by_role("group", name="Target 2").get_by_role("button", name="Remove").click()
        form.get_by_role("button", name="Save").click()
        expect(route.locator("tr[data-target]")).to_have_count(1)
        assert [t["model"] for t in server.http.get("/api/routes/team").json()["targets"]] == ["far"]

        route.get_by_role("button", name="Delete").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        expect(page.get_by_text("No route yet")).to_be_visible()
        assert server.http.get("/api/routes").json() == []
    finally:
        near.stop()
        far.stop()
