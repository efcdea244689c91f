"""Upscaling through the gateway: tiny ESRGANs (a safetensors file and a .pth pickle) on the
runner, their pixels compared with the same weights run by spandrel in-process."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from builders import data_url, png_of
from builders import noise_picture as picture
from conftest import RunningServer, serve
from torch_models import write_tiny_esrgan

pytestmark = pytest.mark.engine


def decoded(b64: str) -> Any:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")).astype(int)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("upscalers")
    return {
        "esrgan-4x": write_tiny_esrgan(root / "4x-tiny.safetensors", scale=4),
        "esrgan-2x": write_tiny_esrgan(root / "2x-tiny.pth", scale=2, seed=1),
    }


@pytest.fixture(scope="module")
def server(weights: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(tmp_path_factory.mktemp("home"), one_per_category=False) as running:
        for name, path in weights.items():
            r = running.http.post("/api/models", json={"path": str(path), "name": name})
            assert r.status_code in (200, 201), r.text
            r = running.http.post(f"/api/models/{name}/load", json={})
            assert r.status_code == 200, r.text
        yield running


def in_process(path: Path, image: Any) -> Any:
    """spandrel's output for ``image``, as 8-bit pixels."""
    import torch

    from modelyard.runners.standins import torchvision_stand_in

    with torchvision_stand_in():
        from spandrel import ModelLoader

    model = ModelLoader().load_from_file(path).eval()
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.inference_mode():
        out = model(pixels)[0].permute(1, 2, 0).clamp(0, 1)
    return (out * 255).round().to(torch.uint8).numpy().astype(int)


def test_upscalers_are_detected_from_their_tensor_names(server: RunningServer) -> None:
    for name, fmt in (("esrgan-4x", "safetensors"), ("esrgan-2x", "pytorch")):
        model = server.http.get(f"/api/models/{name}").json()
        assert model["category"] == "upscale"
        assert model["architecture"] == "esrgan"
        assert model["format"] == fmt
        assert model["loaders"] == ["spandrel"]
    (health,) = [i for i in server.http.get("/api/instances").json() if i["model"] == "esrgan-2x"]
    assert health["state"] == "running"


@pytest.mark.parametrize("name", ["esrgan-4x", "esrgan-2x"])
def test_upscaled_pixels_are_spandrels(server: RunningServer, weights: dict[str, Path], name: str) -> None:
    image = picture(1, (40, 30))
    r = server.http.post("/v1/images/upscale", json={"model": name, "image": data_url(image), "tile_size": 0})
    assert r.status_code == 200, r.text
    (out,) = r.json()["data"]
    expected = in_process(weights[name], image)
    got = decoded(out["b64_json"])
    assert got.shape == expected.shape
    assert (out["width"], out["height"]) == (expected.shape[1], expected.shape[0])
    assert np.array_equal(got, expected)


def test_tiles_join_without_seams(server: RunningServer, weights: dict[str, Path]) -> None:
    image = picture(2, (70, 50))
    expected = in_process(weights["esrgan-4x"], image)
    r = server.http.post(
        "/v1/images/upscale", json={"model": "esrgan-4x", "image": data_url(image), "tile_size": 16}
    )
    assert r.status_code == 200, r.text
    got = decoded(r.json()["data"][0]["b64_json"])
    assert np.abs(got - expected).max() <= 1  # 15 tiles, each with its borders: the whole image's pixels


def test_another_scale_and_a_form(server: RunningServer, weights: dict[str, Path]) -> None:
    from PIL import Image

    image = picture(3, (32, 24))
    r = server.http.post(
        "/v1/images/upscale",
        data={"model": "esrgan-4x", "scale": "2"},
        files={"image": ("photo.png", png_of(image), "image/png")},
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["scale"] == 2
    got = decoded(answer["data"][0]["b64_json"])
    four = Image.fromarray(in_process(weights["esrgan-4x"], image).astype(np.uint8))
    expected = np.asarray(four.resize((64, 48), Image.Resampling.LANCZOS)).astype(int)
    assert got.shape == (48, 64, 3)
    assert np.array_equal(got, expected)


def test_bad_upscale_requests_are_refused_clearly(server: RunningServer) -> None:
    r = server.http.post(
        "/v1/images/upscale", json={"model": "esrgan-4x", "image": "data:image/png;base64,bm90"}
    )
    assert r.status_code == 400
    assert "could not be read as an image" in r.json()["error"]["message"]
    big = data_url(picture(4, (1100, 1100)))
    r = server.http.post("/v1/images/upscale", json={"model": "esrgan-4x", "image": big})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("the result would be 4400x4400: at most 4096x4096 pixels")
    r = server.http.post(
        "/v1/images/upscale", json={"model": "esrgan-4x", "image": [data_url(picture(5, (8, 8)))] * 17}
    )
    assert r.status_code == 400
    assert "at most 16 images" in r.json()["error"]["message"]
    r = server.http.post("/v1/images/upscale", json={"model": "esrgan-4x", "image": big, "scale": 9})
    assert r.status_code == 400
    r = server.http.post("/v1/images/captions", json={"model": "esrgan-4x", "image": big})
    assert r.status_code == 400
    assert "upscale model" in r.json()["error"]["message"]
    states = {i["model"]: i["state"] for i in server.http.get("/api/instances").json()}
    assert states == {"esrgan-4x": "running", "esrgan-2x": "running"}


def test_a_pickle_that_is_no_upscaler_is_not_taken_for_one(tmp_path: Path) -> None:
    import torch

    from modelyard.formats.detect import inspect_path

    torch.save({"encoder.layer.0.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    insp = inspect_path(tmp_path / "other.pth")
    assert insp.category != "upscale"
    (tmp_path / "broken.pth").write_bytes(b"PK\x03\x04 not really a zip")
    assert inspect_path(tmp_path / "broken.pth").category != "upscale"


def test_generated_images_go_through_the_upscaler(
    server: RunningServer, sd_zoo: dict[str, Path], weights: dict[str, Path]
) -> None:
    from PIL import Image

    r = server.http.post("/api/models", json={"path": str(sd_zoo["sd"]), "name": "tiny-sd"})
    assert r.status_code in (200, 201), r.text
    assert server.http.post("/api/models/tiny-sd/load", json={}).status_code == 200
    ask = {"model": "tiny-sd", "prompt": "a cat on the moon", "size": "32x32", "steps": 2, "seed": 7}
    plain = server.http.post("/v1/images/generations", json=ask).json()["data"][0]["b64_json"]
    made = Image.open(io.BytesIO(base64.b64decode(plain))).convert("RGB")

    r = server.http.post("/v1/images/generations", json={**ask, "upscale": "esrgan-2x"})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["upscaled_by"] == "esrgan-2x"
    got = decoded(answer["data"][0]["b64_json"])
    assert got.shape == (64, 64, 3)
    assert np.array_equal(got, in_process(weights["esrgan-2x"], made))

    r = server.http.post(
        "/v1/images/generations",
        json={**ask, "upscale": "esrgan-4x", "upscale_scale": 2, "response_format": "url"},
    )
    assert r.status_code == 200, r.text
    (item,) = r.json()["data"]
    with Image.open(item["path"]) as saved:
        assert saved.size == (64, 64)
    assert item["url"] == Path(item["path"]).as_uri()

    r = server.http.post("/v1/images/generations", json={**ask, "upscale": "nothing-such"})
    assert r.status_code == 404
    r = server.http.post("/v1/images/generations", json={**ask, "upscale": None})
    assert r.status_code == 200
    assert r.json()["data"][0]["b64_json"] == plain


def test_an_upscaler_for_other_channels_is_refused_at_load(server: RunningServer, tmp_path: Path) -> None:
    gray = write_tiny_esrgan(tmp_path / "gray.safetensors", channels=1)
    assert server.http.post("/api/models", json={"path": str(gray), "name": "gray"}).status_code == 201
    r = server.http.post("/api/models/gray/load", json={})
    assert r.status_code >= 400
    assert "takes 1 channels and makes 1: modelyard sends and answers RGB images" in r.text
    running = {i["model"] for i in server.http.get("/api/instances").json() if i["state"] == "running"}
    assert {"esrgan-4x", "esrgan-2x"} <= running
