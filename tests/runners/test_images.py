"""Image generation through the gateway with a tiny Stable Diffusion pipeline: text-to-image and
image-to-image (OpenAI's multipart form and JSON), base64 and file output, several LoRAs from a
folder, a VAE component from the library, capabilities. Checked against diffusers in-process."""

from __future__ import annotations

import base64
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import RunningServer, serve

pytestmark = pytest.mark.engine


PROMPT = {"prompt": "a cat on the moon", "size": "32x32", "steps": 3, "seed": 7}


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with serve(tmp_path / "home") as running:
        yield running


def pixels(b64: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=np.int16)


def local(sd: Path, *, loras: list[Path] = (), vae: Path | None = None) -> np.ndarray:  # type: ignore[assignment]
    """What diffusers makes in-process from the same seed."""
    from diffusers import AutoencoderKL, AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(sd, local_files_only=True)
    if vae is not None:
        pipe.vae = AutoencoderKL.from_pretrained(vae.parent, local_files_only=True)
    names = []
    for i, f in enumerate(loras):
        with warnings.catch_warnings():  # peft warns that a second adapter joins the first: intended
            warnings.simplefilter("ignore", UserWarning)
            pipe.load_lora_weights(str(f.parent), weight_name=f.name, adapter_name=f"l{i}")
        names.append(f"l{i}")
    if names:
        pipe.set_adapters(names, adapter_weights=[1.0] * len(names))
    return render(pipe)


def render(pipe: Any) -> np.ndarray:
    """The picture PROMPT asks for, made in-process."""
    import torch

    image = pipe(
        "a cat on the moon",
        width=32,
        height=32,
        num_inference_steps=3,
        guidance_scale=7.0,
        generator=torch.Generator(device="cpu").manual_seed(7),
    ).images[0]
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def generate(server: RunningServer, **extra: Any) -> dict[str, Any]:
    r = server.http.post("/v1/images/generations", json={"model": "tiny-sd", **PROMPT, **extra})
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def test_text_to_image_file_output_and_image_to_image(
    server: RunningServer, sd_zoo: dict[str, Path], tmp_path: Path
) -> None:
    model = server.http.post("/api/models", json={"path": str(sd_zoo["sd"]), "name": "tiny-sd"}).json()
    assert model["category"] == "image"
    assert sorted(model["capabilities"]) == ["image-to-image", "text-to-image"]
    assert server.http.post("/api/models/tiny-sd/load", json={}).status_code == 200
    got = pixels(generate(server)["data"][0]["b64_json"])
    assert got.shape == (32, 32, 3)
    assert np.abs(got - local(sd_zoo["sd"])).max() <= 1  # the same image as diffusers in-process
    two = generate(server, n=2)["data"]
    assert len(two) == 2
    url = generate(server, response_format="url")["data"][0]
    path = Path(url["path"])
    assert url["url"] == path.as_uri()
    assert path.parent == tmp_path / "home" / "outputs" / "images"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    png = base64.b64decode(generate(server)["data"][0]["b64_json"])
    form = server.http.post(
        "/v1/images/edits",
        data={"model": "tiny-sd", "prompt": "a dog", "steps": "4", "strength": "0.5", "seed": "1"},
        files={"image": ("in.png", png, "image/png")},
    )
    assert form.status_code == 200, form.text
    edited = pixels(form.json()["data"][0]["b64_json"])
    assert edited.shape == (32, 32, 3)
    as_json = server.http.post(
        "/v1/images/edits",
        json={
            "model": "tiny-sd",
            "prompt": "a dog",
            "steps": 4,
            "strength": 0.5,
            "seed": 1,
            "image": "data:image/png;base64," + base64.b64encode(png).decode(),
        },
    )
    assert as_json.status_code == 200, as_json.text
    assert np.array_equal(pixels(as_json.json()["data"][0]["b64_json"]), edited)

    # capabilities as tagged: without image-to-image, edits are refused
    patched = server.http.patch("/api/models/tiny-sd", json={"capabilities": ["text-to-image"]})
    assert patched.status_code == 200, patched.text
    refused = server.http.post("/v1/images/edits", json={"model": "tiny-sd", "prompt": "x", "image": "aGk="})
    assert refused.status_code == 400
    assert "not tagged image-to-image" in refused.json()["error"]["message"]
    bad = server.http.post(
        "/v1/images/generations", json={"model": "tiny-sd", "prompt": "x", "size": "33x33"}
    )
    assert bad.status_code == 400
    assert "multiples of 8" in bad.json()["error"]["message"]
    wrong = server.http.post(
        "/v1/chat/completions", json={"model": "tiny-sd", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert wrong.status_code == 400


def test_loras_from_a_folder_and_a_vae_component(server: RunningServer, sd_zoo: dict[str, Path]) -> None:
    server.http.post("/api/models", json={"path": str(sd_zoo["sd"]), "name": "tiny-sd"})
    r = server.http.post(
        "/api/models/tiny-sd/adapters", json={"path": str(sd_zoo["styles"]), "name": "styles"}
    )
    assert r.status_code in (200, 201), r.text
    assert server.http.post("/api/models/tiny-sd/load", json={"adapter": "styles"}).status_code == 200
    both = pixels(generate(server, model="tiny-sd:styles")["data"][0]["b64_json"])
    want = local(sd_zoo["sd"], loras=[sd_zoo["styles"] / "ink.safetensors", sd_zoo["style"]])
    assert np.abs(both - want).max() <= 1
    assert np.abs(both - local(sd_zoo["sd"])).max() > 5  # the LoRAs change the picture
    assert server.http.post("/api/models/tiny-sd/unload", json={}).status_code in (200, 204)

    vae = server.http.put("/api/models/tiny-sd/components/vae", json={"path": str(sd_zoo["vae"])})
    assert vae.status_code == 200, vae.text
    assert server.http.post("/api/models/tiny-sd/load", json={}).status_code == 200
    swapped = pixels(generate(server)["data"][0]["b64_json"])
    assert np.abs(swapped - local(sd_zoo["sd"], vae=sd_zoo["vae"])).max() <= 1


def flux_local(folder: Path, *, clip_l: Path | None = None, t5xxl: Path | None = None) -> np.ndarray:
    from diffusers import AutoPipelineForText2Image
    from transformers import CLIPTextModel, T5EncoderModel

    pipe = AutoPipelineForText2Image.from_pretrained(folder, local_files_only=True)
    if clip_l is not None:
        pipe.text_encoder = CLIPTextModel.from_pretrained(clip_l, local_files_only=True)
    if t5xxl is not None:
        pipe.text_encoder_2 = T5EncoderModel.from_pretrained(t5xxl, local_files_only=True)
    return render(pipe)


def test_flux_with_clip_l_and_t5xxl_components(server: RunningServer, flux_zoo: dict[str, Path]) -> None:
    model = server.http.post("/api/models", json={"path": str(flux_zoo["flux"]), "name": "tiny-sd"}).json()
    assert model["template"] == "flux"
    assert server.http.post("/api/models/tiny-sd/load", json={}).status_code == 200
    plain = pixels(generate(server)["data"][0]["b64_json"])
    assert np.abs(plain - flux_local(flux_zoo["flux"])).max() <= 1
    assert server.http.post("/api/models/tiny-sd/unload", json={}).status_code in (200, 204)
    for role in ("clip_l", "t5xxl"):
        r = server.http.put(f"/api/models/tiny-sd/components/{role}", json={"path": str(flux_zoo[role])})
        assert r.status_code == 200, r.text
    assert server.http.post("/api/models/tiny-sd/load", json={}).status_code == 200
    swapped = pixels(generate(server)["data"][0]["b64_json"])
    want = flux_local(flux_zoo["flux"], clip_l=flux_zoo["clip_l"], t5xxl=flux_zoo["t5xxl"])
    assert np.abs(swapped - want).max() <= 1
    assert np.abs(swapped - plain).max() > 5  # the other text encoders change the picture


def test_text_to_video(server: RunningServer, wan: Path) -> None:
    import torch
    from diffusers import DiffusionPipeline
    from PIL import Image

    model = server.http.post("/api/models", json={"path": str(wan), "name": "tiny-wan"}).json()
    assert model["template"] == "video"
    assert model["capabilities"] == ["video"]
    assert server.http.post("/api/models/tiny-wan/load", json={}).status_code == 200
    body = {"model": "tiny-wan", "prompt": "a cat", "size": "16x16", "frames": 5, "steps": 2, "seed": 3}
    r = server.http.post("/v1/videos/generations", json={**body, "guidance_scale": 6.0})
    assert r.status_code == 200, r.text
    item = r.json()["data"][0]
    assert (item["mime_type"], item["frames"], item["fps"]) == ("image/webp", 5, 16)
    clip = Image.open(io.BytesIO(base64.b64decode(item["b64_json"])))
    assert clip.n_frames == 5
    assert clip.size == (16, 16)
    pipe = DiffusionPipeline.from_pretrained(wan, local_files_only=True)
    frames = pipe(
        "a cat",
        height=16,
        width=16,
        num_frames=5,
        num_inference_steps=2,
        guidance_scale=6.0,
        generator=torch.Generator(device="cpu").manual_seed(3),
        output_type="pil",
    ).frames[0]
    first = np.asarray(clip.convert("RGB"), dtype=np.int16)
    assert np.abs(first - np.asarray(frames[0], dtype=np.int16)).mean() < 12  # WebP is lossy
    still = server.http.post("/v1/images/generations", json={"model": "tiny-wan", "prompt": "a cat"})
    assert still.status_code == 400
    assert "not tagged text-to-image" in still.json()["error"]["message"]


def test_a_single_file_checkpoint_without_its_configuration_is_refused_clearly(
    server: RunningServer, zoo: Path
) -> None:
    path = zoo / "image" / "tiny-sdxl.safetensors"
    model = server.http.post("/api/models", json={"path": str(path), "name": "sdxl-file"}).json()
    assert model["template"] == "sd_official"
    r = server.http.post("/api/models/sdxl-file/load", json={})
    assert r.status_code == 502
    error = r.json()["error"]
    assert "exited with status 1" in error["message"]
    assert "set the model's `config` option to a local diffusers folder" in error["hint"]
    assert server.http.get("/api/health").status_code == 200


def test_a_single_file_flux_with_its_components(server: RunningServer, flux_zoo: dict[str, Path]) -> None:
    flux = flux_zoo["flux"]
    model = server.http.post("/api/models", json={"path": str(flux_zoo["single"]), "name": "tiny-sd"}).json()
    assert (model["category"], model["template"], model["format"]) == ("image", "flux", "safetensors")
    config = {"options": {"config": str(flux)}}
    assert server.http.put("/api/models/tiny-sd/settings", json=config).status_code == 200
    lacking = server.http.post("/api/models/tiny-sd/load", json={})
    assert lacking.status_code == 502  # the file holds the transformer only
    assert "modelyard component set NAME vae|clip_l|clip_g|t5xxl PATH" in lacking.json()["error"]["hint"]
    parts = {
        "vae": flux / "vae" / "diffusion_pytorch_model.safetensors",
        "clip_l": flux / "text_encoder",
        "t5xxl": flux / "text_encoder_2",
    }
    for role, path in parts.items():
        r = server.http.put(f"/api/models/tiny-sd/components/{role}", json={"path": str(path)})
        assert r.status_code == 200, r.text
    assert server.http.post("/api/models/tiny-sd/load", json={}).status_code == 200
    got = pixels(generate(server)["data"][0]["b64_json"])
    assert np.abs(got - flux_local(flux)).max() <= 1  # the same picture as the whole folder makes


def test_sdxl_with_a_clip_g_component(server: RunningServer, sdxl_zoo: dict[str, Path]) -> None:
    from diffusers import AutoPipelineForText2Image
    from transformers import CLIPTextModelWithProjection

    model = server.http.post("/api/models", json={"path": str(sdxl_zoo["sdxl"]), "name": "tiny-sd"}).json()
    assert model["template"] == "sd_official"
    r = server.http.put("/api/models/tiny-sd/components/clip_g", json={"path": str(sdxl_zoo["clip_g"])})
    assert r.status_code == 200, r.text
    assert server.http.post("/api/models/tiny-sd/load", json={}).status_code == 200
    got = pixels(generate(server)["data"][0]["b64_json"])
    pipe = AutoPipelineForText2Image.from_pretrained(sdxl_zoo["sdxl"], local_files_only=True)
    plain = render(pipe)
    pipe.text_encoder_2 = CLIPTextModelWithProjection.from_pretrained(
        sdxl_zoo["clip_g"], local_files_only=True
    )
    assert np.abs(got - render(pipe)).max() <= 1
    assert np.abs(got - plain).max() > 5  # the other CLIP-G changes the picture
