"""Image captioning through the gateway: tiny BLIP, GIT and ViT-GPT2 captioners on the runner,
their captions compared with the same models run in-process (processor + generate)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from builders import data_url, png_of
from builders import noise_picture as picture
from conftest import RunningServer, serve
from modelyard.gateway.answers import CaptionAnswer
from torch_models import write_tiny_blip, write_tiny_git, write_tiny_vit_gpt2

pytestmark = pytest.mark.engine


BUILDERS = {"blip": write_tiny_blip, "git": write_tiny_git, "vit-gpt2": write_tiny_vit_gpt2}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("captioners")
    return {name: build(root / name) for name, build in BUILDERS.items()}


@pytest.fixture(scope="module")
def server(folders: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(tmp_path_factory.mktemp("home"), one_per_category=False) as running:  # all three at once
        for name, folder in folders.items():
            model = running.http.post("/api/models", json={"path": str(folder), "name": name}).json()
            assert model["category"] == "captioning", model
            r = running.http.post(f"/api/models/{name}/load", json={})
            assert r.status_code == 200, r.text
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def in_process(folder: Path, image: Any, prompt: str = "", max_new_tokens: int = 32) -> str:
    """The caption transformers makes for ``image``, greedy, as each model's card shows it."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    kind = model.config.model_type
    if kind == "vision-encoder-decoder":
        tokenizer = AutoTokenizer.from_pretrained(folder)
        inputs = {
            "pixel_values": AutoImageProcessor.from_pretrained(folder)(
                image, return_tensors="pt"
            ).pixel_values
        }
        if prompt:
            ids = [
                model.config.decoder_start_token_id,
                *tokenizer(prompt, add_special_tokens=False).input_ids,
            ]
            inputs["decoder_input_ids"] = torch.tensor([ids])
    else:
        processor = AutoProcessor.from_pretrained(folder)
        tokenizer = processor.tokenizer
        inputs = dict(processor(images=image, return_tensors="pt"))
        if prompt and kind == "git":  # GIT's card: the question after [CLS], no [SEP]
            ids = [tokenizer.cls_token_id, *tokenizer(prompt, add_special_tokens=False).input_ids]
            inputs["input_ids"] = torch.tensor([ids])
        elif prompt:  # BLIP's card: the processor takes the text
            inputs = dict(processor(images=image, text=prompt, return_tensors="pt"))
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return str(tokenizer.decode(out[0], skip_special_tokens=True)).strip()


def test_captioners_are_detected_as_captioning(server: RunningServer) -> None:
    for name, arch in (("blip", "blip"), ("git", "git"), ("vit-gpt2", "vision-encoder-decoder")):
        model = server.http.get(f"/api/models/{name}").json()
        assert model["category"] == "captioning"
        assert model["architecture"] == arch, model


@pytest.mark.parametrize("name", list(BUILDERS))
def test_captions_are_the_models_own(server: RunningServer, folders: dict[str, Path], name: str) -> None:
    images = [picture(1), picture(2)]
    r = server.http.post("/v1/images/captions", json={"model": name, "image": [data_url(i) for i in images]})
    assert r.status_code == 200, r.text
    answer = CaptionAnswer.model_validate(r.json()).model_dump()  # as the OpenAPI document says
    expected = [in_process(folders[name], i) for i in images]
    assert [d["caption"] for d in answer["data"]] == expected
    assert expected[0]
    assert expected[0] != expected[1]
    assert answer["usage"]["completion_tokens"] > 0

    start = "the cat"  # a prompt starts the caption
    r = server.http.post(
        "/v1/images/captions", json={"model": name, "image": data_url(images[0]), "prompt": start}
    )
    assert r.status_code == 200, r.text
    (caption,) = r.json()["data"]
    assert caption["caption"] == in_process(folders[name], images[0], start)
    assert caption["caption"].startswith(start)


def test_a_form_with_an_image_file(server: RunningServer, folders: dict[str, Path]) -> None:
    image = picture(3, (64, 64))
    r = server.http.post(
        "/v1/images/captions",
        data={"model": "git", "max_tokens": "4"},
        files={"image": ("photo.png", png_of(image), "image/png")},
    )
    assert r.status_code == 200, r.text
    assert r.json()["data"][0]["caption"] == in_process(folders["git"], image, max_new_tokens=4)


def test_chat_with_an_image_is_answered_with_its_caption(
    client: openai.OpenAI, folders: dict[str, Path]
) -> None:
    image = picture(4)
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": data_url(image)}},
            ],
        }
    ]
    expected = in_process(folders["blip"], image)
    answer = client.chat.completions.create(model="blip", messages=messages)
    assert answer.choices[0].message.content == expected
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="blip", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == answer.usage.total_tokens


def test_concurrent_captions_run_as_one_batch(server: RunningServer) -> None:
    urls = [data_url(picture(10 + i)) for i in range(8)]

    def ask(url: str) -> str:
        r = httpx.post(
            server.url + "/v1/images/captions", json={"model": "vit-gpt2", "image": url}, timeout=60
        )
        return str(r.json()["data"][0]["caption"])

    alone = [ask(u) for u in urls]
    inst = next(i for i in server.http.get("/api/instances").json() if i["model"] == "vit-gpt2")
    before = httpx.get(inst["url"] + "/health").json()["stats"]
    with concurrent.futures.ThreadPoolExecutor(len(urls)) as pool:
        together = list(pool.map(ask, urls))
    after = httpx.get(inst["url"] + "/health").json()["stats"]
    assert together == alone  # a batch answers each as it would alone
    assert after["items"] - before["items"] == len(urls)
    assert after["batches"] - before["batches"] < len(urls)  # some shared a batch


def test_bad_caption_requests_are_refused_clearly(server: RunningServer, client: openai.OpenAI) -> None:
    r = server.http.post("/v1/images/captions", json={"model": "blip", "image": "data:image/png;base64,bm90"})
    assert r.status_code == 400
    assert "could not be read as an image" in r.json()["error"]["message"]
    r = server.http.post("/v1/images/captions", json={"model": "blip", "image": "https://example.com/a.png"})
    assert r.status_code == 400
    assert "web URL" in r.json()["error"]["message"]
    r = server.http.post("/v1/images/captions", data={"model": "blip"}, files={"x": ("a", b"1")})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "the form needs model and image"
    with pytest.raises(openai.BadRequestError, match="send a user message with an image_url part"):
        client.chat.completions.create(model="git", messages=[{"role": "user", "content": "hello"}])
    r = server.http.post("/v1/audio/speech", json={"model": "blip", "input": "hi", "voice": "a"})
    assert r.status_code == 400
    assert "captioning model" in r.json()["error"]["message"]
    states = {i["model"]: i["state"] for i in server.http.get("/api/instances").json()}
    assert states == {"blip": "running", "git": "running", "vit-gpt2": "running"}
