"""llama.cpp: GGUF chat, completion and embedding models, served by llama-server (from
llama.cpp) or, where no llama-server binary is installed, by llama-cpp-python's server."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends.base import EngineSpec
from modelyard.catalog.records import Adapter, Model
from modelyard.errors import EngineUnavailable, Unsupported

CacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]


class LlamaCppOptions(BaseModel):
    """The llama.cpp loader's options (the text-generation-webui manual's list)."""

    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(0, ge=0, le=1 << 21, description="context size in tokens; 0 = the model's own")
    n_gpu_layers: int = Field(-1, ge=-1, description="layers on the GPU; -1 = as many as fit, 0 = none")
    tensor_split: list[float] | None = Field(None, description="share of the model per GPU, e.g. [3, 1]")
    n_batch: int = Field(512, ge=1, le=1 << 16, description="prompt tokens per batch")
    threads: int | None = Field(None, ge=1, le=1024, description="generation threads; default: all cores")
    threads_batch: int | None = Field(None, ge=1, le=1024, description="prompt-processing threads")
    no_mmap: bool = Field(False, description="read the whole file into memory instead of mapping it")
    mlock: bool = Field(False, description="lock the model in RAM so it is never swapped out")
    numa: bool = Field(False, description="NUMA-aware placement")
    flash_attn: Literal["auto", "on", "off"] = "auto"
    rope_freq_base: float | None = Field(None, gt=0, description="RoPE base frequency; default: the model's")
    rope_freq_scale: float | None = Field(None, gt=0, le=1, description="RoPE frequency scale (linear)")
    rope_scaling: Literal["none", "linear", "yarn"] | None = None
    cache_type_k: CacheType = "f16"
    cache_type_v: CacheType = "f16"
    parallel: int = Field(1, ge=1, le=256, description="parallel slots (concurrent sequences)")
    chat_template: str | None = Field(None, description="a Jinja chat template or a llama.cpp template name")


LLAMA_SERVER = "llama-server"
LLAMA_CPP_PYTHON = "llama_cpp.server"
# ggml type ids of the KV cache types, for llama-cpp-python's --type_k / --type_v
GGML_TYPE_IDS = {
    "f32": 0,
    "f16": 1,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 6,
    "q5_1": 7,
    "q8_0": 8,
    "iq4_nl": 20,
    "bf16": 30,
}
ROPE_SCALING_IDS = {"none": 0, "linear": 1, "yarn": 2}


def find_runtime(configured: Path | None, bin_dir: Path) -> tuple[str, str]:
    """(runtime, program): a llama-server binary (configured, MODELYARD_HOME/bin, PATH), else
    this interpreter running llama_cpp.server."""
    if configured is not None:
        if not (configured.is_file() and os.access(configured, os.X_OK)):
            raise EngineUnavailable(f"the configured llama-server {configured} is not an executable file")
        return LLAMA_SERVER, str(configured)
    for candidate in (bin_dir / "llama-server", shutil.which("llama-server")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return LLAMA_SERVER, str(candidate)
    if importlib.util.find_spec("llama_cpp") is not None:
        return LLAMA_CPP_PYTHON, sys.executable
    raise EngineUnavailable(
        "no llama.cpp engine is installed",
        hint="build llama-server with `modelyard backends install llama.cpp`, "
        "or `pip install 'llama-cpp-python[server]'`",
    )


def engine(
    runtime: str,
    program: str,
    model: Model,
    options: dict[str, Any],
    adapter: Adapter | None,
    host: str,
    port: int,
    scratch: Path | None = None,
) -> EngineSpec:
    """The command line that serves ``model`` with ``options`` (already validated, n_ctx
    resolved). ``scratch`` is a folder for files the engine reads (a Jinja chat template)."""
    o = LlamaCppOptions.model_validate(options)
    endpoints = endpoints_for(model)
    if runtime == LLAMA_SERVER:
        return EngineSpec(
            argv=[program, *_llama_server_args(model, o, adapter, host, port, scratch)],
            health_path="/health",
            slots=o.parallel,
            endpoints=endpoints,
            runtime=LLAMA_SERVER,
        )
    return EngineSpec(
        argv=[program, "-m", "llama_cpp.server", *_llama_cpp_python_args(model, o, adapter, host, port)],
        health_path="/v1/models",
        slots=1,
        endpoints=endpoints,
        runtime=LLAMA_CPP_PYTHON,
    )


def endpoints_for(model: Model) -> frozenset[str]:
    """The OpenAI endpoints a model of this category serves."""
    if model.category in ("embedding", "rerank"):
        return frozenset({"embeddings", "rerank"} if model.category == "rerank" else {"embeddings"})
    return frozenset({"chat", "completions"})


def _template_file(model: Model, template: str, scratch: Path | None) -> str:
    """A Jinja template goes to llama-server as a file; a built-in name goes as is."""
    folder = scratch or Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model.name}.chat-template.jinja"
    path.write_text(template, encoding="utf-8")
    return str(path)


def _llama_server_args(
    model: Model, o: LlamaCppOptions, adapter: Adapter | None, host: str, port: int, scratch: Path | None
) -> list[str]:
    args = ["--model", model.path, "--host", host, "--port", str(port), "--alias", model.name]
    args += ["--ctx-size", str(o.n_ctx), "--batch-size", str(o.n_batch), "--parallel", str(o.parallel)]
    args += ["--n-gpu-layers", "all" if o.n_gpu_layers < 0 else str(o.n_gpu_layers)]
    args += ["--no-webui", "--flash-attn", o.flash_attn]
    args += ["--cache-type-k", o.cache_type_k, "--cache-type-v", o.cache_type_v]
    if o.tensor_split:
        args += ["--tensor-split", ",".join(f"{v:g}" for v in o.tensor_split)]
    if o.threads:
        args += ["--threads", str(o.threads)]
    if o.threads_batch:
        args += ["--threads-batch", str(o.threads_batch)]
    if o.no_mmap or o.mlock:
        args += ["--load-mode", "mlock" if o.mlock and o.no_mmap else "mmap+mlock" if o.mlock else "none"]
    if o.numa:
        args += ["--numa", "distribute"]
    if o.rope_freq_base:
        args += ["--rope-freq-base", f"{o.rope_freq_base:g}"]
    if o.rope_freq_scale:
        args += ["--rope-freq-scale", f"{o.rope_freq_scale:g}"]
    if o.rope_scaling:
        args += ["--rope-scaling", o.rope_scaling]
    if o.chat_template:
        if "{" in o.chat_template:
            args += ["--chat-template-file", _template_file(model, o.chat_template, scratch)]
        else:
            args += ["--chat-template", o.chat_template]
    if adapter is not None:
        args += ["--lora", adapter.path]
    mmproj = model.component("mmproj")
    if mmproj is not None:
        args += ["--mmproj", mmproj.path]
    if model.category == "embedding":
        args += ["--embeddings"]
    elif model.category == "rerank":
        args += ["--reranking"]
    return args


def _llama_cpp_python_args(
    model: Model, o: LlamaCppOptions, adapter: Adapter | None, host: str, port: int
) -> list[str]:
    def lacks(option: str, value: object) -> Unsupported:
        return Unsupported(
            f"llama-cpp-python's server cannot take {option}={value!r}",
            hint="install llama-server (`modelyard backends install llama.cpp`) or drop the option",
        )

    if o.parallel > 1:
        raise lacks("parallel", o.parallel)
    if o.chat_template:
        raise lacks("chat_template", "...")
    if model.component("mmproj") is not None:
        raise Unsupported(
            "llama-cpp-python's server cannot serve this multimodal model generically",
            hint="install llama-server: `modelyard backends install llama.cpp`",
        )
    if model.category == "rerank":
        raise lacks("reranking", True)
    args = ["--model", model.path, "--host", host, "--port", str(port), "--model_alias", model.name]
    args += ["--n_ctx", str(o.n_ctx), "--n_batch", str(o.n_batch)]
    args += ["--n_gpu_layers", str(o.n_gpu_layers)]
    args += ["--type_k", str(GGML_TYPE_IDS[o.cache_type_k]), "--type_v", str(GGML_TYPE_IDS[o.cache_type_v])]
    if o.flash_attn != "auto":
        args += ["--flash_attn", "true" if o.flash_attn == "on" else "false"]
    if o.tensor_split:
        args += ["--tensor_split", *(f"{v:g}" for v in o.tensor_split)]
    if o.threads:
        args += ["--n_threads", str(o.threads)]
    if o.threads_batch:
        args += ["--n_threads_batch", str(o.threads_batch)]
    if o.no_mmap:
        args += ["--use_mmap", "false"]
    if o.mlock:
        args += ["--use_mlock", "true"]
    if o.numa:
        args += ["--numa", "true"]
    if o.rope_freq_base:
        args += ["--rope_freq_base", f"{o.rope_freq_base:g}"]
    if o.rope_freq_scale:
        args += ["--rope_freq_scale", f"{o.rope_freq_scale:g}"]
    if o.rope_scaling:
        args += ["--rope_scaling_type", str(ROPE_SCALING_IDS[o.rope_scaling])]
    if adapter is not None:
        args += ["--lora_path", adapter.path]
    if model.category == "embedding":
        args += ["--embedding", "true"]
    return args
