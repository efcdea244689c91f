"""llama.cpp: GGUF chat, completion, embedding and rerank models, served by llama-server (built
from llama.cpp). llama_cpp_python.py serves the same models with llama-cpp-python's server where
no llama-server is installed; both share the options and the estimate here."""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends import flags
from modelyard.backends.base import FOLDER, HOST, PEERS, PORT, EngineSpec, Find, Placement, Progress
from modelyard.backends.common import Truncation, truncation_field
from modelyard.backends.drafts import with_draft
from modelyard.backends.install import rpc_server_name
from modelyard.catalog.records import Adapter, Model
from modelyard.categories import DIFFUSION
from modelyard.config import Settings
from modelyard.errors import ChatTemplateMissing, EngineUnavailable, InvalidSettings, Unsupported
from modelyard.estimate import Fit, fit_gguf
from modelyard.estimate.llama import CACHE_BYTES, Config, MiB
from modelyard.formats.loaders import LLAMA_CPP

CacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]


class LlamaCppOptions(BaseModel):
    """The llama.cpp loader's options (the text-generation-webui manual's list)."""

    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(0, ge=0, le=1 << 21, description="context size in tokens; 0 = the model's own")
    n_gpu_layers: int = Field(
        -1,
        ge=-1,
        description="layers on the GPUs; -1 = as many as fit their free memory (the rest on the CPU), 0 = none",
    )
    cpu_only: bool = Field(False, description="run on the CPU only, even where there are GPUs")
    tensor_split: list[float] | None = Field(None, description="share of the model per GPU, e.g. [3, 1]")
    main_gpu: int | None = Field(
        None, ge=0, le=63, description="the GPU for the model's small tensors (split_mode none: all)"
    )
    split_mode: Literal["none", "layer", "row"] | None = Field(
        None, description="how the model spreads over GPUs: by layer (default), by row, or on main_gpu only"
    )
    no_kv_offload: bool = Field(False, description="keep the KV cache in RAM when layers are on the GPUs")
    context_shift: bool = Field(
        False, description="a full context drops its oldest tokens and generation goes on (streaming_llm)"
    )
    cache_reuse: int = Field(
        256,
        ge=0,
        le=1 << 16,
        description="reuse cached prompt chunks of at least this many tokens, shifted into place (0: off)",
    )
    truncation: Truncation = truncation_field()
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
    chat_template: str | None = Field(
        None,
        description="a Jinja chat template, or a llama.cpp template name (any but chatml turns Jinja "
        "off: no tool calls)",
    )
    reasoning_format: Literal["auto", "deepseek", "none"] = Field(
        "auto",
        description="a thinking model's thoughts: in reasoning_content (deepseek; auto: the same where "
        "the template thinks), or left in the content (none)",
    )
    reasoning_budget: int = Field(
        -1, ge=-1, description="tokens a thought may take before its end is written (-1: no limit, 0: none)"
    )
    cache_ram: int | None = Field(
        None,
        ge=0,
        le=1 << 20,
        description="MiB of RAM for llama-server's prompt cache (earlier prompts kept for reuse); "
        "default: one full context's KV cache; 0: off",
    )
    draft_model: str | None = Field(
        None,
        description="speculative decoding: a small GGUF model with the same vocabulary that drafts "
        "tokens for this one to check (a library model's name, or a file; saved as its file)",
    )
    ngram_speculation: bool = Field(
        False, description="speculative decoding without a draft model: drafts from n-grams seen before"
    )
    draft_max: int | None = Field(None, ge=1, le=256, description="tokens drafted at most per step")
    draft_min: int | None = Field(None, ge=0, le=256, description="tokens drafted at least per step")
    draft_p_min: float | None = Field(
        None, ge=0, le=1, description="a drafted token's least probability under the draft model"
    )
    logits_all: bool = Field(
        False,
        description="keep every position's logits, for prompt logprobs (`echo` with `logprobs`: "
        "perplexity); an n_ctx x n_vocab array; llama-cpp-python only (llama-server has no echo)",
    )


CHAT_TEMPLATE_FILE = "chat-template.jinja"
JINJA_BUILT_IN = "chatml"  # the one built-in template name llama-server also has as Jinja


def endpoints_of(model: Model) -> frozenset[str]:
    """The OpenAI endpoints a GGUF model of this category serves."""
    if model.category == "embedding":
        return frozenset({"embeddings"})
    if model.category == "rerank":
        return frozenset({"embeddings", "rerank"})
    return frozenset({"chat", "completions"})


class LlamaCppFamily:
    """What llama-server and llama-cpp-python's server share: the options, the endpoints, the
    chat template check and the memory estimate."""

    loader: ClassVar[str] = LLAMA_CPP
    options: ClassVar[type[BaseModel]] = LlamaCppOptions
    merges_embeddings: ClassVar[bool] = False
    anthropic_messages: ClassVar[bool] = False
    distributable: ClassVar[bool] = False
    dialect: ClassVar[str] = "openai"
    tokenizer_api: ClassVar[str | None] = None
    fills_in_middle: ClassVar[bool] = False
    slots_share_context: ClassVar[bool] = False  # llama-cpp-python: one sequence at a time
    installs_on_first_use = False
    lora_option: ClassVar[str | None] = None  # one LoRA, the deployment's (base:adapter)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    @classmethod
    def settle(cls, model: Model, options: dict[str, Any], find: Find) -> dict[str, Any]:
        return with_draft(model, options, find)

    def endpoints(self, model: Model) -> frozenset[str]:
        return endpoints_of(model)

    def served_name(self, model: Model, adapter: str | None) -> str:
        return model.name  # an instance starts with its LoRA

    def check(self, model: Model, endpoint: str) -> None:
        if endpoint != "chat" or model.facts.get("chat_template"):
            return
        saved = model.settings.options if model.settings else {}
        if not saved.get("chat_template"):
            raise ChatTemplateMissing(model.name)

    def config(self, model: Model, options: LlamaCppOptions, adapter: Adapter | None, n_gpus: int) -> Config:
        """The estimate's configuration (llama-server's ways); the mmproj, the LoRA and a draft
        model load whole beside the weights."""
        extra = sum(c.size for c in model.components if c.role == "mmproj")
        extra += adapter.size if adapter else 0
        if options.draft_model and os.path.isfile(options.draft_model):
            extra += os.path.getsize(options.draft_model)  # its weights; its KV cache is small beside them
        return Config(
            n_ctx=options.n_ctx or model.context_length or 4096,
            parallel=options.parallel,
            cache_type_k=options.cache_type_k,
            cache_type_v=options.cache_type_v,
            n_gpu_layers=0 if options.cpu_only else options.n_gpu_layers,
            tensor_split=tuple(options.tensor_split or ()),
            n_gpus=0 if options.cpu_only else n_gpus,
            extra_bytes=extra,
            prompt_cache_bytes=prompt_cache_mib(model, options) * MiB,
        )

    def fit(
        self,
        model: Model,
        options: LlamaCppOptions,
        adapter: Adapter | None,
        free_ram: int,
        free_vram: list[int],
    ) -> Fit | None:
        if options.cpu_only:
            free_vram = []
        return fit_gguf(model, self.config(model, options, adapter, len(free_vram)), free_ram, free_vram)


def kv_bytes_per_token(model: Model, o: LlamaCppOptions) -> float:
    """Bytes of KV cache a token takes (0: the model's facts do not say)."""
    f = model.facts

    def num(key: str) -> int:
        value = f.get(key)
        return int(value) if isinstance(value, int) else 0

    heads = num("head_count")
    k_len = num("key_length") or (num("embedding_length") // heads if heads else 0)
    v_len = num("value_length") or k_len
    return (
        num("block_count")
        * (num("head_count_kv") or heads)
        * (CACHE_BYTES[o.cache_type_k] * k_len + CACHE_BYTES[o.cache_type_v] * v_len)
    )


def prompt_cache_mib(model: Model, o: LlamaCppOptions) -> int:
    """The size of llama-server's prompt cache: as set, else room for one full context's KV
    cache (at least 64 MiB, at most llama.cpp's own default of 8 GiB)."""
    if o.cache_ram is not None:
        return o.cache_ram
    per_token = kv_bytes_per_token(model, o)
    if not per_token:
        return 256
    n_ctx = o.n_ctx or model.context_length or 4096
    return max(64, min(8192, math.ceil(per_token * n_ctx / MiB)))


def cached_tokens(model: Model, o: LlamaCppOptions) -> int | None:
    """Prompt tokens llama-server keeps for reuse: its slots' context, and its prompt cache
    (None: the model's facts do not say how big a token is)."""
    per_token = kv_bytes_per_token(model, o)
    if not per_token:
        return None
    n_ctx = o.n_ctx or model.context_length or 4096
    return n_ctx + int(prompt_cache_mib(model, o) * MiB // per_token)


def speculation_args(o: LlamaCppOptions) -> list[str]:
    """llama-server's speculative decoding flags: a draft model, n-gram drafting, or both."""
    kinds = (["draft-simple"] if o.draft_model else []) + (["ngram-simple"] if o.ngram_speculation else [])
    if not kinds:
        return []
    args = ["--spec-type", ",".join(kinds)]
    if o.draft_model:
        args += ["--spec-draft-model", o.draft_model]
    for value, flag in ((o.draft_max, "--spec-draft-n-max"), (o.draft_min, "--spec-draft-n-min")):
        if value is not None:
            args += [flag, str(value)]
    if o.draft_p_min is not None:
        args += ["--spec-draft-p-min", f"{o.draft_p_min:g}"]
    return args


def gpu_layers(options: LlamaCppOptions, placement: Placement) -> int | None:
    """The layers to put on the GPUs: none for cpu_only, the options' number, or the estimate's
    "as many as fit" from the placement; None: let the engine decide (no estimate was made)."""
    if options.cpu_only:
        return 0
    if options.n_gpu_layers >= 0:
        return options.n_gpu_layers
    return placement.gpu_layers


VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}\Z")
BUILD = "llama-server-"  # a version's binary in MODELYARD_HOME/bin: llama-server-<version>


class LlamaServer(LlamaCppFamily):
    """llama-server: the configured binary, else MODELYARD_HOME/bin, else PATH; other builds
    side by side in MODELYARD_HOME/bin as llama-server-<version>."""

    name: ClassVar[str] = "llama.cpp"
    anthropic_messages: ClassVar[bool] = True  # llama-server has /v1/messages
    tokenizer_api: ClassVar[str | None] = "llama.cpp"
    fills_in_middle: ClassVar[bool] = True  # /infill, for models with FIM tokens
    slots_share_context: ClassVar[bool] = True  # --parallel N: each slot has n_ctx / N
    distributable: ClassVar[bool] = True  # llama-server --rpc, rpc-server on the other workers

    def __init__(self, configured: Path | None, bin_dir: Path) -> None:
        self.configured = configured
        self.bin_dir = bin_dir
        # built from source into HOME/bin (a few minutes); never over a binary the settings name
        self.installs_on_first_use = configured is None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(settings.llama_server, settings.bin_dir)

    @classmethod
    def rank(cls, model: Model) -> int | None:
        return 0 if model.format == "gguf" and model.category not in DIFFUSION else None

    def program(self, version: str | None = None) -> str | None:
        if version is not None:
            candidates = [self.bin_dir / f"{BUILD}{version}"]
        elif self.configured:
            candidates = [self.configured]
        else:
            candidates = [self.bin_dir / "llama-server"]
            if found := shutil.which("llama-server"):
                candidates.append(Path(found))
        return next((str(c) for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)

    def _distributed(
        self, model: Model, placement: Placement, version: str | None
    ) -> tuple[int, list[float], EngineSpec]:
        """One model over the placement's node and its peers (llama.cpp's RPC): an rpc-server on
        each peer, and for llama-server the layers to put on devices and their split. Its
        devices are the peers' rpc-servers first, then this node's GPUs; the layers of a node
        without GPUs stay on its CPU."""
        program = Path(self.preflight(version))
        rpc = program.with_name(rpc_server_name(program.name))
        if not rpc.is_file():
            raise EngineUnavailable(
                f"{program.name} has no rpc-server beside it, which runs its share on other workers",
                hint="build both: `modelyard backends install llama.cpp"
                + (f" --version {version}`" if version else "`"),
            )
        shares = list(placement.tensor_split) or [1 / (1 + len(placement.peers))] * (1 + len(placement.peers))
        mine, theirs = shares[0], shares[1:]
        total = int(model.facts.get("block_count") or 0) + 1  # the blocks and the output layer
        if placement.gpus:  # every layer on a device: the peers', then this node's GPUs
            split = theirs + [mine / len(placement.gpus)] * len(placement.gpus)
            layers = placement.gpu_layers if placement.gpu_layers is not None else total
        else:  # this node's share stays on its CPU
            split = theirs
            layers = max(1, round(total * sum(theirs)))
        peer = EngineSpec(
            argv=[str(rpc), "--host", HOST, "--port", PORT], health_path="", runtime="rpc-server"
        )
        return layers, [round(x / sum(split), 4) for x in split], peer

    def executable(self) -> str:
        return self.preflight()

    def preflight(self, version: str | None = None) -> str:
        program = self.program(version)
        if program is not None:
            return program
        if version is not None:
            installed = self.versions()
            raise EngineUnavailable(
                f"llama-server {version} is not installed",
                hint=f"build it with `modelyard backends install llama.cpp --version {version}`"
                + (f" (installed: {', '.join(installed)})" if installed else ""),
            )
        if self.configured:
            raise EngineUnavailable(
                f"the configured llama-server {self.configured} is not an executable file"
            )
        raise EngineUnavailable(
            "llama-server is not installed",
            hint="build it with `modelyard backends install llama.cpp`",
        )

    def versions(self) -> list[str]:
        if not self.bin_dir.is_dir():
            return []
        builds = (p for p in self.bin_dir.glob(f"{BUILD}*") if p.is_file() and os.access(p, os.X_OK))
        return sorted(p.name.removeprefix(BUILD) for p in builds)

    def check_args(self, args: list[str], version: str | None = None) -> None:
        if args:
            flags.check(args, flags.help_flags([self.preflight(version)]), "llama-server")

    variants: ClassVar[tuple[str, ...]] = ("cpu", "cuda", "vulkan")

    def install(self, variant: str, progress: Progress, version: str | None = None) -> str:
        """The default build, from the llama.cpp sources in llama-cpp-python's sdist; with
        ``version``, the sdist of that llama-cpp-python version, beside the default."""
        from modelyard.backends.install import LLAMA_CPP_PYTHON_VERSION, install_llama_server

        if version is not None and not VERSION.match(version):
            raise InvalidSettings(f"{version!r} is not a version", hint="such as 0.3.36")
        path = install_llama_server(
            self.bin_dir,
            variant=variant,
            version=version or LLAMA_CPP_PYTHON_VERSION,
            name=f"{BUILD}{version}" if version else "llama-server",
            progress=lambda s, pct: progress(s, pct, 100),
        )
        return str(path)

    def engine(
        self,
        model: Model,
        options: LlamaCppOptions,
        placement: Placement,
        adapter: Adapter | None,
        version: str | None = None,
    ) -> EngineSpec:
        o = options
        if o.logits_all:
            raise Unsupported(
                "llama-server has no prompt logprobs (echo), which logits_all is for (perplexity)",
                hint=f"run it on llama-cpp-python: `modelyard settings {model.name} --backend "
                "llama-cpp-python --set logits_all=true`",
            )
        args = ["--model", model.path, "--host", HOST, "--port", PORT, "--alias", model.name]
        args += ["--ctx-size", str(o.n_ctx), "--batch-size", str(o.n_batch), "--parallel", str(o.parallel)]
        layers = gpu_layers(o, placement)
        peer = None
        if placement.peers:  # one model over several workers: rpc-servers there, --rpc here
            if o.cpu_only:
                raise InvalidSettings(
                    "cpu_only keeps every layer on this worker's CPU, and a distributed instance "
                    "runs part of them on the others",
                    hint=f"`modelyard settings {model.name} --unset cpu_only`, or --no-distributed",
                )
            layers, split, peer = self._distributed(model, placement, version)
            args += ["--rpc", PEERS]
            args += [] if o.tensor_split else ["--tensor-split", ",".join(f"{x:g}" for x in split)]
        args += ["--n-gpu-layers", "auto" if layers is None else str(layers)]  # auto: llama.cpp's own fit
        if o.cpu_only:
            args += ["--device", "none"]
        if o.main_gpu is not None:
            args += ["--main-gpu", str(o.main_gpu)]
        if o.split_mode:
            args += ["--split-mode", o.split_mode]
        if o.no_kv_offload:
            args += ["--no-kv-offload"]
        args += ["--context-shift" if o.context_shift else "--no-context-shift"]
        if o.cache_reuse:
            args += ["--cache-reuse", str(o.cache_reuse)]
        args += ["--no-webui", "--flash-attn", o.flash_attn, "--cache-ram", str(prompt_cache_mib(model, o))]
        if o.reasoning_format != "auto":
            args += ["--reasoning-format", o.reasoning_format]
        if o.reasoning_budget != -1:
            args += ["--reasoning-budget", str(o.reasoning_budget)]
        args += speculation_args(o)
        # an HTTP thread for each request the gateway may have in flight (its slots, and as many
        # in its own queue: EngineSpec.queued), and some for health checks
        args += ["--threads-http", str(2 * o.parallel + 4)]
        args += ["--cache-type-k", o.cache_type_k, "--cache-type-v", o.cache_type_v]
        files: dict[str, str] = {}
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
            if "{" in o.chat_template:  # a Jinja template goes as a file; a built-in name as it is
                files[CHAT_TEMPLATE_FILE] = o.chat_template
                args += ["--chat-template-file", f"{FOLDER}/{CHAT_TEMPLATE_FILE}"]
            elif o.chat_template == JINJA_BUILT_IN:  # llama-server has it as Jinja too: tools work
                args += ["--chat-template", o.chat_template]
            else:  # with Jinja on, llama-server reads any other name as a template of one word
                args += ["--no-jinja", "--chat-template", o.chat_template]
        if adapter is not None:
            args += ["--lora", adapter.path]
        mmproj = model.component("mmproj")
        if mmproj is not None:
            args += ["--mmproj", mmproj.path]
        if model.category == "embedding":
            args += ["--embeddings"]
        elif model.category == "rerank":
            args += ["--reranking"]
        return EngineSpec(
            argv=[self.preflight(version), *args],
            health_path="/health",
            slots=o.parallel,
            queued=o.parallel,
            cache_tokens=cached_tokens(model, o),
            files=files,
            runtime="llama-server",
            key_env="LLAMA_API_KEY",
            peer=peer,
        )
