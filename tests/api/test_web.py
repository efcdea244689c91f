"""What the web UI needs from the server: the built app at /, path completion, a save folder for
downloads."""

from __future__ import annotations

from pathlib import Path

import builders as b
from conftest import RunningServer, serve
from modelyard.api.ui import BUILT


def test_the_built_ui_is_served_at_the_root(server: RunningServer) -> None:
    page = server.http.get("/")
    assert page.status_code == 200
    assert '<div id="app">' in page.text
    script = next(line for line in page.text.splitlines() if "<script" in line)
    asset = script.split('src="')[1].split('"')[0]
    assert asset.startswith("/assets/")
    served = server.http.get(asset)
    assert served.status_code == 200
    assert served.content == (BUILT / asset.lstrip("/")).read_bytes()
    assert server.http.get("/api/health").json()["status"] == "ok"  # the API still answers first


def test_without_a_build_the_root_says_how_to_build_it(tmp_path: Path) -> None:
    with serve(tmp_path / "home", ui_dir=tmp_path / "nothing-here") as running:
        page = running.http.get("/")
        assert page.status_code == 503
        assert "./scripts/setup" in page.text


def test_path_completion(server: RunningServer, tmp_path: Path) -> None:
    root = tmp_path / "disk"
    b.write_llama_gguf(root / "chat" / "tiny.gguf")
    b.write_hf_llama(root / "hf-llama")
    (root / "notes.txt").write_text("hi")
    (root / ".hidden").mkdir()
    (root / "chat-old").mkdir()

    listed = server.http.get("/api/paths", params={"prefix": f"{root}/"}).json()
    assert [(e["name"], e["folder"], e["model"]) for e in listed] == [
        ("chat", True, False),
        ("chat-old", True, False),
        ("hf-llama", True, True),  # a folder with a model's config
        ("notes.txt", False, False),
    ]
    assert listed[3]["size"] == 2
    started = server.http.get("/api/paths", params={"prefix": f"{root}/ch"}).json()
    assert [e["name"] for e in started] == ["chat", "chat-old"]
    inside = server.http.get("/api/paths", params={"prefix": f"{root}/chat/"}).json()
    assert [(e["name"], e["model"]) for e in inside] == [("tiny.gguf", True)]
    assert [e["name"] for e in server.http.get("/api/paths", params={"prefix": f"{root}/."}).json()] == [
        ".hidden"
    ]

    missing = server.http.get("/api/paths", params={"prefix": f"{root}/nope/x"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "path_not_found"
