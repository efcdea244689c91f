"""The playground's image modes in Chromium: a caption, an upscale with its before/after view, and
the faces of a picture, each as the API answers for the same image."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from browser import browsing_with_shots
from builders import noise_picture as picture
from builders import png_of
from conftest import serve
from torch_models import faces_picture, write_tiny_blip, write_tiny_esrgan, write_tiny_face_pack

pytestmark = pytest.mark.browser


def pick(page: Page, name: str, data: bytes) -> None:
    page.get_by_label("Image file").set_input_files({"name": name, "mimeType": "image/png", "buffer": data})


def test_playground_caption_upscale_and_faces(browser: Browser, tmp_path: Path) -> None:
    models = {
        "blip": write_tiny_blip(tmp_path / "tiny-blip"),
        "esrgan": write_tiny_esrgan(tmp_path / "4x-tiny.safetensors", scale=4),
        "faces": write_tiny_face_pack(tmp_path / "faces"),
    }
    with serve(tmp_path / "home") as server:
        api = server.http
        for name, path in models.items():
            assert api.post("/api/models", json={"path": str(path), "name": name}).status_code == 201
            assert api.post(f"/api/models/{name}/load", json={}).status_code == 200
        with browsing_with_shots(browser, server.url, "test_playground_caption_upscale_and_faces") as (
            page,
            shots,
        ):
            page.goto("/#/playground")

            # A caption: the one the API gives for the same picture.
            page.get_by_role("tab", name="Caption").click()
            expect(page.get_by_label("Model", exact=True)).to_have_value("blip")
            photo = png_of(picture(1, (48, 40)))
            pick(page, "photo.png", photo)
            page.get_by_label("Max tokens").fill("6")
            page.get_by_role("button", name="Caption", exact=True).click()
            url = "data:image/png;base64," + base64.b64encode(photo).decode()
            expected = api.post(
                "/v1/images/captions", json={"model": "blip", "image": url, "max_tokens": 6}
            ).json()
            expect(page.get_by_test_id("caption")).to_have_text(expected["data"][0]["caption"])
            shots("caption")

            # An upscale: the API's pixels, beside the picture as it was.
            page.get_by_role("tab", name="Upscale").click()
            expect(page.get_by_label("Model", exact=True)).to_have_value("esrgan")
            small = png_of(picture(2, (40, 30)))
            pick(page, "small.png", small)
            page.get_by_role("button", name="Upscale", exact=True).click()
            expect(page.get_by_test_id("sizes")).to_contain_text("before 40x30, after 160x120")
            url = "data:image/png;base64," + base64.b64encode(small).decode()
            bigger = api.post("/v1/images/upscale", json={"model": "esrgan", "image": url}).json()["data"][0]
            after = page.get_by_role("img", name="after").get_attribute("src") or ""
            assert after == "data:image/png;base64," + bigger["b64_json"]
            before = page.get_by_role("img", name="before")
            expect(before).to_have_attribute("style", "clip-path: inset(0px 50% 0px 0px);")
            page.get_by_role("slider", name="Before and after").fill("25")
            expect(before).to_have_attribute("style", "clip-path: inset(0px 75% 0px 0px);")
            shots("upscale-before-after")

            # Faces: a box for each the API finds.
            page.get_by_role("tab", name="Faces").click()
            expect(page.get_by_label("Model", exact=True)).to_have_value("faces")
            crowd = png_of(faces_picture(3, [(64, 64), (320, 192)]))
            pick(page, "crowd.png", crowd)
            page.get_by_role("button", name="Find faces").click()
            rows = page.get_by_label("Faces", exact=True).locator("tbody tr")
            expect(rows).to_have_count(2)
            expect(page.locator("svg .face rect")).to_have_count(2)
            url = "data:image/png;base64," + base64.b64encode(crowd).decode()
            found = api.post("/v1/embeddings", json={"model": "faces", "input": url}).json()["data"]
            boxes = [", ".join(str(round(v)) for v in f["bbox"]) for f in found]
            assert rows.locator("td:nth-child(2)").all_inner_texts() == boxes
            expect(rows.first.locator("td").last).to_have_text("64 numbers")
            shots("faces")
