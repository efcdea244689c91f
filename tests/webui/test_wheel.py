"""modelyard installed as a Python tool: its wheel (scripts/build-dist, the web UI inside) into a
new virtual environment outside the clone, whose `modelyard serve` runs with no clone, npm or
scripts: the web UI in Chromium, a GGUF imported and loaded with that environment's CLI and
answered through /v1 with the openai client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import psutil
import pytest
from playwright.sync_api import Browser, expect

import builders as b
from browser import browsing_with_shots
from conftest import free_port, llama_server
from modelyard import __version__

pytestmark = [pytest.mark.browser, pytest.mark.engine, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_serves_the_web_ui_and_a_gguf_with_no_clone(browser: Browser, tmp_path: Path) -> None:
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-dist"), str(tmp_path / "dist")], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    wheel = Path(built.stdout.splitlines()[-1])
    assert wheel.name == f"modelyard-{__version__}-py3-none-any.whl"
    assert any((tmp_path / "dist").glob(f"modelyard-{__version__}.tar.gz"))

    venv = tmp_path / "tool"  # as pipx makes one: a new environment, the wheel and what it needs
    subprocess.run([_base_python(), "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, text=True
    )
    assert pip.returncode == 0, pip.stderr
    modelyard = str(venv / "bin" / "modelyard")
    assert (
        subprocess.run([modelyard, "--version"], capture_output=True, text=True).stdout
        == f"modelyard {__version__}\n"
    )

    program = llama_server()
    assert program is not None, "set MODELYARD_LLAMA_SERVER (scripts/test does)"
    port = free_port()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELYARD_", "PYTHON", "VIRTUAL_ENV"))}
    env |= {
        "MODELYARD_HOME": str(tmp_path / "home"),
        "MODELYARD_PORT": str(port),
        "MODELYARD_LLAMA_SERVER": str(program),
    }
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [modelyard, "serve"], cwd=elsewhere, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{url}/api/health").json()
                break
            except httpx.TransportError:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert health == {"status": "ok", "version": __version__}

        gguf = b.write_llama_gguf(tmp_path / "models" / "tiny-chat.gguf", chat_template=b.CHAT_TEMPLATE)[0]
        cli = {"cwd": elsewhere, "env": env, "capture_output": True, "text": True}
        imported = subprocess.run([modelyard, "import", str(gguf)], **cli)  # type: ignore[call-overload]
        assert imported.returncode == 0, imported.stderr
        loaded = subprocess.run([modelyard, "load", "tiny-chat"], **cli)  # type: ignore[call-overload]
        assert loaded.returncode == 0, loaded.stderr

        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        answer = client.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": "hello"}], max_tokens=4
        )
        assert answer.choices[0].finish_reason in ("stop", "length")
        assert answer.usage is not None
        assert answer.usage.completion_tokens > 0
        (instance,) = httpx.get(f"{url}/api/instances").json()

        with browsing_with_shots(browser, url, "wheel") as (page, shots):
            page.goto("/")
            expect(page.locator('tr[data-model="tiny-chat"] .status.loaded')).to_have_text("loaded")
            shots("the-library-of-the-installed-wheel")
    finally:
        server.terminate()
        status = server.wait(timeout=60)
        log.close()
    assert status in (0, -signal.SIGTERM)  # uvicorn raises the signal again once it has shut down
    assert not psutil.pid_exists(instance["pid"])  # its engine stopped with it


def _base_python() -> str:
    """The interpreter the tests' environment was made from (not the environment itself)."""
    return str(Path(sys.base_prefix) / "bin" / "python3")
