"""The meter: what each key asks of each model, added up by the hour in memory and written to
the catalog every few seconds (and when the server stops), so that the gateway's hot path never
waits for the database. Counting happens in the server's loop; reads may come from a worker
thread (sync routes): one lock guards the pending counts, another the writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from modelyard.catalog.records import Usage
from modelyard.catalog.store import Store

log = logging.getLogger(__name__)
FLUSH_EVERY = 5.0  # seconds between writes to the catalog
LOCAL = "local"  # who calls on a server without keys
BY = ("model", "key")


def hour_of(at: float) -> datetime:
    return datetime.fromtimestamp(at // 3600 * 3600, UTC)


class Meter:
    def __init__(self, store: Store, *, now: Callable[[], float] = time.time) -> None:
        self.store = store
        self._now = now
        self._pending: dict[tuple[float, str, str], Usage] = {}
        self._task: asyncio.Task[None] | None = None
        self._counting = threading.Lock()
        self._writing = threading.Lock()

    def add(
        self,
        model: str,
        key: str | None,
        *,
        requests: int = 0,
        tokens_in: int = 0,
        tokens_out: int = 0,
        images: int = 0,
        loads: int = 0,
    ) -> None:
        """Count this for ``model`` and ``key`` (None: the local user) in the current hour."""
        hour = self._now() // 3600
        who = key or LOCAL
        with self._counting:
            tally = self._pending.get((hour, model, who))
            if tally is None:
                tally = self._pending[(hour, model, who)] = Usage(hour_of(hour * 3600), model, who)
            tally.requests += requests
            tally.tokens_in += tokens_in
            tally.tokens_out += tokens_out
            tally.images += images
            tally.loads += loads

    def _take(self) -> list[Usage]:
        with self._counting:
            pending, self._pending = self._pending, {}
        return list(pending.values())

    def _write(self) -> None:
        """Write what is pending; what cannot be written stays pending."""
        with self._writing:
            tallies = self._take()
            if not tallies:
                return
            try:
                self.store.add_usage(tallies)
            except Exception:
                self._give_back(tallies)
                raise

    def _give_back(self, tallies: Iterable[Usage]) -> None:
        for t in tallies:
            self.add(t.model, t.key, requests=t.requests, tokens_in=t.tokens_in,
                     tokens_out=t.tokens_out, images=t.images, loads=t.loads)  # fmt: skip

    def flush(self) -> None:
        """Write what was counted to the catalog now."""
        self._write()

    async def _flushing(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(self._write)
            except Exception:
                log.exception("writing usage to the catalog; it is kept for the next try")

    def start(self, every: float = FLUSH_EVERY) -> None:
        self._task = asyncio.create_task(self._flushing(every))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.flush()

    def usage(self, since: datetime | None = None, key: str | None = None) -> list[Usage]:
        """The hourly rows from ``since`` on, what is not written yet included."""
        self.flush()
        return self.store.usage(since, key)


@dataclass
class Total:
    """Usage added up over a span, for one model or key (or all)."""

    name: str
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    images: int = 0
    loads: int = 0

    def add(self, row: Usage) -> None:
        self.requests += row.requests
        self.tokens_in += row.tokens_in
        self.tokens_out += row.tokens_out
        self.images += row.images
        self.loads += row.loads


def totals(rows: Iterable[Usage], by: str) -> list[Total]:
    """``rows`` added up per model or per key (``by``), the busiest first."""
    groups: dict[str, Total] = {}
    for row in rows:
        name = row.model if by == "model" else row.key
        groups.setdefault(name, Total(name)).add(row)
    return sorted(groups.values(), key=lambda t: (-(t.tokens_in + t.tokens_out), -t.requests, t.name))


def hourly(rows: Iterable[Usage]) -> list[Total]:
    """``rows`` added up per hour (named by its ISO time), oldest first: the chart's points."""
    hours: dict[datetime, Total] = {}
    for row in rows:
        hours.setdefault(row.hour, Total(row.hour.isoformat())).add(row)
    return [hours[h] for h in sorted(hours)]
