"""What runs on a cluster's nodes, as Ray actors (cluster.py makes them actors and places them).

- ``Agent``: one per node. Reports the node's memory (RAM, and each GPU's VRAM from NVML, or the
  VRAM the worker declared when it joined), the backends installed there, which model paths
  exist there; inspects the model files there (and reads GGUF headers, for the estimates) where
  only the workers hold them; reads the logs kept there; stops the engines an earlier server left.
- ``Instance``: one per start of one instance (and one per peer of a distributed one, its log
  in a folder of its own). Starts the engine on its node through a LocalExecutor (its own
  process group, dead with the actor), and reports its exit and usage.

Only plain data crosses: Launch, LogRef, Usage, Inspection, GGUFFile and dicts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil

from modelyard.backends.install import installed_variant
from modelyard.monitor.gpus import nvidia
from modelyard.runtime.executor import Launch, LogRef, Usage
from modelyard.runtime.local import LocalExecutor, tail

NAMESPACE = "modelyard"
WORKER_LABEL = "modelyard/worker"  # a node's name, given when it joins
RAM = "modelyard_ram"  # a worker's RAM for engines, in MiB (a Ray custom resource)
VRAM = "modelyard_vram_gpu"  # + index: one GPU's VRAM, in MiB
MiB = 1 << 20


def node_home() -> Path:
    """Where modelyard keeps its files on this node."""
    return Path(os.environ.get("MODELYARD_HOME") or Path.home() / ".modelyard")


def gpus_of(resources: dict[str, float]) -> dict[int, int]:
    """The GPUs a worker declared: index -> VRAM bytes."""
    return {int(k[len(VRAM) :]): int(v) * MiB for k, v in resources.items() if k.startswith(VRAM)}


class Agent:
    """One per node: its inventory, its logs, its leftovers."""

    def __init__(self, declared: dict[str, float]) -> None:
        self.home = node_home()
        self.declared = declared  # the node's custom resources: its RAM and GPUs for engines

    def inventory(self, paths: list[str], backends: list[tuple[str, str]]) -> dict[str, Any]:
        """Memory now, GPUs, the backends whose program is here (name, program), the paths here."""
        mem = psutil.virtual_memory()
        cap = int(self.declared.get(RAM, 0)) * MiB or mem.total
        found = [(g, g.memory_total) for g in nvidia() if g.memory_total]
        if found:
            gpus = [
                {"index": g.index, "name": g.name, "total": total,
                 "free": total - (g.memory_used or 0), "temperature": g.temperature}
                for g, total in found
            ]  # fmt: skip
        else:  # declared ones (no NVML: a test's or another vendor's): as much free as declared
            gpus = [
                {"index": i, "name": "declared", "total": v, "free": v, "temperature": None}
                for i, v in sorted(gpus_of(self.declared).items())
            ]
        return {
            "ram_total": min(cap, mem.total),
            "ram_free": min(cap, mem.available),
            "gpus": gpus,
            "backends": [name for name, program in backends if _installed(program)],
            # which builds use the GPUs NVML sees here; declared ones are taken at their word
            "builds": {name: v for name, program in backends if (v := installed_variant(program))}
            if found
            else {},
            "paths": [p for p in paths if os.path.exists(p)],
        }

    def inspect(self, path: str) -> dict[str, Any]:
        """What a model path here is (``{"found": Inspection}``), or why it is not a model
        (``{"error": message, "hint": hint}``): files that only this node holds."""
        from modelyard.errors import ModelyardError
        from modelyard.formats.detect import inspect_path

        try:
            return {"found": inspect_path(path)}
        except ModelyardError as e:
            return {"error": e.message, "hint": e.hint}

    def gguf_header(self, path: str) -> dict[str, Any]:
        """A GGUF file's header here (``{"found": GGUFFile}``), for the estimates, or why not."""
        from modelyard.errors import ModelyardError
        from modelyard.formats.gguf import read_gguf

        try:
            return {"found": read_gguf(path)}
        except ModelyardError as e:
            return {"error": e.message, "hint": e.hint}

    def read_log(self, instance: int, start: int, offset: int, limit: int) -> bytes | None:
        try:
            with self._log(instance, start).open("rb") as f:
                f.seek(offset)
                return f.read(limit)
        except FileNotFoundError:
            return None

    def tail_log(self, instance: int, start: int, lines: int) -> str:
        return tail(self._log(instance, start), lines)

    def stop_orphans(self, owner: str) -> list[int]:
        from modelyard.runtime.local import _stop_marked

        return _stop_marked(owner)

    def _log(self, instance: int, start: int) -> Path:
        return self.home / "logs" / "instances" / f"{instance}.{start}.log"


def _installed(program: str) -> bool:
    """Whether a backend's program (a path, or a name on PATH) is on this node ("": it needs none)."""
    import shutil

    return not program or os.path.exists(program) or shutil.which(program) is not None


class Instance:
    """One start of one instance: its engine on this node."""

    def __init__(self, owner: str, host: str, part: str = "") -> None:
        home = node_home()
        logs = home / "logs" / "instances" / part if part else home / "logs" / "instances"
        self.executor = LocalExecutor(logs, home / "run" / part if part else home / "run", owner, host=host)
        self.engine: Any = None

    async def start(self, launch: Launch) -> tuple[str, int | None]:
        self.engine = await self.executor.launch(launch)
        return self.engine.url, self.engine.pid

    async def wait(self) -> int:
        code: int = await self.engine.wait()
        return code

    async def returncode(self) -> int | None:
        code: int | None = self.engine.returncode()
        return code

    async def usage(self) -> Usage:
        found: Usage = await self.engine.usage()
        return found

    async def stop(self, grace: float) -> int | None:
        code: int | None = await self.engine.stop(grace)
        await self.executor.close()
        return code

    async def log(self) -> LogRef:
        ref: LogRef = self.engine.log
        return ref
