"""Files a request names (an image by its path on the server): read once, by the gateway, for the
callers that may, inside the allowed folders, regular files only, bounded; engines get the
content, never a path, and refuse a path that reaches them."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.test_security import bearer, make_keys
from conftest import RunningServer, serve
from fake_engine import FakeEngine
from modelyard.access.files import ClientFiles
from modelyard.access.folders import Folders
from modelyard.access.keys import Caller, Keys
from modelyard.catalog.store import Store
from modelyard.config import Settings
from modelyard.errors import InvalidRequest
from modelyard.formats.files import is_path
from modelyard.gateway.media import inline_files
from modelyard.runners.audio import raw_audio
from modelyard.runners.media import load_image

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def chat_with(url: str) -> dict[str, Any]:
    parts = [{"type": "text", "text": "what is it?"}, {"type": "image_url", "image_url": {"url": url}}]
    return {"model": "fake", "messages": [{"role": "user", "content": parts}]}


def sent_image(engine: FakeEngine) -> str:
    url: str = engine.posts[-1]["messages"][0]["content"][1]["image_url"]["url"]
    return url


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    allowed, secret = tmp_path / "allowed", tmp_path / "secret"
    allowed.mkdir()
    secret.mkdir()
    (allowed / "cat.png").write_bytes(PNG)
    (secret / "photo.png").write_bytes(PNG + b"secret")
    os.mkfifo(allowed / "fifo.png")
    (allowed / "link.png").symlink_to(secret / "photo.png")
    with (allowed / "huge.png").open("wb") as f:
        f.truncate(65 << 20)  # sparse: 65 MiB on paper
    return {"allowed": allowed, "secret": secret}


@pytest.fixture
def keyed(
    tmp_path: Path, folders: dict[str, Path]
) -> Iterator[tuple[RunningServer, dict[str, str], FakeEngine]]:
    """A server on a network address with an admin and an inference key, its allowed folder,
    and a registered engine that keeps what it was sent."""
    home = tmp_path / "home"
    secrets = make_keys(home, ("admin", "admin", []), ("app", "inference", []))
    engine = FakeEngine()
    url = engine.start()
    try:
        with serve(home, host="0.0.0.0", allowed_dirs=[folders["allowed"]]) as server:
            admin = bearer(secrets["admin"])
            r = server.http.post("/api/models", json={"url": url, "name": "fake"}, headers=admin)
            assert r.status_code == 201, r.text
            assert server.http.post("/api/models/fake/load", json={}, headers=admin).status_code == 200
            yield server, secrets, engine
    finally:
        engine.stop()


def test_an_inference_key_may_not_name_server_files(
    keyed: tuple[RunningServer, dict[str, str], FakeEngine], folders: dict[str, Path]
) -> None:
    server, secrets, engine = keyed
    app = bearer(secrets["app"])
    for path in (folders["allowed"] / "cat.png", folders["secret"] / "photo.png", Path("/etc/shadow")):
        r = server.http.post("/v1/chat/completions", json=chat_with(str(path)), headers=app)
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["message"].startswith("the key 'app' may not name files on the server ('messages')")
        assert "data URL or base64" in error["hint"]
    assert engine.posts == []  # nothing reached the engine
    inline = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    r = server.http.post("/v1/chat/completions", json=chat_with(inline), headers=app)
    assert r.status_code == 200, r.text
    assert sent_image(engine) == inline


def test_an_admin_reads_only_regular_files_in_the_allowed_folders(
    keyed: tuple[RunningServer, dict[str, str], FakeEngine], folders: dict[str, Path]
) -> None:
    server, secrets, engine = keyed
    admin = bearer(secrets["admin"])
    allowed, secret = folders["allowed"], folders["secret"]

    def ask(url: str) -> httpx.Response:
        return server.http.post("/v1/chat/completions", json=chat_with(url), headers=admin)

    for url in (str(allowed / "cat.png"), (allowed / "cat.png").as_uri()):
        r = ask(url)
        assert r.status_code == 200, r.text
        assert sent_image(engine) == f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    sent = len(engine.posts)
    # outside: refused before the disk is looked at, the same for a file that is there and one
    # that is not, and through a link
    there, absent = ask(str(secret / "photo.png")), ask(str(secret / "nothing.png"))
    assert there.status_code == absent.status_code == 403
    assert there.json()["error"]["message"].replace("photo", "X") == absent.json()["error"][
        "message"
    ].replace("nothing", "X")
    assert ask(str(allowed / "link.png")).status_code == 403
    assert ask(str(allowed / ".." / "secret" / "photo.png")).status_code == 403
    # a FIFO is no file: refused at once, and eight of them hold no thread
    fifo = ask(str(allowed / "fifo.png"))
    assert fifo.status_code == 400
    assert "not a regular file" in fifo.json()["error"]["message"]

    async def eight() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, headers=admin, timeout=30) as http:
            body = chat_with(str(allowed / "fifo.png"))
            answers = await asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(8)))
            return [a.status_code for a in answers]

    assert asyncio.run(eight()) == [400] * 8
    huge = ask(str(allowed / "huge.png"))
    assert huge.status_code == 400
    assert "larger than 64 MiB" in huge.json()["error"]["message"]
    missing = ask(str(allowed / "nope.png"))
    assert missing.status_code == 400
    assert "cannot read the image" in missing.json()["error"]["message"]
    assert len(engine.posts) == sent  # none of these reached the engine
    assert ask(str(allowed / "cat.png")).status_code == 200  # and the server serves on


def test_an_open_server_refuses_what_is_not_a_file(tmp_path: Path, folders: dict[str, Path]) -> None:
    engine = FakeEngine()
    url = engine.start()
    try:
        with serve(tmp_path / "home") as server:  # a laptop: loopback, no keys, no folder limit
            assert server.http.post("/api/models", json={"url": url, "name": "fake"}).status_code == 201
            for path in ("/dev/zero", str(folders["allowed"] / "fifo.png")):
                r = server.http.post("/v1/chat/completions", json=chat_with(path))
                assert r.status_code == 400, r.text
                assert "not a regular file" in r.json()["error"]["message"]
            r = server.http.post("/v1/chat/completions", json=chat_with(str(folders["secret"] / "photo.png")))
            assert r.status_code == 200, r.text
            assert base64.b64decode(sent_image(engine).split(",", 1)[1]) == PNG + b"secret"
    finally:
        engine.stop()


def test_base64_that_begins_with_a_slash_is_no_path() -> None:
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(60)).decode()
    assert jpeg.startswith("/9j/")
    assert not is_path(jpeg)
    assert is_path("/etc/shadow")
    assert is_path("file:///etc/shadow")
    assert is_path("/tmp/a.png")
    assert not is_path("data:image/png;base64,AAAA")


def test_every_media_field_is_read_by_the_gateway(tmp_path: Path, folders: dict[str, Path]) -> None:
    store = Store(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        settings = Settings(home=tmp_path / "home", allowed_dirs=[folders["allowed"]])
        files = ClientFiles(Folders(settings, store, Keys(store)), keys_may_name_paths=False)
        cat = str(folders["allowed"] / "cat.png")
        data = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"

        async def inlined(body: dict[str, Any], endpoint: str, category: str) -> dict[str, Any]:
            await inline_files(body, endpoint, category, files, Caller())
            return body

        async def all_of() -> None:
            up = await inlined({"image": [cat, data, cat]}, "images/upscale", "upscale")
            assert up["image"] == [data, data, data]
            caption = await inlined({"image": cat}, "images/captions", "captioning")
            assert caption["image"] == data
            edit = await inlined({"image": "file://" + cat, "prompt": "p"}, "images", "image")
            assert edit["image"] == data
            faces = await inlined({"input": [cat]}, "embeddings", "face")
            assert faces["input"] == [data]
            text = await inlined({"input": [cat]}, "embeddings", "embedding")  # a text, not a file
            assert text["input"] == [cat]

        asyncio.run(all_of())
    finally:
        store.close()


def test_an_engine_never_reads_a_path(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(PNG)
    for value in (str(secret), secret.as_uri()):
        with pytest.raises(InvalidRequest, match="names a file on the server"):
            load_image(value)
        with pytest.raises(InvalidRequest, match="names a file on the server"):
            raw_audio(value)
    assert load_image(base64.b64encode(PNG).decode()).size == (1, 1)
