"""The settings object: built once at start-up and passed down. Nothing reads the environment
at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelyard.access.network import is_loopback
from modelyard.address import DEFAULT_HOST, DEFAULT_PORT, server_url


def _default_home() -> Path:
    return Path.home() / ".modelyard"


class Settings(BaseSettings):
    """modelyard's configuration, from MODELYARD_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="MODELYARD_", extra="ignore", populate_by_name=True)

    home: Path = Field(default_factory=_default_home, description="where modelyard keeps its data")
    host: str = Field(default=DEFAULT_HOST, description="address the server listens on")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="port the server listens on")
    ollama_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="a listener with Ollama's API on this port (Ollama's: 11434); off when unset",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the catalog; SQLite under home by default"
    )
    url: str | None = Field(
        default=None, description="where the CLI finds the server; http://host:port by default"
    )

    # access
    api_key: str | None = Field(default=None, description="the key the CLI sends (Authorization: Bearer)")
    admin_key: str | None = Field(
        default=None,
        repr=False,
        description="an admin key's secret the server keeps, as the key env-admin (from a secret store, such "
        "as a Kubernetes Secret); a new value replaces the old",
    )
    insecure: bool = Field(
        default=False, description="listen on a non-loopback address without an API key (a warning at start)"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names a loopback server answers besides localhost (a reverse proxy's)",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="web origins allowed to call the API from a browser (CORS)"
    )
    max_body: int = Field(default=32 << 20, ge=1024, description="largest request body in bytes")
    max_file: int = Field(
        default=200 << 20,
        ge=1024,
        description="largest file uploaded to /v1/files (a batch's input), in bytes",
    )
    allowed_dirs: list[Path] | None = Field(
        default=None, description="folders the server may import from and download to (JSON list)"
    )
    client_paths: bool = Field(
        default=False,
        description="inference keys may name files on the server in requests (images, audio), "
        "inside the allowed folders; admin keys and the local user may always",
    )

    cluster: str | None = Field(
        default=None,
        description="a Ray cluster's address (host:port, from `modelyard cluster start`): engines run on its workers",
    )

    ui_dir: Path | None = Field(
        default=None, description="the built web UI; the package's own (built by scripts/setup) by default"
    )

    # serving
    llama_server: Path | None = Field(
        default=None, description="llama-server binary; else MODELYARD_HOME/bin, PATH, then llama_cpp.server"
    )
    auto_install: bool | None = Field(
        default=None,
        description="a load (or a model's creation) whose engine is not installed installs it, with progress: "
        "llama-server built into HOME/bin, a Python environment into HOME/envs; unset: on when the server "
        "listens on loopback only",
    )
    queue_size: int = Field(default=50, ge=0, description="requests that may wait per deployment")
    queue_timeout: float = Field(
        default=300.0, ge=0, description="seconds a request may wait for an instance; 0 = no limit"
    )
    queue_timeout_flex: float | None = Field(
        default=None,
        ge=0,
        description="the same for the flex tier (keys or requests); default: queue_timeout",
    )
    queue_timeout_priority: float | None = Field(
        default=None, ge=0, description="the same for the priority tier; default: queue_timeout"
    )
    batch_idle: float = Field(
        default=1.0,
        ge=0,
        description="seconds an instance serves no interactive request before a batch request starts on it; "
        "0: beside them (preempted as they come)",
    )
    swap_bound: float = Field(
        default=30.0,
        ge=0,
        description="seconds a request for a model loaded on demand may wait for other models' turns "
        "before its model displaces theirs (the load rules); 0: at once",
    )
    routing: Literal["prefix", "least-loaded"] = Field(
        default="prefix",
        description="how a text request picks a replica: prefix (where its prompt is cached, waiting "
        "for it when that saves time) or least-loaded (the fewest requests in flight)",
    )
    otel_endpoint: str | None = Field(
        default=None,
        description="an OTLP/HTTP receiver (http://127.0.0.1:4318) that gets a trace of each request; "
        "unset: no traces",
    )
    otel_sample: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="the share of requests traced (a client's traced request always is)",
    )
    health_timeout: float = Field(default=120.0, gt=0, description="seconds an engine has to become ready")
    stop_grace: float = Field(default=10.0, ge=0, description="seconds between SIGTERM and SIGKILL")
    switch_timeout: float = Field(
        default=60.0, ge=0, description="seconds a switch waits for a model's requests to finish"
    )
    restart_backoff: float = Field(default=10.0, gt=0, description="first restart delay; doubles")
    restart_backoff_max: float = Field(default=300.0, gt=0, description="cap of the restart delay")
    restart_reset: float = Field(
        default=600.0, gt=0, description="seconds an instance serves before its restart delay starts over"
    )
    responses_keep: float = Field(
        default=30, ge=0, description="days a stored response of the Responses API is kept; 0: none is stored"
    )
    idle_unload: float = Field(default=0.0, ge=0, description="unload a model idle this long (s); 0 = never")
    # resource monitor
    monitor_interval: float = Field(default=1.0, gt=0, description="seconds between samples")
    memory_pressure: float = Field(default=0.9, gt=0, le=1, description="share of RAM that is pressure")
    pressure_unload: bool = Field(
        default=True, description="on pressure, unload the least recently used idle model"
    )
    # load rules (the model library manual's by default)
    one_per_category: bool = Field(default=True, description="loading a model unloads its category's other")
    exclusive: list[str] = Field(
        default_factory=lambda: ["chat+multimodal"], description="categories never loaded together"
    )
    max_loras: int = Field(default=1, ge=0, description="LoRAs at once for chat and multimodal models")
    hf_endpoint: str = Field(
        default="https://huggingface.co",
        validation_alias=AliasChoices("MODELYARD_HF_ENDPOINT", "HF_ENDPOINT"),
        description="Hugging Face or a mirror of it (hf-mirror.com)",
    )
    hf_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MODELYARD_HF_TOKEN", "HF_TOKEN"),
        description="token for private and gated Hugging Face repos",
    )
    modelscope_endpoint: str = Field(
        default="https://modelscope.cn",
        validation_alias=AliasChoices("MODELYARD_MODELSCOPE_ENDPOINT", "MODELSCOPE_ENDPOINT"),
        description="ModelScope's address, or a mirror's",
    )
    modelscope_token: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MODELYARD_MODELSCOPE_TOKEN", "MODELSCOPE_API_TOKEN"),
        description="a ModelScope token, for private models",
    )
    ollama_registry: str = Field(default="https://registry.ollama.ai", description="the Ollama registry")
    max_downloads: int = Field(default=2, ge=1, description="downloads that run at once; the rest wait")
    download_connections: int = Field(default=4, ge=1, le=32, description="parallel connections per download")
    download_retries: int = Field(default=6, ge=0, description="attempts in a row without progress")
    stall_timeout: float = Field(default=30.0, gt=0, description="seconds without a byte before reconnecting")
    python_envs: Literal["auto", "managed"] = Field(
        default="auto",
        description="auto: Python backends run in the server's interpreter when it has their packages; "
        "managed: always in the environments under HOME/envs",
    )
    torch_index: str = Field(
        default="https://download.pytorch.org/whl/cpu", description="extra index for the cpu variant's torch"
    )

    @property
    def installs_missing(self) -> bool:
        """Whether a missing engine is installed when a load needs it (``auto_install``)."""
        if self.auto_install is not None:
            return self.auto_install
        return is_loopback(self.host)

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'catalog.db'}"

    @property
    def server_url(self) -> str:
        return server_url(self.url, self.host, self.port)

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs" / "instances"

    @property
    def bin_dir(self) -> Path:
        return self.home / "bin"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def envs_dir(self) -> Path:
        return self.home / "envs"

    @property
    def downloads_dir(self) -> Path:
        return self.home / "downloads"

    @property
    def files_dir(self) -> Path:
        """The Files API's files (batches' inputs and outputs), and the results of running batches."""
        return self.home / "files"

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
