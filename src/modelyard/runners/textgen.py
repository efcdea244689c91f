"""transformers text generation: chat (the tokenizer's chat template) and completions, streamed,
with PEFT adapters (several at once, each with a weight: model-compose's peft_adapters)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelyard.backends.transformers import TransformersOptions
from modelyard.errors import EngineError, InvalidRequest
from modelyard.formats.loaders import GPTQMODEL_METHODS
from modelyard.runners import speculation
from modelyard.runners.constrain import Grammars, schema_of
from modelyard.runners.devices import (
    device_of,
    dtype_of,
    gptq_config,
    gptq_kernels,
    loaded_facts,
    memory_map,
    quantization_config,
    rope,
)
from modelyard.runners.media import load_image
from modelyard.runners.reasoning import budget_processor, starts_inside, thinks
from modelyard.runners.requests import GenerationBody
from modelyard.runners.toolcalls import family_of, template_messages

log = logging.getLogger(__name__)

COMBINED = "modelyard-combined"


@dataclass(frozen=True)
class AdapterSpec:
    name: str
    path: str
    weight: float = 1.0


@dataclass
class Prompt:
    ids: list[int]
    extra: dict[str, Any] = field(default_factory=dict)  # more inputs to generate(): pixel_values, ...
    negative: list[int] | None = None  # CFG's negative prompt
    # a thinking template's: True, the model starts inside a thought; False, it may open one
    thinking: bool | None = None


@dataclass
class Sampling:
    max_new_tokens: int
    temperature: float  # 0: greedy
    top_p: float
    top_k: int | None  # None: the model's generation config
    min_p: float | None
    repetition_penalty: float | None
    presence_penalty: float  # OpenAI's: on tokens generated so far, once each / per occurrence
    frequency_penalty: float
    stop: list[str]
    seed: int | None
    guidance_scale: float | None = None  # CFG, with the prompt's negative ids
    grammar: Any = None  # a compiled grammar the answer follows (constrain.py)
    thinking_budget: int | None = None  # tokens a thought may take before its end is written
    drafts: tuple[int, int] | None = None  # assisted generation: (drafted, accepted), once done

    def generate_kwargs(self) -> dict[str, Any]:
        """The arguments transformers' generate() takes for these."""
        kwargs: dict[str, Any] = {"do_sample": self.temperature > 0}
        if self.temperature > 0:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
            if self.top_k is not None:
                kwargs["top_k"] = self.top_k
            if self.min_p:
                kwargs["min_p"] = self.min_p
        if self.repetition_penalty is not None:
            kwargs["repetition_penalty"] = self.repetition_penalty
        return kwargs


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def gguf_parts(path: str) -> tuple[str, str | None]:
    """A model's folder and, for a GGUF file (which transformers reads dequantized), its name."""
    if path.endswith(".gguf") and Path(path).is_file():
        return str(Path(path).parent), Path(path).name
    return path, None


class Generator:
    """A causal LM: chat through the tokenizer's chat template, and plain completions (a GGUF
    too, read by transformers, with the tokenizer files beside it where there are some)."""

    def __init__(self, path: str, options: TransformersOptions, adapters: list[AdapterSpec]) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = device_of(options.device)
        if options.trust_remote_code:
            log.warning("trust_remote_code is on: the model's own Python code runs in this process")
        if not options.use_fast:
            log.warning("use_fast is off, but transformers 5 has only fast tokenizers: the fast one loads")
        folder, gguf = gguf_parts(path)
        beside = gguf is not None and any((Path(folder) / f).is_file() for f in TOKENIZER_FILES)
        self.tokenizer = AutoTokenizer.from_pretrained(
            folder,
            local_files_only=True,
            trust_remote_code=options.trust_remote_code,
            use_fast=options.use_fast,
            **({"gguf_file": gguf} if gguf is not None and not beside else {}),  # else the files beside it
        )
        self._setup(AutoModelForCausalLM, path, options, adapters)

    def _setup(self, auto: Any, path: str, options: TransformersOptions, adapters: list[AdapterSpec]) -> None:
        import torch
        from transformers import AutoConfig

        dtype = dtype_of(options.precision, self.device)
        kwargs: dict[str, Any] = {
            "dtype": dtype,
            "local_files_only": True,
            "trust_remote_code": options.trust_remote_code,
            "low_cpu_mem_usage": options.low_cpu_mem_usage,
        }
        if options.attn_implementation != "auto":
            kwargs["attn_implementation"] = options.attn_implementation
        compute = None if options.compute_dtype == "auto" else dtype_of(options.compute_dtype, self.device)
        quant = quantization_config(
            options.quantization, dtype, compute=compute, double_quant=options.double_quant
        )
        caps = memory_map(options, self.device)
        spread = options.device == "auto" and self.device == "cuda" and torch.cuda.device_count() > 1
        if options.auto_devices or caps or options.disk_offload or spread:
            kwargs["device_map"] = "auto"  # by free memory: GPUs, then the CPU, then the disk
            if caps:
                kwargs["max_memory"] = caps
            if options.disk_offload:
                kwargs["offload_folder"] = options.disk_offload
        elif quant is not None:
            kwargs["device_map"] = "auto" if self.device == "cuda" else {"": self.device}
        path, gguf = gguf_parts(path)  # a GGUF: read (dequantized) from the file in its folder
        if gguf is not None:
            kwargs["gguf_file"] = gguf
        config = AutoConfig.from_pretrained(
            path,
            local_files_only=True,
            trust_remote_code=options.trust_remote_code,
            **({"gguf_file": gguf} if gguf is not None else {}),
        )
        gptq = gptq_config(path, options) if gguf is None else None
        if gptq is not None:  # an old GPTQ checkpoint: loaded as if its config held the settings
            config.quantization_config = gptq.to_dict()
            kwargs["config"] = config
        elif quant is not None:
            kwargs["quantization_config"] = quant
        method = (getattr(config, "quantization_config", None) or {}).get("quant_method")
        if method in GPTQMODEL_METHODS:
            gptq_kernels(method)
        if rope(config, options):
            kwargs["config"] = config
        model: Any = auto.from_pretrained(path, **kwargs)
        if "device_map" not in kwargs:
            model = model.to(self.device)
        self.assistant = None
        if options.draft_model:  # assisted generation's draft: beside the model, at its dtype
            self.assistant = auto.from_pretrained(
                options.draft_model,
                dtype=dtype,
                local_files_only=True,
                trust_remote_code=options.trust_remote_code,
            ).to(model.device)
            self.assistant.eval()
        self.speculation = speculation.generate_kwargs(
            self.assistant, options.prompt_lookup, options.draft_max
        )
        self.facts = loaded_facts(model)  # what the engine reports on /health
        self.grammars = Grammars(self.tokenizer, _logits_size(model), _stop_ids(model, self.tokenizer))
        self.tool_family = family_of(self.tokenizer.chat_template)
        self.thinks = thinks(self.tokenizer.chat_template)
        self.model = _with_adapters(model, adapters)
        self.model.eval()
        config = getattr(model.config, "text_config", None) or model.config
        self.n_ctx = options.n_ctx or int(getattr(config, "max_position_embeddings", 0) or 2048)
        self.adapters = adapters
        self._lock = asyncio.Lock()  # one generation at a time; the gateway queues the rest

    # -- prompts -----------------------------------------------------------------------------

    def chat_prompt(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> Prompt:
        """The prompt the chat template makes of ``messages`` (with ``tools`` shown, and the
        template's own variables: enable_thinking, ...)."""
        if not self.tokenizer.chat_template:
            raise InvalidRequest(
                "this model has no chat template, so chat messages cannot be formatted for it; "
                "use /v1/completions with plain text",
                param="messages",
            )
        for m in messages:
            if isinstance(m, dict) and isinstance(m.get("content"), list):
                if any(isinstance(p, dict) and p.get("type") != "text" for p in m["content"]):
                    raise InvalidRequest(
                        "this model takes text only: no image or audio parts", param="messages"
                    )
                m["content"] = "".join(p.get("text", "") for p in m["content"] if isinstance(p, dict))
        shown: list[Any] | None = list(tools) if tools else None
        text = self.tokenizer.apply_chat_template(
            template_messages(messages),
            tools=shown,
            add_generation_prompt=True,
            tokenize=False,
            **(kwargs or {}),
        )
        thinking = starts_inside(str(text)) if self.thinks else None
        return Prompt(self.tokenizer(text, add_special_tokens=False)["input_ids"], thinking=thinking)

    def text_prompt(self, prompt: str | list[str] | list[int]) -> Prompt:
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if isinstance(prompt, str):
            return Prompt(self.tokenizer(prompt)["input_ids"])
        if all(isinstance(t, int) for t in prompt):
            return Prompt([int(t) for t in prompt])
        raise InvalidRequest("'prompt' must be one string or a list of token ids", param="prompt")

    def sampling(self, body: GenerationBody, prompt_len: int) -> Sampling:
        room = self.n_ctx - prompt_len
        if room <= 0:
            raise InvalidRequest(
                f"the prompt has {prompt_len} tokens; the context is {self.n_ctx}", param="messages"
            )
        wanted = body.max_completion_tokens or body.max_tokens or room
        return Sampling(
            max_new_tokens=min(wanted, room),
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            top_k=body.top_k,
            min_p=body.min_p,
            repetition_penalty=body.repetition_penalty,
            presence_penalty=body.presence_penalty or 0.0,
            frequency_penalty=body.frequency_penalty or 0.0,
            stop=body.stops(),
            seed=body.seed,
            guidance_scale=body.guidance_scale,
            thinking_budget=body.thinking_budget_tokens,
        )

    def grammar(self, body: GenerationBody) -> Any:
        """The compiled grammar a request's response_format asks for (None: free text)."""
        schema = schema_of(body.response_format)
        return None if schema is None else self.grammars.compile(schema)

    def negative_ids(self, text: str) -> list[int]:
        """CFG's negative prompt as tokens (at least one: the start of a text)."""
        ids: list[int] = self.tokenizer(text)["input_ids"] if text else []
        first = self.tokenizer.bos_token_id
        return ids or [first if first is not None else self.tokenizer.eos_token_id]

    # -- generating --------------------------------------------------------------------------

    async def stream(self, prompt: Prompt, s: Sampling) -> AsyncIterator[tuple[str, str | None, int]]:
        """Yields (text, finish_reason, completion tokens so far); the last item has a reason."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[tuple[str, bool] | BaseException] = asyncio.Queue()
            stop_now = threading.Event()
            counted = [0]
            thread = threading.Thread(
                target=self._generate, args=(prompt, s, loop, queue, stop_now, counted), daemon=True
            )
            thread.start()
            text = ""
            sent = 0
            reason: str | None = None
            try:
                while True:
                    item = await queue.get()
                    if isinstance(item, BaseException):
                        raise EngineError(f"generation failed: {item}") from item
                    piece, finished = item
                    text += piece
                    cut = _stop_at(text, s.stop)
                    if cut is not None:
                        text, reason = text[:cut], "stop"
                        stop_now.set()
                    hold = 0 if reason or finished else _partial_stop(text, s.stop)
                    if len(text) - hold > sent:
                        yield text[sent : len(text) - hold], None, counted[0]
                        sent = len(text) - hold
                    if reason or finished:
                        break
                if reason is None:
                    reason = "length" if counted[0] >= s.max_new_tokens else "stop"
                if len(text) > sent:
                    yield text[sent:], None, counted[0]
                yield "", reason, counted[0]
            finally:
                stop_now.set()
                await asyncio.to_thread(thread.join)

    def _generate(
        self,
        prompt: Prompt,
        s: Sampling,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[tuple[str, bool] | BaseException],
        stop_now: threading.Event,
        counted: list[int],
    ) -> None:
        import torch
        import transformers
        from transformers import LogitsProcessor, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        base: Any = transformers.TextStreamer

        class Streamer(base):  # type: ignore[misc]
            def put(self, value: Any) -> None:
                if not self.next_tokens_are_prompt:
                    counted[0] += int(value.numel())
                super().put(value)

            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, (text, stream_end))

        class Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), stop_now.is_set(), dtype=torch.bool)

        class Penalties(LogitsProcessor):
            """OpenAI's presence and frequency penalties, on the tokens generated so far."""

            def __call__(self, input_ids: Any, scores: Any) -> Any:
                generated = input_ids[:, len(prompt.ids) :]
                if generated.shape[1] == 0:
                    return scores
                ones = torch.ones(generated.shape, dtype=scores.dtype, device=scores.device)
                counts = torch.zeros_like(scores).scatter_add_(1, generated, ones)
                return (
                    scores - s.frequency_penalty * counts - s.presence_penalty * (counts > 0).to(scores.dtype)
                )

        try:
            if s.seed is not None:
                torch.manual_seed(int(s.seed))
            inputs = torch.tensor([prompt.ids], device=self.model.device)
            extra = {k: v.to(self.model.device) if hasattr(v, "to") else v for k, v in prompt.extra.items()}
            processors = [Penalties()] if s.presence_penalty or s.frequency_penalty else []
            if s.grammar is not None:
                processors.append(self.grammars.processor(s.grammar))
            if s.thinking_budget is not None and prompt.thinking is not None:
                budget = budget_processor(self.tokenizer, s.thinking_budget, len(prompt.ids), prompt.thinking)
                processors.append(budget)
            if prompt.negative is not None:
                extra["guidance_scale"] = s.guidance_scale
                extra["negative_prompt_ids"] = torch.tensor([prompt.negative], device=self.model.device)
            pad = self.tokenizer.pad_token_id
            # a grammar follows one token at a time: drafts it would have to take back are off then
            assisted = self.speculation if s.grammar is None else {}
            counting = speculation.Counting(self.model) if assisted else contextlib.nullcontext()
            with torch.inference_mode(), counting as drafts:
                self.model.generate(
                    input_ids=inputs,
                    attention_mask=torch.ones_like(inputs),
                    max_new_tokens=s.max_new_tokens,
                    streamer=Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True),
                    stopping_criteria=StoppingCriteriaList([Stop()]),
                    logits_processor=LogitsProcessorList(processors),
                    pad_token_id=pad if pad is not None else self.tokenizer.eos_token_id,
                    **extra,
                    **s.generate_kwargs(),
                    **assisted,
                )
            if drafts is not None:
                s.drafts = (drafts.proposed, drafts.accepted(counted[0]))
        except BaseException as e:
            loop.call_soon_threadsafe(queue.put_nowait, e)


class VisionGenerator(Generator):
    """An image-text-to-text model (LLaVA-style and the like): chat messages with image parts
    (``image_url`` with a data URL, or a local file path / file:// URL)."""

    def __init__(self, path: str, options: TransformersOptions, adapters: list[AdapterSpec]) -> None:
        import transformers

        self.device = device_of(options.device)
        if options.trust_remote_code:
            log.warning("trust_remote_code is on: the model's own Python code runs in this process")
        processors: Any = transformers.AutoProcessor
        self.processor = processors.from_pretrained(
            path, local_files_only=True, trust_remote_code=options.trust_remote_code
        )
        self.tokenizer = self.processor.tokenizer
        self._setup(transformers.AutoModelForImageTextToText, path, options, adapters)

    def chat_prompt(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> Prompt:
        if not (self.processor.chat_template or self.tokenizer.chat_template):
            raise InvalidRequest("this model has no chat template", param="messages")
        images, converted = [], []
        for m in messages:
            content = m.get("content")
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
            out = []
            for part in parts:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    out.append({"type": "text", "text": str(part.get("text", ""))})
                elif kind == "image_url":
                    url = part.get("image_url")
                    url = url.get("url") if isinstance(url, dict) else url
                    images.append(load_image(url, "messages"))
                    out.append({"type": "image"})
                else:
                    raise InvalidRequest(
                        f"a message part of type {kind!r} is not taken here", param="messages"
                    )
            converted.append({"role": m.get("role", "user"), "content": out})
        text = self.processor.apply_chat_template(
            converted, tools=tools, add_generation_prompt=True, tokenize=False, **(kwargs or {})
        )
        inputs = self.processor(text=text, images=images or None, return_tensors="pt")
        extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
        return Prompt(inputs["input_ids"][0].tolist(), extra)


def _logits_size(model: Any) -> int:
    """How many logits the model gives per token (its output layer's size)."""
    head = model.get_output_embeddings()
    if head is not None and getattr(head, "weight", None) is not None:
        return int(head.weight.shape[0])
    config = getattr(model.config, "text_config", None) or model.config
    return int(config.vocab_size)


def _stop_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokens that end an answer: the generation config's, else the tokenizer's."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]


def _with_adapters(model: Any, adapters: list[AdapterSpec]) -> Any:
    """Load each PEFT adapter; one at weight 1 is used as it is, others are combined by weight."""
    if not adapters:
        return model
    from peft import PeftModel

    first = adapters[0]
    peft_model = PeftModel.from_pretrained(model, first.path, adapter_name=first.name, is_trainable=False)
    for a in adapters[1:]:
        peft_model.load_adapter(a.path, adapter_name=a.name, is_trainable=False)
    if len(adapters) == 1 and first.weight == 1.0:
        peft_model.set_adapter(first.name)
        return peft_model
    peft_model.add_weighted_adapter(
        [a.name for a in adapters],
        [a.weight for a in adapters],
        adapter_name=COMBINED,
        combination_type="cat",
    )
    peft_model.set_adapter(COMBINED)
    return peft_model


def _stop_at(text: str, stops: list[str]) -> int | None:
    found = [text.find(s) for s in stops if s in text]
    return min(found) if found else None


def _partial_stop(text: str, stops: list[str]) -> int:
    """How many characters at the end might begin a stop string: held back until they are known."""
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                hold = max(hold, k)
                break
    return hold
