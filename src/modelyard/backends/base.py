"""The Backend contract: what turns a Model and its typed options into an engine server.

A backend names its options model, says which models it takes and how well (``rank``, from the
model's facts whenever it is asked: a backend added later serves models imported before it) and
which endpoints it serves for one, builds the engine's command line (``engine``), estimates the memory a load needs (``fit``)
and checks that its program or environment is installed (``preflight``, whose error says how to
install it). Some have builds side by side (``versions``, chosen per deployment) and take free
arguments, checked against the engine's own ``--help`` (``check_args``). The registry
(registry.py) holds the backends; nothing else looks at a backend's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeVar

from pydantic import BaseModel

from modelyard.catalog.records import Adapter, Model
from modelyard.config import Settings

if TYPE_CHECKING:
    from modelyard.estimate import Fit

# Placeholders in an EngineSpec's argv, filled by the executor where the engine starts: the host
# and port it listens on, and a folder of its own (for the spec's files).
HOST = "{host}"
PORT = "{port}"
FOLDER = "{dir}"
PEERS = "{peers}"  # the peers' host:port, comma-separated (a distributed engine's own argument)


# A rank from here on: the backend runs the model when asked (the settings' backend, --backend),
# never as the one a load picks by itself (transformers for a GGUF, dequantized)
ON_REQUEST = 100


@dataclass(frozen=True)
class Placement:
    """Where an instance runs: a node, and the GPUs it may use there (empty: none)."""

    node: str = "local"
    gpus: tuple[int, ...] = ()
    # the layers the estimate fits into these GPUs' free memory, for a model whose options say
    # "as many as fit" (llama.cpp's n_gpu_layers -1); None: the options as they are
    gpu_layers: int | None = None
    tensor_split: tuple[float, ...] = ()  # each GPU's share (gpus, then the peers'), where split
    peers: tuple[str, ...] = ()  # other nodes that hold a share of its layers (distributed)


@dataclass(frozen=True)
class EngineSpec:
    """How to start one engine: plain data, so that it can travel to another node."""

    argv: list[str]  # may hold HOST, PORT and FOLDER (alone, or FOLDER + "/name")
    env: dict[str, str] = field(default_factory=dict)  # what the engine needs, nothing more
    health_path: str = "/health"
    slots: int = 1  # requests one engine takes at once (parallel slots)
    # Requests it may hold beyond its slots, in its own first-come-first-served queue, each
    # started the moment a slot frees: a slot never idles for the gateway's round trip.
    queued: int = 0
    # Prompt tokens it keeps for reuse (its KV cache, and a prompt cache beside it), for routing
    # by what each replica holds; None: not known.
    cache_tokens: int | None = None
    files: dict[str, str] = field(default_factory=dict)  # name -> text, written into FOLDER
    runtime: str = ""  # which program runs it, for people
    # The variable the engine reads its API key from: each start gets a key of its own, which
    # only the gateway knows, so the engine's port is no way around the gateway.
    key_env: str | None = None
    # A server that already runs at this URL: nothing is started; requests carry ``headers``.
    remote: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # A distributed engine: what runs on each of the placement's peers (its argv with HOST and
    # PORT), started there first; the argv's PEERS becomes their addresses.
    peer: EngineSpec | None = None


# (stage, done, total) -> None
Progress = Callable[[str, float, float], None]


@dataclass(frozen=True)
class Found:
    """Another model that a model's options name (a draft model): its file or folder, format and
    facts, from the library or from the file itself."""

    path: str
    format: str
    facts: dict[str, Any]


# a library model's name, or a path -> Found (ModelyardError when it is neither)
Find = Callable[[str], Found]

Opts = TypeVar("Opts", bound=BaseModel, contravariant=True)  # taken, never given back


class Backend(Protocol[Opts]):
    """A backend whose engines take options of type ``Opts`` (its ``options`` model)."""

    name: ClassVar[str]
    loader: ClassVar[str]  # the loader of the manuals it implements (a Model's ``loaders``)
    options: ClassVar[type[BaseModel]]  # Opts itself (a class variable cannot be generic)
    merges_embeddings: ClassVar[bool]  # its engine reports each input's tokens (see gateway/coalesce)
    anthropic_messages: ClassVar[bool]  # its engine serves Anthropic's /v1/messages itself
    distributable: ClassVar[bool]  # one engine can spread its layers over nodes (Placement.peers)
    dialect: ClassVar[str]  # the API its engine speaks: "openai", or "tgi" (the gateway translates)
    # how its engine counts a chat's tokens: "llama.cpp" (/apply-template, then /tokenize),
    # "vllm" (/tokenize with the messages); None: it does not
    tokenizer_api: ClassVar[str | None]
    fills_in_middle: ClassVar[bool]  # its engine completes between a prompt and a suffix (/infill)
    slots_share_context: ClassVar[bool]  # its slots (``parallel``) split n_ctx: a request holds a share
    lora_option: ClassVar[str | None]  # its option that lists LoRAs to load with; None: it has none
    # a load that finds its engine not installed starts its install (llama-server, not configured)
    installs_on_first_use: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The backend as the server's settings configure it (where its builds and
        environments are)."""

    @classmethod
    def rank(cls, model: Model) -> int | None:
        """How well it serves ``model``, decided from the model's own facts (format,
        quantization, category, components) each time it is asked: 0 is the manuals' first
        choice, a higher rank a later one; None: it cannot serve it."""

    @classmethod
    def settle(cls, model: Model, options: dict[str, Any], find: Find) -> dict[str, Any]:
        """``options`` as they are saved for ``model``: where one names another model (a draft
        model), that model's file, once it is checked to go with ``model`` (InvalidSettings if
        not)."""

    def endpoints(self, model: Model) -> frozenset[str]:
        """The OpenAI endpoints it serves for this model: chat, completions, embeddings, ..."""

    def served_name(self, model: Model, adapter: str | None) -> str:
        """The model name its engine answers to for ``model`` (+ ``adapter``)."""

    def check(self, model: Model, endpoint: str) -> None:
        """Refuse a request it cannot answer before it queues (a chat without a template)."""

    def engine(
        self,
        model: Model,
        options: Opts,
        placement: Placement,
        adapter: Adapter | None,
        version: str | None = None,
    ) -> EngineSpec:
        """The engine for ``model`` with ``options`` (its options model, validated, n_ctx
        resolved) at ``placement``, with ``adapter`` applied, on build ``version`` (None: the
        default one)."""

    def fit(
        self, model: Model, options: Opts, adapter: Adapter | None, free_ram: int, free_vram: list[int]
    ) -> Fit | None:
        """Its memory estimate against what is free; None when it has none for this model."""

    def preflight(self, version: str | None = None) -> str:
        """What runs its engines (a program, an interpreter); EngineUnavailable with the command
        that installs it when nothing does."""

    def executable(self) -> str:
        """The file a worker must have to run its engines (an absolute path), "" when none."""

    def versions(self) -> list[str]:
        """The builds installed besides the default one."""

    def check_args(self, args: list[str], version: str | None = None) -> None:
        """Refuse free engine arguments it does not take (InvalidSettings, or Unsupported when it
        takes none)."""

    def install(self, variant: str, progress: Progress, version: str | None = None) -> str:
        """Install its engine (a build, a managed environment), or build ``version`` beside it;
        where it went."""


AnyBackend = Backend[Any]  # one of the registry's backends, whatever its options
