"""The Executor contract: everything that happens on a node.

An executor starts engine processes from an EngineSpec at a Placement, and owns all that only
means something on that node: the host and port an engine listens on (the spec's placeholders are
filled there), the engine's environment, its log files, its process group, stopping it, finding
engines a dead server left behind, and the node's inventory (free RAM, per-GPU VRAM). The runtime
holds nothing node-local: a pid or a path is a fact an executor reports.

Implementations: LocalExecutor (local.py: children of the server on this machine) and
the tests' FakeExecutor (tests/runtime/fake_executor.py: scripted engines). Only plain data crosses this boundary, so an
executor that runs engines on other machines implements the same contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from modelyard.backends.base import EngineSpec, Placement
from modelyard.formats.inspection import Inspection


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    vram_total: int
    vram_free: int
    temperature: float | None = None  # Celsius, where the driver tells (NVML)


@dataclass(frozen=True)
class Node:
    """A machine that runs instances, as its executor sees it now."""

    id: str
    address: str  # where the gateway reaches its engines
    ram_total: int
    ram_free: int
    gpus: tuple[Gpu, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    alive: bool = True
    backends: frozenset[str] | None = None  # the backends installed there; None: not reported
    paths: frozenset[str] | None = None  # the model paths found there; None: not looked for
    drained: bool = False  # taken out for maintenance: what runs there stays, nothing new goes
    # the build of each backend there where it says (llama.cpp: cpu, cuda, vulkan); a CPU build
    # uses none of the node's GPUs. None: not reported
    builds: dict[str, str] | None = None


@dataclass(frozen=True)
class Claim:
    """Memory an instance holds on one node: RAM, and VRAM per GPU index (bytes)."""

    node: str
    ram: int
    vram: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Launch:
    """One start of one instance: which engine, where, with which deployment variables."""

    instance: int
    start: int  # 1 for the first start, +1 for each restart: each start has its own log
    spec: EngineSpec
    placement: Placement
    env: dict[str, str] = field(default_factory=dict)  # the deployment's own variables
    key: str | None = None  # the engine's API key, given through spec.key_env
    claims: tuple[Claim, ...] = ()  # the memory the scheduler chose for it (a cluster reserves it)


@dataclass(frozen=True)
class LogRef:
    """The log of one start of one instance, on its node."""

    node: str
    instance: int
    start: int


@dataclass(frozen=True)
class Usage:
    memory: int  # resident bytes of the engine and its children
    cpu_percent: float  # since the last look, in % of one core


class Engine(Protocol):
    """A started engine process, as its executor reports it."""

    @property
    def url(self) -> str:
        """Where the engine answers (http://host:port)."""

    @property
    def pid(self) -> int | None:
        """The process id on its node (for people; never a key)."""

    @property
    def log(self) -> LogRef: ...

    def returncode(self) -> int | None:
        """None while it runs, else its exit status (negative: killed by that signal)."""

    async def wait(self) -> int:
        """Returns the exit status once the process has ended (LOST: its node is gone)."""

    async def healthy(self) -> bool:
        """Whether its health endpoint answers 200 now."""

    async def stop(self, grace: float) -> int | None:
        """SIGTERM to its whole process group, SIGKILL after ``grace`` seconds."""

    async def usage(self) -> Usage: ...


LOST = -1000  # the exit status of an engine whose node is gone: not the engine's fault


class Executor(Protocol):
    elastic: bool  # nodes join and leave (a cluster): what fits nowhere now waits for one

    async def nodes(self, paths: Sequence[str] = ()) -> list[Node]:
        """The nodes and what is free on each now; where it can tell, which of ``paths`` (model
        files) each has, and which backends."""

    async def launch(self, launch: Launch) -> Engine:
        """Start the engine: fill host, port and folder into the argv, write the spec's files,
        open a new log for this start. The engine is not ready yet: poll ``healthy``."""

    async def read_log(self, ref: LogRef, offset: int = 0, limit: int = 1 << 20) -> bytes | None:
        """Up to ``limit`` bytes of a start's log from ``offset``; None when there is no such log."""

    async def tail_log(self, ref: LogRef, lines: int = 40) -> str:
        """The last lines of a start's log ("" when there is none)."""

    async def stop_orphans(self) -> list[int]:
        """Stop every engine an earlier run of this server left running; their pids."""

    async def inspect(self, path: str) -> tuple[str, Inspection] | None:
        """A model path this machine does not have, inspected on a node that holds it: that
        node and what the files are; None when no other node holds it."""

    async def close(self) -> None: ...
