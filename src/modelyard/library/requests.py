"""What the library is asked to do, and what a scan reports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImportRequest:
    path: str
    name: str | None = None
    description: str = ""
    category: str | None = None  # inferred when None
    template: str | None = None  # image models: sd_official, flux, video
    components: dict[str, str] = field(default_factory=dict)  # role -> path
    capabilities: list[str] | None = None  # image models; the template's defaults when None


@dataclass
class RemoteRequest:
    """A model of a server that already runs, as its probe found it."""

    url: str
    api: str  # openai or tgi
    served: list[str]  # the models the server lists
    remote_model: str
    name: str | None = None
    description: str = ""
    category: str | None = None
    api_key: str | None = None


@dataclass
class ScanReport:
    imported: list[str] = field(default_factory=list)  # model names (adapters as base:adapter)
    unchanged: list[str] = field(default_factory=list)  # paths already in the library
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, error)
