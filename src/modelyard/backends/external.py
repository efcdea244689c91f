"""Servers that already run (another llama-server, vLLM, LM Studio, TGI, a GPU box elsewhere):
registered in the library with `modelyard import --url`, served behind the gateway like any
engine (the same queue, keys and metrics), nothing started. An instance is the connection: its
health is the server's, polled while it serves.

A server speaks OpenAI's API (``/v1/models``), or only TGI's own ``/generate`` (``/info``), which
the gateway translates completions onto."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field

from modelyard.backends.base import EngineSpec, Find, Placement, Progress
from modelyard.catalog.records import Adapter, Model
from modelyard.config import Settings
from modelyard.errors import EngineUnavailable, InvalidImport, Unsupported
from modelyard.estimate import Fit
from modelyard.formats.loaders import EXTERNAL, REMOTE

Api = Literal["openai", "tgi"]
ENDPOINTS = {
    ("openai", "chat"): frozenset({"chat", "completions"}),
    ("openai", "multimodal"): frozenset({"chat", "completions"}),
    ("openai", "embedding"): frozenset({"embeddings"}),
    ("openai", "rerank"): frozenset({"rerank"}),
    ("tgi", "chat"): frozenset({"completions"}),
}


class ExternalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slots: int = Field(
        16, ge=1, le=4096, description="requests sent to the server at once (the rest queue here)"
    )


def url_of(model: Model) -> str:
    """The server's base URL (a remote model's path is URL#model)."""
    return model.path.split("#", 1)[0]


def api_of(model: Model) -> Api:
    return "tgi" if model.facts.get("api") == "tgi" else "openai"


class External:
    name: ClassVar[str] = EXTERNAL
    installable: ClassVar[bool] = False  # nothing to install: the server runs elsewhere
    loader: ClassVar[str] = EXTERNAL
    options: ClassVar[type[BaseModel]] = ExternalOptions
    merges_embeddings: ClassVar[bool] = False
    anthropic_messages: ClassVar[bool] = False
    distributable: ClassVar[bool] = False
    dialect: ClassVar[str] = "openai"
    tokenizer_api: ClassVar[str | None] = None
    fills_in_middle: ClassVar[bool] = False
    slots_share_context: ClassVar[bool] = False
    installs_on_first_use = False
    lora_option: ClassVar[str | None] = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls()

    @classmethod
    def rank(cls, model: Model) -> int | None:
        return 0 if model.format == REMOTE and api_of(model) == cls.dialect else None

    def endpoints(self, model: Model) -> frozenset[str]:
        return ENDPOINTS.get((api_of(model), model.category), frozenset())

    def check(self, model: Model, endpoint: str) -> None:
        return None

    def served_name(self, model: Model, adapter: str | None) -> str:
        return str(model.facts.get("remote_model") or model.name)

    def preflight(self, version: str | None = None) -> str:
        if version is not None:
            raise Unsupported("an external server has no builds here", hint="it runs what it runs")
        return "servers that already run (nothing to install)"

    def executable(self) -> str:
        return ""  # it runs elsewhere

    def versions(self) -> list[str]:
        return []

    def check_args(self, args: list[str], version: str | None = None) -> None:
        if args:
            raise Unsupported("an external server takes no engine arguments from modelyard")

    def install(self, variant: str, progress: Progress, version: str | None = None) -> str:
        raise Unsupported(
            "an external server is not installed by modelyard", hint="register it: `modelyard import --url`"
        )

    @classmethod
    def settle(cls, model: Model, options: dict[str, Any], find: Find) -> dict[str, Any]:
        return options

    def fit(
        self,
        model: Model,
        options: ExternalOptions,
        adapter: Adapter | None,
        free_ram: int,
        free_vram: list[int],
    ) -> Fit | None:
        return None  # its memory is another machine's

    def engine(
        self,
        model: Model,
        options: ExternalOptions,
        placement: Placement,
        adapter: Adapter | None,
        version: str | None = None,
    ) -> EngineSpec:
        if adapter is not None:
            raise Unsupported(f"{model.name!r} is a server elsewhere: its adapters are its own")
        key = model.facts.get("api_key")
        tgi = api_of(model) == "tgi"
        return EngineSpec(
            argv=[],
            remote=url_of(model),
            headers={"Authorization": f"Bearer {key}"} if key else {},
            health_path="/health" if tgi else "/v1/models",
            slots=options.slots,
            runtime=f"external {'TGI' if tgi else 'OpenAI-compatible'} server",
        )


def probe(url: str, api_key: str | None, timeout: float = 10.0) -> tuple[Api, list[str]]:
    """What the server at ``url`` speaks and the models it serves: OpenAI's /v1/models, else
    TGI's /info. InvalidImport when it answers neither."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    base = url.rstrip("/")
    try:
        port = httpx.URL(base + "/v1/models").port
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port {port} is out of range")
    except (httpx.InvalidURL, ValueError, TypeError) as e:
        raise InvalidImport(
            f"{url!r} is not a usable URL: {e}", hint="such as http://127.0.0.1:8000"
        ) from None
    try:
        with httpx.Client(timeout=timeout, headers=headers) as http:
            r = http.get(base + "/v1/models")
            if r.status_code in (401, 403):
                raise InvalidImport(
                    f"{url} refused the key ({r.status_code})", hint="give its API key with --api-key"
                )
            if r.status_code == 200:
                listed = r.json()
                data = listed.get("data") if isinstance(listed, dict) else None
                ids = [str(m["id"]) for m in data or [] if isinstance(m, dict) and "id" in m]
                if ids:
                    return "openai", ids
            info = http.get(base + "/info")
            about = info.json() if info.status_code == 200 else None
            if isinstance(about, dict) and about.get("model_id"):
                return "tgi", [str(about["model_id"])]
    except httpx.HTTPError as e:
        raise EngineUnavailable(
            f"no server answers at {url}: {e.__class__.__name__}", hint="is it running?"
        ) from None
    except ValueError:
        raise InvalidImport(
            f"{url} did not answer JSON", hint="it is not an OpenAI-compatible server"
        ) from None
    raise InvalidImport(
        f"{url} lists no models on /v1/models and has no TGI /info",
        hint="give the URL of an OpenAI-compatible (or TGI) server",
    )


class ExternalTgi(External):
    """A TGI server that has only its own /generate: completions are translated onto it."""

    name: ClassVar[str] = "tgi"
    dialect: ClassVar[str] = "tgi"
