"""Fewer model swaps: a load on demand that would unload a busy model waits for that model's turn
to end.

Under the load rules (one chat model at a time, exclusive categories) requests for several models
that come interleaved would swap engines at every request (ABCABC). Instead a loaded model's
turn lasts while its requests keep coming: a load on demand that would displace a model with
requests in flight or waiting, or one that had a request within GRACE seconds, waits until that
model's turn ends, or until its own oldest request has been passed over for ``bound`` seconds
(MODELYARD_SWAP_BOUND). The loads that wait go in the order of their oldest requests, one at a
time, and none unloads a model whose own load is under way (``loading``: its requests wait for
it). So each model's waiting requests are served together (AABBCC). A model displaced while
requests still wait for it asks for its turn again (they keep waiting). While a load waits, its
model's files are read into the page cache where memory allows, so that its engine starts from
RAM. With no bound, each load goes as soon as no rival is loading (first come first served).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil

from modelyard.runtime.clock import Clock
from modelyard.runtime.queue import Queue

log = logging.getLogger(__name__)

GRACE = 0.5  # seconds without a request that end a model's turn
LOOK = 0.1  # seconds between looks at whether a turn ended


@dataclass
class Turns:
    """The loads on demand waiting for their turn, by model: since when (their oldest request),
    and the model's category (for the load rules)."""

    clock: Clock
    bound: float  # seconds a request may be passed over for other models' turns
    waiting: dict[str, tuple[float, str]] = field(default_factory=dict)
    loading: set[str] = field(default_factory=set)  # the loads on demand under way
    swaps: int = 0  # models unloaded for another

    def busy(self, queue: Queue) -> bool:
        """Whether a loaded model's turn goes on: requests in flight, waiting, or just now."""
        return bool(queue.in_flight or queue.waiting) or self.clock.now() - queue.last_used < GRACE

    def first(self, name: str, rivals: Iterable[str]) -> bool:
        """Whether ``name`` waits longer than each of the ``rivals`` that wait (whose loads would
        displace it, or it them)."""
        since = self.waiting[name][0]
        return all(self.waiting[r][0] > since for r in rivals if r in self.waiting and r != name)

    def passed_over(self, name: str) -> float:
        """Seconds its oldest request has waited for other models' turns."""
        return self.clock.now() - self.waiting[name][0]


def prefetch(paths: Iterable[str]) -> None:
    """Ask the kernel to read ``paths`` (files, or folders of them) into the page cache ahead of
    their load, as far as they fit in half the memory available."""
    room = psutil.virtual_memory().available
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += [os.path.join(top, f) for top, _, names in os.walk(path) for f in names]
        else:
            files.append(path)
    for path in files:
        try:
            size = os.path.getsize(path)
            if size > room // 2:
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)
            room -= size
        except OSError as e:  # a folder, a file gone: it loads from disk
            log.debug("prefetch of %s: %s", path, e)
