"""llama-cpp-python's server: the llama.cpp engine where no llama-server is installed. It takes
the llama.cpp options it has flags for and refuses the rest clearly, never silently."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from typing import ClassVar

from modelyard.backends import flags
from modelyard.backends.base import HOST, PORT, EngineSpec, Placement, Progress
from modelyard.backends.llama_cpp import LlamaCppFamily, LlamaCppOptions, LlamaServer, gpu_layers
from modelyard.catalog.records import Adapter, Model
from modelyard.errors import EngineUnavailable, Unsupported
from modelyard.estimate.llama import Config, MiB

# ggml type ids of the KV cache types, for --type_k / --type_v
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
SPLIT_MODE_IDS = {"none": 0, "layer": 1, "row": 2}
INSTALL_HINT = "install llama-server (`modelyard backends install llama.cpp`) or drop the option"


class LlamaCppPython(LlamaCppFamily):
    name: ClassVar[str] = "llama-cpp-python"
    installable: ClassVar[bool] = False  # pip installs it, not modelyard

    @classmethod
    def rank(cls, model: Model) -> int | None:
        # after llama-server; no reranking and no generic multimodal projector in its server
        if model.category == "rerank" or model.component("mmproj") is not None:
            return None
        return None if LlamaServer.rank(model) is None else 1

    def config(self, model: Model, options: LlamaCppOptions, adapter: Adapter | None, n_gpus: int) -> Config:
        """Its engine keeps full-size caches on sliding-window layers, more of its own memory, and
        (with logits_all) every position's logits; it has no prompt cache in RAM."""
        config = super().config(model, options, adapter, n_gpus)
        return replace(
            config,
            swa_full=True,
            all_logits=options.logits_all,
            engine_overhead=80 * MiB,
            prompt_cache_bytes=0,
        )

    def preflight(self, version: str | None = None) -> str:
        if version is not None:
            raise Unsupported(
                "llama-cpp-python has no builds side by side: it is the one installed in modelyard's Python",
                hint="pin a llama.cpp version instead (`modelyard backends install llama.cpp --version X`)",
            )
        if importlib.util.find_spec("llama_cpp") is None:
            raise EngineUnavailable(
                "llama-cpp-python is not installed",
                hint="build llama-server with `modelyard backends install llama.cpp`, "
                "or `pip install 'llama-cpp-python[server]'`",
            )
        return f"{sys.executable} -m llama_cpp.server"

    def executable(self) -> str:
        return sys.executable

    def versions(self) -> list[str]:
        return []

    def check_args(self, args: list[str], version: str | None = None) -> None:
        if args:
            self.preflight(version)
            known = flags.help_flags([sys.executable, "-m", "llama_cpp.server"])
            flags.check(args, known, "llama_cpp.server")

    def install(self, variant: str, progress: Progress, version: str | None = None) -> str:
        raise Unsupported(
            "modelyard does not install llama-cpp-python",
            hint="`pip install 'llama-cpp-python[server]'`, or build llama-server: "
            "`modelyard backends install llama.cpp`",
        )

    def engine(
        self,
        model: Model,
        options: LlamaCppOptions,
        placement: Placement,
        adapter: Adapter | None,
        version: str | None = None,
    ) -> EngineSpec:
        o = options

        def lacks(option: str, value: object) -> Unsupported:
            return Unsupported(f"llama-cpp-python's server cannot take {option}={value!r}", hint=INSTALL_HINT)

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
        if o.context_shift:
            raise lacks("context_shift", True)
        if o.cache_reuse != LlamaCppOptions.model_fields["cache_reuse"].default:
            raise lacks("cache_reuse", o.cache_reuse)
        if o.cache_ram is not None:
            raise lacks("cache_ram", o.cache_ram)
        if o.draft_model or o.ngram_speculation:
            raise lacks("speculative decoding (draft_model, ngram_speculation)", True)
        if o.reasoning_format != "auto" or o.reasoning_budget != -1:
            raise lacks("reasoning_format / reasoning_budget", (o.reasoning_format, o.reasoning_budget))
        self.preflight(version)
        args = ["--model", model.path, "--host", HOST, "--port", PORT, "--model_alias", model.name]
        args += ["--n_ctx", str(o.n_ctx), "--n_batch", str(o.n_batch)]
        layers = gpu_layers(o, placement)
        args += ["--n_gpu_layers", str(-1 if layers is None else layers)]  # -1: all
        if o.main_gpu is not None:
            args += ["--main_gpu", str(o.main_gpu)]
        if o.split_mode:
            args += ["--split_mode", str(SPLIT_MODE_IDS[o.split_mode])]
        if o.no_kv_offload:
            args += ["--offload_kqv", "false"]
        args += [
            "--type_k",
            str(GGML_TYPE_IDS[o.cache_type_k]),
            "--type_v",
            str(GGML_TYPE_IDS[o.cache_type_v]),
        ]
        # Its default keeps an n_ctx x n_vocab logits array (GiBs on big vocabularies), needed only
        # for prompt logprobs.
        args += ["--logits_all", "true" if o.logits_all else "false"]
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
        return EngineSpec(
            argv=[sys.executable, "-m", "llama_cpp.server", *args],
            env={"PYTHONUNBUFFERED": "1"},
            health_path="/v1/models",
            slots=1,
            runtime="llama_cpp.server",
            key_env="API_KEY",
        )
