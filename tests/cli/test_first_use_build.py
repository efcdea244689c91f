"""llama-server built on the first use of a GGUF model, from the CLI: with neither llama-server
nor llama-cpp-python's server installed, `modelyard load` is answered that the server started
installing it; the CLI follows that install job with its progress, then loads again, and the
model answers through /v1. The build itself is a stand-in (a real one takes minutes; the tests
of `backends install` build for real): it reports its stages and puts the tests' llama-server
in place."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

import builders as b
from conftest import llama_server, serve
from modelyard.backends import install
from modelyard.backends.llama_cpp_python import LlamaCppPython
from modelyard.errors import EngineUnavailable

pytestmark = pytest.mark.engine


def test_load_follows_the_build_it_started_then_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = llama_server()
    assert program is not None, "set MODELYARD_LLAMA_SERVER (scripts/test does)"

    def no_llama_extra(self: LlamaCppPython, version: str | None = None) -> str:
        raise EngineUnavailable("llama-cpp-python is not installed")

    def build(bin_dir: Path, *, name: str, progress: install.Progress, **_: object) -> Path:
        for stage, pct in (
            ("download", 0),
            ("configure", 10),
            ("build llama-server", 50),
            ("build llama-server", 90),
        ):
            progress(stage, pct)
            time.sleep(0.3)
        bin_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(program, bin_dir / name))

    monkeypatch.setattr(LlamaCppPython, "preflight", no_llama_extra)
    monkeypatch.setattr(install, "install_llama_server", build)
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
