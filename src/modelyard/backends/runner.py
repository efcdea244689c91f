"""The Python backends (sentence-transformers, transformers, diffusers) run modelyard's own
runner (modelyard.runners): which task a model gets, which endpoints it serves, and the command
that starts it in the backend's interpreter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Generic

from pydantic import BaseModel

from modelyard.backends import environments
from modelyard.backends.base import HOST, ON_REQUEST, PORT, EngineSpec, Find, Opts, Placement
from modelyard.backends.common import GATEWAY_OPTIONS
from modelyard.backends.diffusers import DiffusersOptions
from modelyard.backends.drafts import with_draft
from modelyard.backends.faster_whisper import FasterWhisperOptions
from modelyard.backends.insightface import InsightFaceOptions
from modelyard.backends.piper import PiperOptions
from modelyard.backends.sentence_transformers import SentenceTransformersOptions
from modelyard.backends.spandrel import SpandrelOptions
from modelyard.backends.transformers import TransformersOptions
from modelyard.catalog.records import Adapter, Model
from modelyard.categories import DIFFUSION
from modelyard.config import Settings
from modelyard.errors import InvalidSettings, Unsupported
from modelyard.estimate import Fit, fit_files, fit_folder
from modelyard.estimate.hf import GPTQMODEL_RAM, TORCH_RAM
from modelyard.formats.loaders import (
    DIFFUSERS,
    FASTER_WHISPER,
    GPTQMODEL_METHODS,
    INSIGHTFACE,
    PIPER,
    SENTENCE_TRANSFORMERS,
    SPANDREL,
    TRANSFORMERS,
    quant_method,
)
from modelyard.runners import ENGINE_KEY
from modelyard.tracing import ENDPOINT_VAR

# category -> (runner task, OpenAI endpoints)
TASKS: dict[str, tuple[str, frozenset[str]]] = {
    "embedding": ("embed", frozenset({"embeddings"})),
    "rerank": ("rerank", frozenset({"rerank"})),
    "classification": ("classify", frozenset({"classify"})),
    "chat": ("generate", frozenset({"chat", "completions"})),
    "multimodal": ("vision", frozenset({"chat", "completions"})),
    "image": ("image", frozenset({"images"})),
    "video": ("image", frozenset({"images"})),
    "speech-to-text": ("transcribe", frozenset({"audio/transcriptions", "audio/translations"})),
    "text-to-speech": ("speak", frozenset({"audio/speech"})),
    "captioning": ("caption", frozenset({"images/captions", "chat"})),
    "upscale": ("upscale", frozenset({"images/upscale"})),
    "face": ("face", frozenset({"embeddings"})),
}
# Requests one instance takes at once: an encoder's batcher groups them (a speech model's and a
# captioner's too); a
# generator, a vision model and an image pipeline answer one at a time (the rest wait in the
# gateway's queue).
ENCODER_SLOTS = 256
ONNX_RAM = 200 << 20  # the runner on onnxruntime or CTranslate2: 110-170 MiB measured with tiny models
SLOTS = {
    "embed": ENCODER_SLOTS,
    "rerank": ENCODER_SLOTS,
    "classify": ENCODER_SLOTS,
    "transcribe": 16,
    "caption": 16,
}


# formats the Python backends never read: llama.cpp's, and a server that runs elsewhere
NOT_OURS = ("gguf", "ggml", "remote")
# the GGUF architectures transformers reads (transformers.integrations.ggml), chat models of them
GGUF_ARCHITECTURES = frozenset(
    {"llama", "mistral", "qwen2", "qwen2moe", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3", "falcon",
     "stablelm", "starcoder2", "gpt2", "bloom", "nemotron", "lfm2"}
)  # fmt: skip


def _plain(model: Model) -> bool:
    """A model in a format the runner reads, at full precision (no quantization of its own)."""
    return model.format not in NOT_OURS and quant_method(model.format, model.facts) is None


def task_of(model: Model) -> tuple[str, frozenset[str]]:
    if model.category not in TASKS:
        raise Unsupported(
            f"{model.name!r} is a {model.category} model; the Python backends do not serve that yet",
            hint="convert it to GGUF to run it on llama.cpp",
        )
    return TASKS[model.category]


def chosen_adapters(model: Model, listed: list[Any], adapter: Adapter | None) -> list[dict[str, Any]]:
    """The adapters to apply: the one asked for (base:adapter), else the options' list (PEFT
    adapters or SD LoRAs), each a library adapter of this model or a file / folder, with a weight."""
    if adapter is not None:
        return [{"name": adapter.name, "path": adapter.path, "weight": 1.0}]
    chosen = []
    for i, item in enumerate(listed):
        if item.name:
            found = model.adapter(item.name)
            if found is None:
                raise InvalidSettings(
                    f"the settings name {item.name!r}, which is not an adapter of {model.name!r}",
                    hint=f"`modelyard lora ls {model.name}` lists them",
                )
            name, path = found.name, found.path
        else:
            path = str(item.path)
            if not Path(path).exists():
                raise InvalidSettings(f"no such adapter file or folder {path}")
            name = f"adapter-{i}"
        chosen.append({"name": name, "path": path, "weight": item.weight})
    return chosen


def _folder_bytes(folder: str | None) -> int:
    """The size of a model folder's weights (0: none)."""
    if not folder or not Path(folder).is_dir():
        return 0
    return sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))


class RunnerBackend(environments.InEnvironment, Generic[Opts]):
    """A backend whose engine is modelyard's runner, in the server's interpreter when it has the
    backend's packages, else in a managed environment; its options are an ``Opts``."""

    name: ClassVar[str]
    loader: ClassVar[str]
    options: ClassVar[type[BaseModel]]
    merges_embeddings: ClassVar[bool] = False
    anthropic_messages: ClassVar[bool] = False
    distributable: ClassVar[bool] = False
    dialect: ClassVar[str] = "openai"
    tokenizer_api: ClassVar[str | None] = None
    fills_in_middle: ClassVar[bool] = False
    slots_share_context: ClassVar[bool] = False
    installs_on_first_use = True  # its managed environment
    lora_option: ClassVar[str | None] = None

    def __init__(
        self,
        envs: Path,
        *,
        managed_only: bool,
        torch_index: str | None,
        outputs: Path,
        otel_endpoint: str | None = None,
    ) -> None:
        super().__init__(
            envs, managed_only=managed_only, torch_index=torch_index, otel_endpoint=otel_endpoint
        )
        self.outputs = outputs  # where image answers as url are written

    @classmethod
    def configured(cls, settings: Settings) -> dict[str, Any]:
        return {**super().configured(settings), "outputs": settings.home / "outputs" / "images"}

    @classmethod
    def rank(cls, model: Model) -> int | None:
        raise NotImplementedError

    @classmethod
    def settle(cls, model: Model, options: dict[str, Any], find: Find) -> dict[str, Any]:
        return options

    def endpoints(self, model: Model) -> frozenset[str]:
        return TASKS.get(model.category, ("", frozenset[str]()))[1]

    def served_name(self, model: Model, adapter: str | None) -> str:
        return model.name

    def check(self, model: Model, endpoint: str) -> None:
        return None  # the runner answers what it cannot do itself

    def check_args(self, args: list[str], version: str | None = None) -> None:
        if args:
            raise Unsupported(
                f"{self.name} takes no engine arguments",
                hint="its settings (`modelyard settings MODEL`) say how it runs",
            )

    def fit(
        self, model: Model, options: Opts, adapter: Adapter | None, free_ram: int, free_vram: list[int]
    ) -> Fit | None:
        if model.format != "safetensors" or not Path(model.path).is_dir():
            return None
        return fit_folder(
            model,
            free_ram,
            free_vram,
            n_ctx=getattr(options, "n_ctx", 0),
            precision=getattr(options, "precision", "auto"),
            device=getattr(options, "device", "auto"),
            batch_size=getattr(options, "batch_size", 1),
            quantization=getattr(options, "quantization", "none"),
            extra_bytes=_folder_bytes(getattr(options, "draft_model", None)),
            # transformers runs GPTQ / AWQ weights on gptqmodel's kernels, imported with them
            process_ram=GPTQMODEL_RAM if model.facts.get("quant_method") in GPTQMODEL_METHODS else 0,
        )

    def adapters(self, model: Model, options: Opts, adapter: Adapter | None) -> list[dict[str, Any]] | None:
        """What --adapters gets: None when this backend takes none."""
        return None

    def task(self, model: Model) -> str:
        """The runner's task for this model (``--task``)."""
        return task_of(model)[0]

    def engine(
        self,
        model: Model,
        options: Opts,
        placement: Placement,
        adapter: Adapter | None,
        version: str | None = None,
    ) -> EngineSpec:
        if version is not None:
            self.preflight(version)
        python = self.interpreter()
        task = self.task(model)
        listed = {"peft_adapters", "loras", *GATEWAY_OPTIONS}
        argv = [python.python, "-m", "modelyard.runners", "--task", task, "--model", model.path]
        argv += ["--name", model.name, "--host", HOST, "--port", PORT]
        argv += ["--options", options.model_dump_json(exclude=listed)]
        chosen = self.adapters(model, options, adapter)
        if chosen is not None:
            argv += ["--adapters", json.dumps(chosen)]
        if task == "image":
            argv += ["--template", model.template or "sd_official"]
            argv += ["--capabilities", json.dumps(model.capabilities or ["text-to-image"])]
            argv += ["--outputs", str(self.outputs)]
        if model.components:
            argv += ["--components", json.dumps({c.role: c.path for c in model.components})]
        env = {
            **python.env,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
        if self.otel_endpoint:
            env[ENDPOINT_VAR] = self.otel_endpoint
        where = "server python" if python.where == "server" else python.where
        return EngineSpec(
            argv=argv,
            env=env,
            health_path="/health",
            slots=SLOTS.get(task, 1),
            runtime=f"modelyard runner ({self.name}, {where})",
            key_env=ENGINE_KEY,
        )


class SentenceTransformers(RunnerBackend[SentenceTransformersOptions]):
    name: ClassVar[str] = SENTENCE_TRANSFORMERS
    loader: ClassVar[str] = SENTENCE_TRANSFORMERS
    options: ClassVar[type[BaseModel]] = SentenceTransformersOptions
    merges_embeddings: ClassVar[bool] = True  # the runner reports each input's tokens

    @classmethod
    def rank(cls, model: Model) -> int | None:
        wanted = model.category in ("embedding", "rerank") and model.format != "ctranslate2"
        return 0 if wanted and _plain(model) else None


class Transformers(RunnerBackend[TransformersOptions]):
    name: ClassVar[str] = TRANSFORMERS
    loader: ClassVar[str] = TRANSFORMERS
    options: ClassVar[type[BaseModel]] = TransformersOptions
    tokenizer_api: ClassVar[str | None] = "vllm"  # the runner's /tokenize (text models)
    lora_option: ClassVar[str | None] = "peft_adapters"

    @classmethod
    def rank(cls, model: Model) -> int | None:
        # the widest support, not the fastest: first only for bitsandbytes and plain models with
        # no better engine; GPTQ and AWQ on gptqmodel's kernels, after vLLM (and ExLlamaV2)
        if model.category not in TASKS or model.category in (*DIFFUSION, "upscale", "face"):
            return None
        if model.format == "gguf":  # read by transformers (dequantized): its samplers on a GGUF
            takes = model.category == "chat" and model.architecture in GGUF_ARCHITECTURES
            return ON_REQUEST if takes else None
        if model.format in (*NOT_OURS, "onnx", "ctranslate2", "diffusers"):
            return None
        method = quant_method(model.format, model.facts)
        if method is not None:
            return {"bitsandbytes": 0, "awq": 1, "gptq": 2}.get(method)
        return 1 if model.category in ("embedding", "rerank") else 0

    @classmethod
    def settle(cls, model: Model, options: dict[str, Any], find: Find) -> dict[str, Any]:
        return with_draft(model, options, find)

    def adapters(
        self, model: Model, options: TransformersOptions, adapter: Adapter | None
    ) -> list[dict[str, Any]] | None:
        if model.category not in ("chat", "multimodal"):
            return None
        return chosen_adapters(model, options.peft_adapters, adapter)


class Diffusers(RunnerBackend[DiffusersOptions]):
    name: ClassVar[str] = DIFFUSERS
    loader: ClassVar[str] = DIFFUSERS
    options: ClassVar[type[BaseModel]] = DiffusersOptions
    lora_option: ClassVar[str | None] = "loras"

    @classmethod
    def rank(cls, model: Model) -> int | None:
        if model.format == "gguf":  # a diffusion transformer's GGUF
            return 0 if model.category in DIFFUSION else None
        image = model.category in DIFFUSION or model.format == "diffusers"
        return 0 if image and model.category in TASKS and _plain(model) else None

    def adapters(
        self, model: Model, options: DiffusersOptions, adapter: Adapter | None
    ) -> list[dict[str, Any]] | None:
        return chosen_adapters(model, options.loras, adapter)


class FileBackend(RunnerBackend[Opts]):
    """A backend whose engine holds its files' weights as they are (no safetensors folder to
    read the tensors of): the estimate is the files, the engine's working memory and its
    process (``fit_files``)."""

    runner_task: ClassVar[str | None] = None  # the runner's task, where the category's is not it
    overhead: ClassVar[int] = ONNX_RAM
    gpu_when: ClassVar[tuple[str, ...]] = ("cuda",)  # the devices options that put it on a GPU

    def task(self, model: Model) -> str:
        return self.runner_task or super().task(model)

    def working(self, model: Model, options: Opts) -> int:
        """The bytes it needs besides its weights while it runs."""
        raise NotImplementedError

    def fit(
        self, model: Model, options: Opts, adapter: Adapter | None, free_ram: int, free_vram: list[int]
    ) -> Fit | None:
        gpu = getattr(options, "device", "cpu") in self.gpu_when
        working = self.working(model, options)
        return fit_files(model, free_ram, free_vram, gpu=gpu, working=working, overhead=self.overhead)


class Spandrel(FileBackend[SpandrelOptions]):
    """Upscalers: one weights file, whose size is what it needs besides a tile's activations."""

    name: ClassVar[str] = SPANDREL
    loader: ClassVar[str] = SPANDREL
    options: ClassVar[type[BaseModel]] = SpandrelOptions
    overhead: ClassVar[int] = TORCH_RAM
    gpu_when: ClassVar[tuple[str, ...]] = ("auto", "cuda")

    @classmethod
    def rank(cls, model: Model) -> int | None:
        return 0 if model.category == "upscale" and _plain(model) else None

    def working(self, model: Model, options: SpandrelOptions) -> int:
        # the activations are the most of it: an ESRGAN's 64 channels at the output's size,
        # twice, for a tile (or a 1024-pixel image) at 4x
        side = 4 * (options.tile_size or 1024)
        return 2 * 64 * side * side * 4


class InsightFace(FileBackend[InsightFaceOptions]):
    """Face packs: ONNX models a few hundred MB at most, run by onnxruntime."""

    name: ClassVar[str] = INSIGHTFACE
    loader: ClassVar[str] = INSIGHTFACE
    options: ClassVar[type[BaseModel]] = InsightFaceOptions

    @classmethod
    def rank(cls, model: Model) -> int | None:
        return 0 if model.category == "face" and model.format not in NOT_OURS else None

    def working(self, model: Model, options: InsightFaceOptions) -> int:
        # onnxruntime's arenas: the detector's feature maps at det_size, a few hundred MB at 640
        return int(64 * options.det_size * options.det_size * 4 * 4)


class Piper(FileBackend[PiperOptions]):
    """Piper voices: an ONNX model of tens of MB and its phoneme map."""

    name: ClassVar[str] = PIPER
    loader: ClassVar[str] = PIPER
    options: ClassVar[type[BaseModel]] = PiperOptions
    runner_task: ClassVar[str | None] = "piper"

    @classmethod
    def rank(cls, model: Model) -> int | None:
        return 0 if model.format == "onnx" and model.category == "text-to-speech" else None

    def working(self, model: Model, options: PiperOptions) -> int:
        return 2 * model.size + (64 << 20)  # a sentence's activations and its audio


class FasterWhisper(FileBackend[FasterWhisperOptions]):
    """Whisper on CTranslate2: a converted folder whose model.bin is its weights."""

    name: ClassVar[str] = FASTER_WHISPER
    loader: ClassVar[str] = FASTER_WHISPER
    options: ClassVar[type[BaseModel]] = FasterWhisperOptions
    runner_task: ClassVar[str | None] = "fastwhisper"
    gpu_when: ClassVar[tuple[str, ...]] = ("auto", "cuda")

    @classmethod
    def rank(cls, model: Model) -> int | None:
        return 0 if model.format == "ctranslate2" and model.category in TASKS else None

    def working(self, model: Model, options: FasterWhisperOptions) -> int:
        return int((256 << 20) * options.batch_size)  # a 30 s chunk's encoder states and cache, per chunk
