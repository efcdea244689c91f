"""ExLlamaV2's dynamic generator behind the runner's chat and completions: EXL2 and GPTQ models on
NVIDIA GPUs. Requests are generated together (``parallel`` at once, paged attention with
flash-attn), each streamed from one generator loop in a thread of its own.

``load_plan`` and ``sampler_settings`` map modelyard's options and OpenAI's sampling onto
exllamav2's own arguments; they import nothing from exllamav2, so they are tested anywhere."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from modelyard.backends.exllamav2 import ExLlamaV2Options, cache_tokens
from modelyard.errors import EngineError, InvalidSettings, Unsupported
from modelyard.runners.constrain import schema_of
from modelyard.runners.requests import GenerationBody
from modelyard.runners.textgen import Generator, Prompt, Sampling
from modelyard.runners.toolcalls import family_of

log = logging.getLogger(__name__)

GiB = 1 << 30
CACHES = {"fp16": "ExLlamaV2Cache", "q8": "ExLlamaV2Cache_Q8", "q4": "ExLlamaV2Cache_Q4"}


@dataclass(frozen=True)
class LoadPlan:
    max_seq_len: int  # the model's context (config.max_seq_len)
    cache: str  # the exllamav2 cache class
    cache_tokens: int  # what the cache holds: every running request's tokens together
    gpu_split: list[float] | None  # GiB per GPU (model.load), None: model.load_autosplit
    no_flash_attn: bool
    paged: bool  # the dynamic generator's paged attention: several requests at once, CFG
    max_batch_size: int


def load_plan(options: ExLlamaV2Options, model_max_seq_len: int, flash_attn: bool) -> LoadPlan:
    """How to load: ``model_max_seq_len`` is the one exllamav2 read from config.json,
    ``flash_attn`` whether flash-attn imports in this environment."""
    n_ctx = options.n_ctx or model_max_seq_len
    paged = flash_attn and not options.no_flash_attn
    if options.cfg_cache and not paged:
        raise InvalidSettings(
            "cfg_cache needs flash-attn (the dynamic generator's paged cache holds the negative "
            "prompt beside the prompt)",
            hint="install flash-attn in the exllamav2 environment, or turn cfg_cache off",
        )
    parallel = options.parallel if paged else 1
    tokens = cache_tokens(n_ctx * (parallel if paged else 1), options.cfg_cache)
    return LoadPlan(
        max_seq_len=n_ctx,
        cache=CACHES[options.cache_type],
        cache_tokens=tokens,
        gpu_split=list(options.gpu_split) if options.gpu_split else None,
        no_flash_attn=options.no_flash_attn,
        paged=paged,
        max_batch_size=parallel * (2 if options.cfg_cache else 1),
    )


def sampler_settings(s: Sampling) -> dict[str, Any]:
    """exllamav2's ExLlamaV2Sampler.Settings for OpenAI's sampling: greedy at temperature 0, no
    repetition penalty unless asked (exllamav2's default is 1.025)."""
    kw: dict[str, Any] = {"token_repetition_penalty": s.repetition_penalty or 1.0}
    if s.temperature == 0:
        kw.update(temperature=1.0, top_k=1, top_p=0.0)
    else:
        kw.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k or 0, min_p=s.min_p or 0.0)
    if s.presence_penalty:
        kw["token_presence_penalty"] = s.presence_penalty
    if s.frequency_penalty:
        kw["token_frequency_penalty"] = s.frequency_penalty
    if s.guidance_scale is not None and s.guidance_scale != 1:
        kw["cfg_scale"] = s.guidance_scale
    return kw


def finish_reason(eos_reason: str | None) -> str:
    return "length" if eos_reason == "max_new_tokens" else "stop"


class Exl2Generator(Generator):
    """An EXL2 / GPTQ causal LM on exllamav2; the prompts are the Hugging Face tokenizer's (its
    chat template), the tokens exllamav2's."""

    def __init__(self, path: str, options: ExLlamaV2Options) -> None:
        import torch

        if not torch.cuda.is_available():
            raise EngineError(
                "ExLlamaV2 needs an NVIDIA GPU with CUDA, and torch sees none here",
                hint="check `nvidia-smi`, and that the exllamav2 environment is the cuda variant",
            )
        from exllamav2 import ExLlamaV2, ExLlamaV2Config, ExLlamaV2Tokenizer
        from exllamav2 import cache as caches
        from exllamav2.attn import has_flash_attn
        from exllamav2.generator import ExLlamaV2DynamicGenerator
        from transformers import AutoTokenizer

        config = ExLlamaV2Config(path)
        config.arch_compat_overrides()
        plan = load_plan(options, int(config.max_seq_len), bool(has_flash_attn))
        config.max_seq_len = plan.max_seq_len
        config.no_flash_attn = plan.no_flash_attn
        model = ExLlamaV2(config)
        kind = getattr(caches, plan.cache)
        if plan.gpu_split is not None:
            model.load(gpu_split=plan.gpu_split)
            cache = kind(model, max_seq_len=plan.cache_tokens)
        else:
            cache = kind(model, max_seq_len=plan.cache_tokens, lazy=True)
            model.load_autosplit(cache)
        self.exl_tokenizer = ExLlamaV2Tokenizer(config)
        self.generator = ExLlamaV2DynamicGenerator(
            model=model,
            cache=cache,
            tokenizer=self.exl_tokenizer,
            max_batch_size=plan.max_batch_size,
            max_seq_len=plan.max_seq_len,
            paged=plan.paged,
        )
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.tool_family = family_of(self.tokenizer.chat_template)
        self.device = "cuda"
        self.adapters = []
        self.n_ctx = plan.max_seq_len
        self.facts = {
            "engine": "exllamav2",
            "cache": plan.cache,
            "cache_tokens": plan.cache_tokens,
            "paged": plan.paged,
            "gpu_split": plan.gpu_split or "auto",
            "gpus": torch.cuda.device_count(),
        }
        self._jobs = threading.Lock()  # the generator is not thread-safe: enqueue, iterate, cancel
        self._wake = threading.Event()
        threading.Thread(target=self._loop, name="exl2-generator", daemon=True).start()

    def grammar(self, body: GenerationBody) -> Any:
        if schema_of(body.response_format) is not None:
            raise Unsupported(
                "structured output (response_format, a forced tool call) is not there yet on exllamav2",
                hint="load the model on transformers (`--backend transformers`) for it",
            )
        return None

    def _loop(self) -> None:
        """Runs the generator while it has jobs; each result goes to its request's queue."""
        while True:
            self._wake.wait()
            with self._jobs:
                if not self.generator.num_remaining_jobs():
                    self._wake.clear()
                    continue
                try:
                    results = self.generator.iterate()
                except BaseException as e:  # a CUDA error: every waiting request hears of it
                    log.exception("generation failed")
                    for job in [*self.generator.pending_jobs, *self.generator.active_jobs]:
                        loop, queue = job.identifier
                        loop.call_soon_threadsafe(queue.put_nowait, e)
                    self.generator.clear_queue()
                    continue
            for r in results:
                loop, queue = r["identifier"]
                if r.get("stage") == "streaming":
                    loop.call_soon_threadsafe(queue.put_nowait, r)

    async def stream(self, prompt: Prompt, s: Sampling) -> AsyncIterator[tuple[str, str | None, int]]:
        import torch
        from exllamav2.generator import ExLlamaV2DynamicJob, ExLlamaV2Sampler

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        ids = [torch.tensor([prompt.ids], dtype=torch.long)]
        if prompt.negative is not None:
            ids.append(torch.tensor([prompt.negative], dtype=torch.long))
        stops: list[int | str] = [*s.stop]
        for token in (self.exl_tokenizer.eos_token_id, self.tokenizer.eos_token_id):
            if token is not None and token not in stops:
                stops.append(token)
        job = ExLlamaV2DynamicJob(
            input_ids=ids,
            max_new_tokens=s.max_new_tokens,
            gen_settings=ExLlamaV2Sampler.Settings(**sampler_settings(s)),
            seed=s.seed,
            stop_conditions=stops,
            identifier=(loop, queue),
        )
        with self._jobs:
            self.generator.enqueue(job)
        self._wake.set()
        done = False
        try:
            while not done:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise EngineError(f"generation failed: {item}") from item
                done = bool(item.get("eos"))
                text = item.get("text", "")
                count = int(item.get("new_tokens", job.new_tokens))
                if text:
                    yield text, None, count
                if done:
                    yield "", finish_reason(item.get("eos_reason")), count
        finally:
            if not done:  # the client went away: free its pages
                with self._jobs:
                    self.generator.cancel(job)
