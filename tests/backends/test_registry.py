"""The registry: which backend serves a model, the runner backends' engines (tasks, slots,
adapters), and the errors that say what to install."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelyard.backends.base import HOST, PORT, Placement
from modelyard.backends.llama_cpp import LlamaServer
from modelyard.backends.registry import Backends, kinds_for, options_model
from modelyard.backends.runner import ENCODER_SLOTS
from modelyard.backends.transformers import TransformersOptions
from modelyard.catalog.records import Adapter, Model, ModelSettings
from modelyard.config import Settings
from modelyard.errors import EngineUnavailable, InvalidSettings


def model(**kw: object) -> Model:
    base = {"name": "m", "category": "chat", "format": "safetensors", "path": "/models/m"}
    return Model(**{**base, **kw})  # type: ignore[arg-type]


def backends(tmp_path: Path, llama_server: bool) -> Backends:
    configured = None
    if llama_server:
        configured = tmp_path / "llama-server"
        configured.write_text("#!/bin/sh\n")
        configured.chmod(0o755)
    return Backends.from_settings(Settings(home=tmp_path / "home", llama_server=configured))


def test_which_backend_serves_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no llama-server on PATH
    gguf = model(format="gguf")
    rerank = model(format="gguf", category="rerank")
    assert backends(tmp_path, llama_server=True).for_model(gguf).name == "llama.cpp"
    without = backends(tmp_path, llama_server=False)
    assert without.for_model(gguf).name == "llama-cpp-python"  # the engine where no llama-server is
    chosen = without.for_model(rerank)  # llama-cpp-python cannot rerank: llama-server, to install
    assert chosen.name == "llama.cpp"
    with pytest.raises(EngineUnavailable, match="llama-server is not installed"):
        chosen.preflight()
    assert chosen.installs_on_first_use  # a load builds it (Runtime._installed)
    # a binary the settings name is never built over
    named = LlamaServer(tmp_path / "not-there", tmp_path / "bin")
    with pytest.raises(EngineUnavailable, match="is not an executable file"):
        named.preflight()
    assert not named.installs_on_first_use
    assert without.get("sentence-transformers").installs_on_first_use  # its managed environment
    embed = model(category="embedding")
    assert without.for_model(embed).name == "sentence-transformers"  # the model's loaders, best first
    assert without.for_model(model()).name == "transformers"
    with pytest.raises(InvalidSettings, match=r"no backend of modelyard runs 'm' \(onnx, AWQ 4-bit\)"):
        without.for_model(model(format="onnx", quantization="AWQ 4-bit", facts={"quant_method": "awq"}))
    # the settings of both llama.cpp engines follow one schema
    assert options_model(gguf) == options_model(rerank)
    # settings saved for another engine that takes the model: the load starts that one
    with_llama_server = backends(tmp_path, llama_server=True)
    saved = model(format="gguf", settings=ModelSettings("llama-cpp-python", {}))
    assert with_llama_server.for_model(saved).name == "llama-cpp-python"
    # transformers reads a GGUF (dequantized) when the settings ask for it, never by itself
    llama = model(format="gguf", architecture="llama")
    assert [k.name for k in kinds_for(llama)] == ["llama.cpp", "llama-cpp-python", "transformers"]
    assert with_llama_server.for_model(llama).name == "llama.cpp"
    asked = model(format="gguf", architecture="llama", settings=ModelSettings("transformers", {}))
    assert with_llama_server.for_model(asked).name == "transformers"
    assert "transformers" not in [k.name for k in kinds_for(model(format="gguf", architecture="clip"))]


def test_runner_engines_take_requests_as_their_task_does(tmp_path: Path) -> None:
    registry = backends(tmp_path, llama_server=False)

    def spec(m: Model, adapter: Adapter | None = None):  # type: ignore[no-untyped-def]
        backend = registry.for_model(m)
        return backend.engine(m, backend.options(), Placement(), adapter)

    chat = spec(model())
    vision = spec(model(category="multimodal"))
    image = spec(model(category="image", format="diffusers"))
    embed = spec(model(category="embedding"))
    rerank = spec(model(category="rerank"))
    # one generation at a time (a vision model too): the rest wait in the gateway's queue, where
    # its limits apply; encoders batch what arrives together
    assert (chat.slots, vision.slots, image.slots) == (1, 1, 1)
    assert (embed.slots, rerank.slots) == (ENCODER_SLOTS, ENCODER_SLOTS)
    argv = chat.argv
    assert argv[1:3] == ["-m", "modelyard.runners"]
    assert (argv[argv.index("--host") + 1], argv[argv.index("--port") + 1]) == (HOST, PORT)
    assert json.loads(argv[argv.index("--options") + 1]) == TransformersOptions().model_dump(
        exclude={"peft_adapters", "truncation"}  # the gateway's: the engine never sees it
    )
    assert chat.env["HF_HUB_OFFLINE"] == "1"
    lora = Adapter("style", "peft", "/adapters/style", 1)
    with_lora = spec(model(adapters=[lora]), lora).argv
    assert json.loads(with_lora[with_lora.index("--adapters") + 1]) == [
        {"name": "style", "path": "/adapters/style", "weight": 1.0}
    ]
