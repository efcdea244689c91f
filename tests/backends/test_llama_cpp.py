"""The llama.cpp options schema mapped onto each engine's flags; an option an engine lacks is a
clear error, never silently dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.backends.base import FOLDER, HOST, PORT, EngineSpec, Placement
from modelyard.backends.llama_cpp import LlamaCppOptions, LlamaServer
from modelyard.backends.llama_cpp_python import LlamaCppPython
from modelyard.catalog.records import Adapter, Component, Model, ModelFile
from modelyard.errors import EngineUnavailable, Unsupported
from modelyard.estimate import GiB


def model(**kw: object) -> Model:
    base = {
        "name": "m",
        "category": "chat",
        "format": "gguf",
        "path": "/models/m.gguf",
        "context_length": 4096,
    }
    return Model(**{**base, **kw})  # type: ignore[arg-type]


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def server(tmp_path: Path) -> LlamaServer:
    """llama-server's backend, with a binary to find (never run here)."""
    return LlamaServer(executable(tmp_path / "bin" / "llama-server"), tmp_path / "bin")


def spec(
    backend: LlamaServer | LlamaCppPython,
    options: dict[str, object],
    m: Model | None = None,
    adapter: Adapter | None = None,
) -> EngineSpec:
    return backend.engine(m or model(), LlamaCppOptions.model_validate(options), Placement(), adapter)


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_llama_server_flags(server: LlamaServer) -> None:
    argv = spec(
        server,
        {
            "n_ctx": 2048, "n_gpu_layers": 10, "tensor_split": [3, 1], "n_batch": 256, "threads": 4,
            "threads_batch": 8, "mlock": True, "numa": True, "flash_attn": "on", "rope_freq_base": 500000,
            "rope_freq_scale": 0.5, "rope_scaling": "yarn", "cache_type_k": "q8_0", "cache_type_v": "q4_0",
            "parallel": 4,
        },
    ).argv  # fmt: skip
    assert argv[0] == str(server.configured)
    # host and port are placeholders: the executor fills them where the engine starts
    assert (flag(argv, "--host"), flag(argv, "--port")) == (HOST, PORT)
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
    assert flag(spec(server, {"no_mmap": True}).argv, "--load-mode") == "none"
    # -1 without an estimate (a forced load): llama.cpp's own fit, never "all" regardless of memory
    assert flag(spec(server, {}).argv, "--n-gpu-layers") == "auto"
    assert spec(server, {"parallel": 3}).slots == 3


def test_gpu_and_cache_options(server: LlamaServer) -> None:
    argv = spec(
        server,
        {
            "main_gpu": 1,
            "split_mode": "row",
            "no_kv_offload": True,
            "context_shift": True,
            "cache_reuse": 256,
        },
    ).argv
    assert flag(argv, "--main-gpu") == "1"
    assert flag(argv, "--split-mode") == "row"
    assert "--no-kv-offload" in argv
    assert "--context-shift" in argv
    assert flag(argv, "--cache-reuse") == "256"
    plain = spec(server, {}).argv
    assert "--no-context-shift" in plain
    assert flag(plain, "--cache-reuse") == "256"  # on by default
    assert "--cache-reuse" not in spec(server, {"cache_reuse": 0}).argv
    # the prompt cache: one full context's KV cache by default; 32 layers x 8 KV heads x
    # (128 + 128) x 2 bytes a token at 4096 tokens: 512 MiB
    facts = {"block_count": 32, "head_count": 32, "head_count_kv": 8, "key_length": 128, "value_length": 128}
    assert flag(spec(server, {}, model(facts=facts)).argv, "--cache-ram") == "512"
    assert flag(spec(server, {"cache_type_k": "q8_0", "cache_type_v": "q8_0"}, model(facts=facts)).argv,
                "--cache-ram") == "272"  # fmt: skip
    assert flag(plain, "--cache-ram") == "256"  # nothing known of its shape
    assert flag(spec(server, {"cache_ram": 0}).argv, "--cache-ram") == "0"
    # thoughts: llama-server's own default (auto) unless set; a budget in tokens
    assert "--reasoning-format" not in plain
    assert "--reasoning-budget" not in plain
    thinking = spec(server, {"reasoning_format": "none", "reasoning_budget": 64}).argv
    assert (flag(thinking, "--reasoning-format"), flag(thinking, "--reasoning-budget")) == ("none", "64")
    cpu = spec(server, {"cpu_only": True, "n_gpu_layers": 20}).argv
    assert (flag(cpu, "--n-gpu-layers"), flag(cpu, "--device")) == ("0", "none")
    # "as many as fit": the layers the placement's estimate found room for
    fitted = server.engine(model(), LlamaCppOptions(), Placement(gpus=(0,), gpu_layers=7), None).argv
    assert flag(fitted, "--n-gpu-layers") == "7"
    assert flag(server.engine(model(), LlamaCppOptions(n_gpu_layers=3), Placement(gpu_layers=7), None).argv,
                "--n-gpu-layers") == "3"  # fmt: skip


def test_lora_mmproj_templates_and_categories(server: LlamaServer) -> None:
    vl = model(category="multimodal", components=[Component("mmproj", "/models/mmproj.gguf", 1)])
    argv = spec(server, {"chat_template": "chatml"}, vl, Adapter("s", "gguf-lora", "/l.gguf", 1)).argv
    assert flag(argv, "--lora") == "/l.gguf"
    assert flag(argv, "--mmproj") == "/models/mmproj.gguf"
    assert flag(argv, "--chat-template") == "chatml"
    assert "--no-jinja" not in argv  # llama-server has chatml as Jinja: tool calls still work
    # any other name, with Jinja on, would be read as a template that says its own name
    gemma = spec(server, {"chat_template": "gemma"}).argv
    assert gemma[gemma.index("--no-jinja") + 1 : gemma.index("--no-jinja") + 3] == [
        "--chat-template",
        "gemma",
    ]
    jinja = spec(server, {"chat_template": "{{ messages }}"})
    # a Jinja template is a file the executor writes into the engine's own folder
    assert flag(jinja.argv, "--chat-template-file") == f"{FOLDER}/chat-template.jinja"
    assert jinja.files == {"chat-template.jinja": "{{ messages }}"}
    assert "--embeddings" in spec(server, {}, model(category="embedding")).argv
    assert "--reranking" in spec(server, {}, model(category="rerank")).argv


def test_llama_cpp_python_flags_and_refusals() -> None:
    backend = LlamaCppPython()
    argv = spec(
        backend,
        {"n_ctx": 2048, "threads": 2, "no_mmap": True, "mlock": True, "cache_type_k": "q8_0", "rope_scaling": "linear",
         "flash_attn": "off", "tensor_split": [1, 1]},
    ).argv  # fmt: skip
    assert argv[1:3] == ["-m", "llama_cpp.server"]
    assert flag(argv, "--n_ctx") == "2048"
    assert flag(argv, "--n_threads") == "2"
    assert flag(argv, "--use_mmap") == "false"
    assert flag(argv, "--use_mlock") == "true"
    assert flag(argv, "--type_k") == "8"
    assert flag(argv, "--rope_scaling_type") == "1"
    assert flag(argv, "--flash_attn") == "false"
    assert argv[argv.index("--tensor_split") + 1 : argv.index("--tensor_split") + 3] == ["1", "1"]
    with pytest.raises(Unsupported, match="cannot take parallel=4"):
        spec(backend, {"parallel": 4})
    with pytest.raises(Unsupported, match="chat_template"):
        spec(backend, {"chat_template": "chatml"})
    with pytest.raises(Unsupported, match="multimodal"):
        spec(backend, {}, model(components=[Component("mmproj", "/p.gguf", 1)]))


def test_llama_cpp_python_keeps_no_logits_array(gemma: Path) -> None:
    """Its server keeps an n_ctx x n_vocab logits array unless told not to: modelyard tells it,
    and estimates without it, so gemma-3-270m at its own 32k context is not refused as 33 GiB."""
    backend = LlamaCppPython()
    gemma_model = model(
        path=str(gemma), context_length=32768, files=[ModelFile(str(gemma), gemma.stat().st_size)]
    )
    assert flag(spec(backend, {"n_ctx": 32768}, gemma_model).argv, "--logits_all") == "false"
    assert (
        flag(spec(backend, {"n_ctx": 32768, "logits_all": True}, gemma_model).argv, "--logits_all") == "true"
    )
    report = backend.fit(gemma_model, LlamaCppOptions(n_ctx=32768), None, 4 * GiB, [])
    assert report is not None
    assert report.fits
    assert report.estimate.ram.total < 2 * GiB  # ~1.1 GiB measured (ENVIRONMENT.md: +875 MiB RSS)
    keeping = backend.fit(gemma_model, LlamaCppOptions(n_ctx=32768, logits_all=True), None, 4 * GiB, [])
    assert keeping is not None
    assert keeping.estimate.ram.total > 32 * GiB


def test_finding_llama_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(EngineUnavailable, match="not an executable"):
        LlamaServer(tmp_path / "missing", tmp_path).preflight()
    with pytest.raises(EngineUnavailable) as missing:
        LlamaServer(None, tmp_path / "empty").preflight()
    assert missing.value.hint == "build it with `modelyard backends install llama.cpp`"
    found = executable(tmp_path / "bin" / "llama-server")
    assert LlamaServer(None, tmp_path / "bin").preflight() == str(found)
    on_path = executable(tmp_path / "path" / "llama-server")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert LlamaServer(None, tmp_path / "empty").preflight() == str(on_path)
    assert "llama_cpp.server" in LlamaCppPython().preflight()  # installed with the dev extras


def test_as_many_layers_as_fit_each_gpu(server: LlamaServer, gemma: Path, tmp_path: Path) -> None:
    """n_gpu_layers -1: the placement puts as many layers on the GPU as the estimate fits into its
    free memory, the rest on the CPU (its RAM checked), and the engine gets that number."""
    from modelyard.catalog.store import Store
    from modelyard.estimate import fit_gguf
    from modelyard.library import Library
    from modelyard.library.requests import ImportRequest
    from modelyard.runtime.executor import Gpu, Node
    from modelyard.runtime.placement import place

    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    m = Library(store).import_model(ImportRequest(path=str(gemma)))
    options = LlamaCppOptions(n_ctx=2048)
    small = 40 * 2**20  # a GPU with room for part of the model
    node = Node("local", "127.0.0.1", 64 * GiB, 32 * GiB, (Gpu(0, "test", 8 * GiB, small),))
    [spot] = place(server, m, options, None, 1, [node])
    where = spot.placement
    expected = fit_gguf(m, server.config(m, options, None, 1), 32 * GiB, [small]).max_gpu_layers
    assert expected is not None
    assert 0 < expected < 19  # some of gemma's 18 blocks (+ output), not all
    assert where.gpu_layers == expected
    assert flag(server.engine(m, options, where, None).argv, "--n-gpu-layers") == str(expected)
    roomy = Node("local", "127.0.0.1", 64 * GiB, 32 * GiB, (Gpu(0, "test", 80 * GiB, 80 * GiB),))
    assert (
        place(server, m, options, None, 1, [roomy])[0].placement.gpu_layers == 19
    )  # every block and the output
    none = Node("local", "127.0.0.1", 64 * GiB, 32 * GiB)
    assert (
        place(server, m, options, None, 1, [none])[0].placement.gpu_layers is None
    )  # no GPU: nothing to decide
    cpu = place(server, m, LlamaCppOptions(n_ctx=2048, cpu_only=True), None, 1, [node])[0].placement
    assert flag(server.engine(m, LlamaCppOptions(cpu_only=True), cpu, None).argv, "--n-gpu-layers") == "0"
    store.close()


def test_one_model_over_several_workers(server: LlamaServer, tmp_path: Path) -> None:
    """A distributed placement: an rpc-server on each peer, llama-server with --rpc (filled in
    with their addresses where they run) and the layers that go to them."""
    from modelyard.backends.base import HOST, PEERS, PORT
    from modelyard.errors import EngineUnavailable

    gemma_like = model(facts={"block_count": 18})
    on_cpus = Placement(node="a", peers=("b",), tensor_split=(0.5, 0.5))
    with pytest.raises(EngineUnavailable, match="no rpc-server beside it"):
        server.engine(gemma_like, LlamaCppOptions(), on_cpus, None)
    executable(tmp_path / "bin" / "rpc-server")
    s = server.engine(gemma_like, LlamaCppOptions(), on_cpus, None)
    assert flag(s.argv, "--rpc") == PEERS
    assert flag(s.argv, "--n-gpu-layers") == "10"  # half of 18 blocks and the output: the peer's
    assert flag(s.argv, "--tensor-split") == "1"
    assert s.peer is not None
    assert s.peer.argv == [str(tmp_path / "bin" / "rpc-server"), "--host", HOST, "--port", PORT]
    # with GPUs here: every layer on a device, the peer's (first, as llama.cpp lists them) and ours
    on_gpus = Placement(node="a", gpus=(0, 1), gpu_layers=19, peers=("b",), tensor_split=(0.6, 0.4))
    s = server.engine(gemma_like, LlamaCppOptions(), on_gpus, None)
    assert flag(s.argv, "--n-gpu-layers") == "19"
    assert flag(s.argv, "--tensor-split") == "0.4,0.3,0.3"
