"""Quotas on loads, as the model library manual has them: chat models load freely; loading an
embedding, rerank, multimodal or image model counts against a quota once it loaded. A quota is a
number of such loads per day, week, month or in total, for one key, or ("*") for every key that
has none of its own (and for the local user on a server without keys)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from modelyard.catalog.records import Model, Quota
from modelyard.categories import Category
from modelyard.errors import InvalidInput, KeyNotFound, NotFound, QuotaExceeded
from modelyard.periods import PERIODS, period_end, period_start
from modelyard.usage.meter import LOCAL, Meter

COUNTED = frozenset(
    {Category.EMBEDDING, Category.RERANK, Category.MULTIMODAL, Category.IMAGE, Category.VIDEO}
)
EVERYONE = "*"


def counted(model: Model) -> bool:
    """Whether loading ``model`` counts against a quota."""
    return model.category in COUNTED


@dataclass
class Standing:
    """Where one key stands against the quota that applies to it."""

    key: str  # a key's name, or "local"
    quota: str  # whose quota applies: the key's own, or "*"
    loads: int
    period: str
    used: int
    left: int
    renews: datetime | None  # when the period ends; None for a total


class Quotas:
    def __init__(self, meter: Meter, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.meter = meter
        self.store = meter.store
        self._now = now

    def set(self, key: str, loads: int, period: str) -> Quota:
        if period not in PERIODS:
            raise InvalidInput(f"unknown quota period {period!r}", hint=f"one of {', '.join(PERIODS)}")
        if loads < 0:
            raise InvalidInput("a quota's number of loads cannot be negative", hint="0 allows none")
        if key != EVERYONE and key not in self._key_names():
            raise KeyNotFound(key)
        return self.store.put_quota(Quota(key, loads, period))

    def _key_names(self) -> list[str]:
        keys = self.store.keys()
        return [k.name for k in keys]

    def remove(self, key: str) -> None:
        if not self.store.delete_quota(key):
            raise NotFound(
                f"{'no quota applies to every key' if key == EVERYONE else f'the key {key!r} has no quota'}",
                hint="`modelyard quotas ls` shows the quotas",
            )

    def _of(self, key: str, quotas: dict[str, Quota]) -> Quota | None:
        return quotas.get(key) or quotas.get(EVERYONE)

    def standing(self, key: str | None, quotas: dict[str, Quota] | None = None) -> Standing | None:
        """Where ``key`` (None: the local user) stands; None when no quota applies to it."""
        who = key or LOCAL
        quotas = quotas if quotas is not None else {q.key: q for q in self.store.quotas()}
        quota = self._of(who, quotas)
        if quota is None:
            return None
        now = self._now()
        start = period_start(quota.period, now)
        used = sum(row.loads for row in self.meter.usage(start, who))
        left = max(0, quota.loads - used)
        return Standing(who, quota.key, quota.loads, quota.period, used, left, period_end(quota.period, now))

    def standings(self) -> list[Standing]:
        """Every key's standing (the local user's too, on a server without keys)."""
        quotas = {q.key: q for q in self.store.quotas()}
        keys = self._key_names() or [LOCAL]
        return [s for k in keys if (s := self.standing(k, quotas)) is not None]

    def check(self, key: str | None, model: Model) -> None:
        """Refuse a load of ``model`` that ``key`` has no quota left for."""
        if not counted(model):
            return
        standing = self.standing(key)
        if standing is None or standing.left > 0:
            return
        per = "in total" if standing.period == "total" else f"this {standing.period}"
        renews = f"; it renews at {standing.renews:%Y-%m-%d %H:%M} UTC" if standing.renews else ""
        who = "the local user" if standing.key == LOCAL else f"the key {standing.key!r}"
        raise QuotaExceeded(
            f"{who} has used {standing.used} of {standing.loads} loads of embedding, rerank, multimodal "
            f"and image models {per}: 0 left{renews}",
            hint="chat models load freely; an admin raises the quota with `modelyard quotas set`",
        )

    def charge(self, key: str | None, model: Model) -> None:
        """Count a load of ``model`` that succeeded."""
        if counted(model):
            self.meter.add(model.name, key, loads=1)
