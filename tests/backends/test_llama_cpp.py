"""The llama.cpp options schema mapped onto each runtime's flags; an option a runtime lacks is a
clear error, never silently dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.backends import llama_cpp
from modelyard.catalog.records import Adapter, Component, Model
from modelyard.errors import EngineUnavailable, Unsupported


def model(**kw: object) -> Model:
    base = {
        "name": "m",
        "category": "chat",
        "format": "gguf",
        "path": "/models/m.gguf",
        "context_length": 4096,
    }
    return Model(**{**base, **kw})  # type: ignore[arg-type]


def args(
    runtime: str, options: dict[str, object], m: Model | None = None, adapter: Adapter | None = None
) -> list[str]:
    full = llama_cpp.LlamaCppOptions.model_validate(options).model_dump()
    return llama_cpp.engine(runtime, "prog", m or model(), full, adapter, "127.0.0.1", 9000).argv


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_llama_server_flags() -> None:
    argv = args(
        llama_cpp.LLAMA_SERVER,
        {
            "n_ctx": 2048, "n_gpu_layers": 10, "tensor_split": [3, 1], "n_batch": 256, "threads": 4,
            "threads_batch": 8, "mlock": True, "numa": True, "flash_attn": "on", "rope_freq_base": 500000,
            "rope_freq_scale": 0.5, "rope_scaling": "yarn", "cache_type_k": "q8_0", "cache_type_v": "q4_0",
            "parallel": 4,
        },
    )  # fmt: skip
    assert flag(argv, "--ctx-size") == "2048"
    assert flag(argv, "--n-gpu-layers") == "10"
    assert flag(argv, "--tensor-split") == "3,1"
    assert flag(argv, "--batch-size") == "256"
    assert flag(argv, "--threads") == "4"
    assert flag(argv, "--threads-batch") == "8"
    assert flag(argv, "--load-mode") == "mmap+mlock"
    assert flag(argv, "--numa") == "distribute"
    assert flag(argv, "--flash-attn") == "on"
    assert flag(argv, "--rope-freq-base") == "500000"
    assert flag(argv, "--rope-freq-scale") == "0.5"
    assert flag(argv, "--rope-scaling") == "yarn"
    assert flag(argv, "--cache-type-k") == "q8_0"
    assert flag(argv, "--cache-type-v") == "q4_0"
    assert flag(argv, "--parallel") == "4"
    assert flag(argv, "--alias") == "m"
    assert flag(args(llama_cpp.LLAMA_SERVER, {"no_mmap": True}), "--load-mode") == "none"
    assert flag(args(llama_cpp.LLAMA_SERVER, {}), "--n-gpu-layers") == "all"


def test_lora_mmproj_templates_and_categories(tmp_path: Path) -> None:
    vl = model(category="multimodal", components=[Component("mmproj", "/models/mmproj.gguf", 1)])
    argv = args(
        llama_cpp.LLAMA_SERVER, {"chat_template": "chatml"}, vl, Adapter("s", "gguf-lora", "/l.gguf", 1)
    )
    assert flag(argv, "--lora") == "/l.gguf"
    assert flag(argv, "--mmproj") == "/models/mmproj.gguf"
    assert flag(argv, "--chat-template") == "chatml"
    jinja = args(llama_cpp.LLAMA_SERVER, {"chat_template": "{{ messages }}"})
    assert Path(flag(jinja, "--chat-template-file")).read_text() == "{{ messages }}"
    assert "--embeddings" in args(llama_cpp.LLAMA_SERVER, {}, model(category="embedding"))
    assert "--reranking" in args(llama_cpp.LLAMA_SERVER, {}, model(category="rerank"))


def test_llama_cpp_python_flags_and_refusals() -> None:
    argv = args(
        llama_cpp.LLAMA_CPP_PYTHON,
        {"n_ctx": 2048, "threads": 2, "no_mmap": True, "mlock": True, "cache_type_k": "q8_0", "rope_scaling": "linear",
         "flash_attn": "off", "tensor_split": [1, 1]},
    )  # fmt: skip
    assert argv[:3] == ["prog", "-m", "llama_cpp.server"]
    assert flag(argv, "--n_ctx") == "2048"
    assert flag(argv, "--n_threads") == "2"
    assert flag(argv, "--use_mmap") == "false"
    assert flag(argv, "--use_mlock") == "true"
    assert flag(argv, "--type_k") == "8"
    assert flag(argv, "--rope_scaling_type") == "1"
    assert flag(argv, "--flash_attn") == "false"
    assert argv[argv.index("--tensor_split") + 1 : argv.index("--tensor_split") + 3] == ["1", "1"]
    with pytest.raises(Unsupported, match="cannot take parallel=4"):
        args(llama_cpp.LLAMA_CPP_PYTHON, {"parallel": 4})
    with pytest.raises(Unsupported, match="chat_template"):
        args(llama_cpp.LLAMA_CPP_PYTHON, {"chat_template": "chatml"})
    with pytest.raises(Unsupported, match="multimodal"):
        args(llama_cpp.LLAMA_CPP_PYTHON, {}, model(components=[Component("mmproj", "/p.gguf", 1)]))


def test_find_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(EngineUnavailable, match="not an executable"):
        llama_cpp.find_runtime(tmp_path / "missing", tmp_path)
    fake = tmp_path / "bin" / "llama-server"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert llama_cpp.find_runtime(None, tmp_path / "bin") == (llama_cpp.LLAMA_SERVER, str(fake))
    runtime, _ = llama_cpp.find_runtime(None, tmp_path / "empty")
    assert runtime == llama_cpp.LLAMA_CPP_PYTHON  # llama-cpp-python is installed with the dev extras
