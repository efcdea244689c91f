"""Plain records of the library, as the rest of modelyard sees it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class ModelFile:
    path: str
    size: int
    sha256: str | None = None


@dataclass
class Component:
    role: str
    path: str
    size: int
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Adapter:
    name: str
    format: str
    path: str
    size: int
    description: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelSettings:
    backend: str
    options: dict[str, Any]


@dataclass
class Model:
    """A library entry."""

    name: str
    category: str
    format: str
    path: str
    description: str = ""
    quantization: str | None = None
    architecture: str | None = None
    parameters: int | None = None
    context_length: int | None = None
    template: str | None = None
    capabilities: list[str] = field(default_factory=list)
    unsafe: bool = False
    facts: dict[str, Any] = field(default_factory=dict)
    source: str = "local"
    source_repo: str | None = None
    source_revision: str | None = None
    aliases: list[str] = field(default_factory=list)
    autoload: bool = False
    files: list[ModelFile] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)
    adapters: list[Adapter] = field(default_factory=list)
    settings: ModelSettings | None = None
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def component(self, role: str) -> Component | None:
        return next((c for c in self.components if c.role == role), None)

    def adapter(self, name: str) -> Adapter | None:
        return next((a for a in self.adapters if a.name == name), None)


GPU_REF = re.compile(r"^(?:(?P<node>[^:\s]{1,128}):)?(?P<index>\d{1,3})\Z")  # a chosen GPU: WORKER:INDEX


@dataclass
class Scheduling:
    """Where a deployment's instances may go: ``policy`` spread (over nodes) or binpack (fill
    one first); nodes with the ``selector``'s labels only; ``gpus`` chosen by hand ("worker:index",
    or "index" on one machine), never swapped for others; part of the layers on the CPU when the
    GPUs lack room (``cpu_offload``); one instance over several nodes (``distributed``)."""

    policy: str = "spread"
    selector: dict[str, str] = field(default_factory=dict)
    gpus: list[str] = field(default_factory=list)
    cpu_offload: bool = True
    distributed: bool = False


@dataclass
class Autoscale:
    """A deployment's replicas between ``least`` and ``most``: one more while a request has
    waited ``wait`` seconds for a slot (at once from none), one fewer once the others could
    have served all its requests for ``idle`` seconds."""

    least: int = 1
    most: int = 1
    wait: float = 2.0
    idle: float = 300.0


@dataclass
class Deployment:
    """The wish that a model runs: with which adapter and backend (a version of it, more
    arguments, variables), how many replicas, restarted after a crash or not; ``stopped``: no
    instances now, the rest kept for a start. ``options`` records what the instances started with."""

    model: str
    backend: str = ""  # "": the registry chooses
    replicas: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    adapter: str | None = None
    jit: bool = False
    env: dict[str, str] = field(default_factory=dict)
    backend_version: str | None = None
    args: list[str] = field(default_factory=list)
    restart: bool = True
    stopped: bool = False
    scheduling: Scheduling = field(default_factory=Scheduling)
    autoscale: Autoscale | None = None  # None: ``replicas``, as set
    id: int | None = None


@dataclass
class Instance:
    id: int
    model: str
    state: str
    node: str | None
    url: str | None
    starts: int
    restarts: int
    error: str | None
    history: list[dict[str, Any]]
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class Download:
    id: int
    source: str
    repo: str
    revision: str
    ref: str
    files: list[dict[str, Any]]
    destination: str
    base: str | None
    name: str | None
    state: str  # queued, running, paused, importing, completed, failed, cancelled
    bytes_total: int
    bytes_done: int
    files_done: int
    error: str | None = None
    hint: str | None = None
    models: list[str] = field(default_factory=list)
    note: str | None = None
    deploy: dict[str, Any] | None = None  # a deployment to start once the files are imported
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class ApiKey:
    """An API key as the catalog keeps it: its digest, never its secret."""

    name: str
    prefix: str
    digest: str
    scope: str  # admin or inference
    models: list[str] = field(default_factory=list)  # globs of model names; empty: every model
    expires_at: datetime | None = None
    priority: str = "default"  # its requests' tier: flex, default or priority
    created_at: datetime | None = None
    last_used_at: datetime | None = None
    id: int | None = None


@dataclass
class Usage:
    """What one key (or "local") asked of one model in one hour, added up."""

    hour: datetime  # the hour's start, UTC
    model: str
    key: str
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    images: int = 0
    loads: int = 0  # loads that count against a quota


@dataclass
class Quota:
    """How many quota-counted loads ``key`` may make per ``period`` (day, week, month or total);
    key "*": every key that has no quota of its own (and the local user on a server without keys)."""

    key: str
    loads: int
    period: str


@dataclass(frozen=True)
class Target:
    """One model a route sends requests to, with its share of them (``weight``; 0: only when
    the targets before it cannot answer)."""

    model: str
    weight: int = 1


@dataclass
class Route:
    """A name clients ask for that sends each request to one of its ``targets`` (library models,
    servers that already run, remote providers registered as models), by weight, falling back to
    the next where one cannot answer."""

    name: str
    targets: list[Target]
    description: str = ""
    created_at: datetime | None = None


@dataclass
class WorkerNote:
    """What people keep about a worker of a cluster: labels of their own (over those it joined
    with), a note, and whether it is drained for maintenance (nothing new is placed there). Ray
    knows the rest."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    note: str = ""
    drained: bool = False


@dataclass
class StoredResponse:
    """A response of the Responses API as kept: its input items and the response itself."""

    id: str
    account: str  # a key's name, or "" for the local user
    model: str
    previous: str | None
    input: list[dict[str, Any]]
    response: dict[str, Any]
    created_at: datetime | None = None


@dataclass
class StoredFile:
    """A file of the Files API as kept (its content lies under the home's files folder)."""

    id: str
    account: str  # a key's name, or "" for the local user
    filename: str
    purpose: str  # batch (an upload), batch_output (what a batch wrote)
    bytes: int
    created_at: datetime
    expires_at: datetime | None = None


@dataclass
class StoredBatch:
    """A batch job as kept: the batch object of the Batches API as it stands."""

    id: str
    account: str
    batch: dict[str, Any]
