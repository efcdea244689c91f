"""Which executor runs a server's engines, chosen where the app is composed: this machine's
(LocalExecutor), or a Ray cluster's workers (MODELYARD_CLUSTER; the cluster extra)."""

from __future__ import annotations

import contextlib
import os

from modelyard.backends.registry import Backends
from modelyard.config import Settings
from modelyard.errors import ModelyardError
from modelyard.runtime.executor import Executor
from modelyard.runtime.local import LocalExecutor


def executor_for(settings: Settings, backends: Backends) -> Executor:
    """The executor ``settings`` ask for; a cluster's workers learn which programs run
    ``backends``' engines."""
    owner = str(settings.home.resolve())
    if not settings.cluster:
        return LocalExecutor(settings.logs_dir, settings.home / "run", owner=owner)
    if settings.cluster.split(":")[0] in ("127.0.0.1", "localhost"):
        # a cluster on this machine only: Ray's driver then keeps to the loopback address
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    from modelyard.runtime.cluster import RayExecutor  # the cluster extra

    def programs() -> list[tuple[str, str]]:
        """Each installed backend's program, which a worker must have to run it."""
        found = []
        for backend in backends:
            with contextlib.suppress(ModelyardError):
                backend.preflight()  # installed here
                found.append((backend.name, backend.executable()))
        return found

    return RayExecutor(settings.cluster, owner, programs)
