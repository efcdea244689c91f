"""llama-server built on the first use of a GGUF model, from the CLI: with neither llama-server
nor llama-cpp-python's server installed, `modelyard load` is answered that the server started
installing it; the CLI follows that install job with its progress, then loads again, and the
model answers through /v1 (the build is a stand-in: tests/first_use.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

import builders as b
from conftest import RunningServer, serve
from first_use import no_gguf_engine

pytestmark = pytest.mark.engine


@contextmanager
def a_gguf_loaded_with_the_cli(
    tmp_path: Path,
) -> Iterator[tuple[RunningServer, subprocess.CompletedProcess[str]]]:
    """A server with a tiny GGUF in its library, and what `modelyard load` of it did."""
    gguf = b.write_llama_gguf(tmp_path / "models" / "tiny-chat.gguf", chat_template=b.CHAT_TEMPLATE)[0]
    with serve(tmp_path / "home", llama_server=None) as server:
        assert server.http.post("/api/models", json={"path": str(gguf)}).status_code == 201
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
        loaded = subprocess.run(
            [sys.executable, "-m", "modelyard.cli.main", "load", "tiny-chat"],
            env=env | {"MODELYARD_URL": server.url},
            capture_output=True,
            text=True,
        )
        yield server, loaded


def test_load_follows_the_build_it_started_then_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_gguf_engine(monkeypatch)
    with a_gguf_loaded_with_the_cli(tmp_path) as (server, loaded):
        assert loaded.returncode == 0, loaded.stderr
        said = loaded.stdout
        assert "llama.cpp is not installed yet: modelyard is installing it now" in said
        assert "build llama-server" in said  # its progress, as a log shows it (no terminal here)
        assert "tiny-chat serving" in said
        assert (tmp_path / "home" / "bin" / "llama-server").is_file()
        (job,) = server.http.get("/api/installs").json()
        assert (job["backend"], job["state"]) == ("llama.cpp", "done")

        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": "hello"}], max_tokens=4
        )
        assert answer.choices[0].finish_reason in ("stop", "length")


def test_a_build_that_fails_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_gguf_engine(monkeypatch, fails="cmake failed to configure llama.cpp")
    with a_gguf_loaded_with_the_cli(tmp_path) as (server, loaded):
        assert loaded.returncode == 1
        assert "installing llama.cpp failed: cmake failed to configure llama.cpp" in loaded.stderr
        assert "see the build's log" in loaded.stderr
        assert server.http.get("/api/instances").json() == []
