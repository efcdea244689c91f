"""Deployments that are wished for but have no instances now: their start failed (when the server
brought them back at boot, say, or when it tried again), or they were unloaded to relieve memory
pressure. A deployment is a wish that outlives its instances: it stays recorded, shows why it is
held back, and is tried again with a backoff (doubling, capped like restarts); only an explicit
unload, stop or delete forgets it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class HeldState(StrEnum):
    RETRYING = "retrying"  # its start failed; tried again after a backoff
    EVICTED = "evicted"  # unloaded under memory pressure; tried again when memory may have freed
    FAILED = "failed"  # its start failed and it does not restart (restart off): kept, not retried


EVICTED_WAIT = 60.0  # seconds before a deployment unloaded under pressure is first tried again


@dataclass
class HeldBack:
    state: HeldState
    reason: str
    attempts: int  # tries that failed (or evictions) in a row
    next_try: float | None  # the clock's time of the next try; None: none planned


def delay(attempts: int, *, base: float, cap: float, evicted: bool = False) -> float:
    """Seconds before the next try after ``attempts`` failures in a row."""
    wait = float(min(base * 2 ** max(attempts - 1, 0), cap))
    return max(wait, EVICTED_WAIT) if evicted else wait
