"""A fake hub on 127.0.0.1 per test, and small model files to put on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from builders import write_llama_gguf, write_lora_gguf, write_mmproj_gguf
from fakehub import FakeHub


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
        "f32": write_llama_gguf(root / "tiny-F32.gguf")[0],
        "q8": write_llama_gguf(root / "tiny-Q8_0.gguf", quant="Q8_0")[0],
        "mmproj": write_mmproj_gguf(root / "mmproj-tiny-f16.gguf"),
        "lora": write_lora_gguf(root / "tiny-lora.gguf"),
    }
    return {k: Path(p).read_bytes() for k, p in files.items()}
