"""search, files, pull and downloads as a user types them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import serve
from fakehub import FakeHub
from modelyard.cli.main import app


@pytest.fixture
def cli(tmp_path: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    with serve(tmp_path / "home", hf_endpoint=hub.url) as server:
        monkeypatch.setenv("MODELYARD_URL", server.url)
        monkeypatch.setenv("COLUMNS", "200")
        yield CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_search_files_pull(cli: CliRunner, hub: FakeHub, ggufs: dict[str, bytes]) -> None:
    hub.add_hf(
        "org/tiny-GGUF",
        {"tiny-F32.gguf": ggufs["f32"], "tiny-Q8_0.gguf": ggufs["q8"], "README.md": b"hi"},
        tags=["gguf"],
        downloads=1234,
    )
    found = run(cli, "search", "tiny", "--gguf")
    assert "org/tiny-GGUF" in found
    assert "1.2K" in found or "1234" in found
    listing = run(cli, "files", "org/tiny-GGUF")
    assert "Q8_0" in listing
    assert "F32" in listing
    assert "pull one: modelyard pull hf:org/tiny-GGUF:Q8_0" in listing
    out = run(cli, "pull", "org/tiny-GGUF:Q8_0", "--name", "tiny")
    assert "imported: tiny" in out
    shown = json.loads(run(cli, "show", "tiny", "--json"))
    assert shown["quantization"] == "Q8_0"
    jobs = run(cli, "downloads")
    assert "org/tiny-GGUF" in jobs
    assert "completed" in jobs
    err = run(cli, "pull", "org/none", code=1)
    assert "error: Hugging Face has no repo 'org/none'" in err


def test_detach_then_watch_pause_resume(cli: CliRunner, hub: FakeHub) -> None:
    hub.add_hf("org/slow", {"w.gguf": os.urandom(2 << 20)})
    hub.rate = 1 << 20
    out = run(cli, "pull", "org/slow", "--all", "--detach")
    assert "download 1: 1 file, 2.1 MB" in out
    assert "paused" in run(cli, "downloads", "pause", "1")
    assert "queued" in run(cli, "downloads", "resume", "1")
    hub.rate = None
    watched = run(cli, "downloads", "watch", "1")
    assert "done: 2.1 MB" in watched
    listed = json.loads(run(cli, "downloads", "ls", "--json"))
    assert listed[0]["state"] == "completed"
    assert "removed download 1" in run(cli, "downloads", "rm", "1")
