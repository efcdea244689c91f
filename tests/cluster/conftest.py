"""Ray clusters on this machine for the cluster tests.

Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when it is imported: with it, a driver on this
machine keeps to 127.0.0.1, where the test cluster's nodes listen (else it looks for them at the
host's own address)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import ray
from ray.cluster_utils import Cluster


@contextmanager
def ray_cluster(home: Path, **system_config: Any) -> Iterator[Cluster]:
    """A head on 127.0.0.1 that runs nothing (add the workers), its nodes' MODELYARD_HOME (where
    they keep their logs) at ``home``; all of it gone afterwards."""
    saved = os.environ.get("MODELYARD_HOME")
    os.environ["MODELYARD_HOME"] = str(home)
    head = {"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False}
    c = Cluster(initialize_head=True, head_node_args={**head, "_system_config": system_config})
    try:
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
        if saved is None:
            os.environ.pop("MODELYARD_HOME", None)
        else:
            os.environ["MODELYARD_HOME"] = saved
