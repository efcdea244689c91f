"""llama-server built on the first use of a GGUF model, from the CLI: with neither llama-server
nor llama-cpp-python's server installed, `modelyard load` is answered that the server started
installing it; the CLI follows that install job with its progress, then loads again, and the
model answers through /v1 (the build is a stand-in: tests/first_use.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest

import builders as b
from conftest import serve
from first_use import no_gguf_engine

pytestmark = pytest.mark.engine


def test_load_follows_the_build_it_started_then_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_gguf_engine(monkeypatch)
    gguf = b.write_llama_gguf(tmp_path / "models" / "tiny-chat.gguf", chat_template=b.CHAT_TEMPLATE)[0]
    home = tmp_path / "home"
    with serve(home, llama_server=None) as server:
        assert server.http.post("/api/models", json={"path": str(gguf)}).status_code == 201
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")} | {
            "MODELYARD_URL": server.url
        }
        loaded = subprocess.run(
            [sys.executable, "-m", "modelyard.cli.main", "load", "tiny-chat"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert loaded.returncode == 0, loaded.stderr
        said = loaded.stdout
        assert "llama.cpp is not installed yet: modelyard is installing it now" in said
        assert "build llama-server" in said  # its progress, as a log shows it (no terminal here)
        assert "tiny-chat serving" in said
        assert (home / "bin" / "llama-server").is_file()
        (job,) = server.http.get("/api/installs").json()
        assert (job["backend"], job["state"]) == ("llama.cpp", "done")

        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": "hello"}], max_tokens=4
        )
        assert answer.choices[0].finish_reason in ("stop", "length")


def test_a_build_that_fails_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_gguf_engine(monkeypatch, fails="cmake failed to configure llama.cpp")
    gguf = b.write_llama_gguf(tmp_path / "models" / "tiny-chat.gguf", chat_template=b.CHAT_TEMPLATE)[0]
    with serve(tmp_path / "home", llama_server=None) as server:
        assert server.http.post("/api/models", json={"path": str(gguf)}).status_code == 201
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")} | {
            "MODELYARD_URL": server.url
        }
        loaded = subprocess.run(
            [sys.executable, "-m", "modelyard.cli.main", "load", "tiny-chat"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert loaded.returncode == 1
        assert "installing llama.cpp failed: cmake failed to configure llama.cpp" in loaded.stderr
        assert "see the build's log" in loaded.stderr
        assert server.http.get("/api/instances").json() == []
