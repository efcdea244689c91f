"""Model routes: a name clients ask for, sent to one of its targets by weight, and to the next
target where that one cannot answer.

A route's targets are library models: models loaded here, servers that already run and remote
OpenAI-compatible providers (registered with `modelyard import --url`, their keys kept with
them). Each request picks its first target at random by weight (weight 0: a fallback only); the
others follow in the route's order. A target is passed over for the next (see ``passed_over``)
when it is overloaded (its queue is full, or the wait is too long), cannot be loaded or reached,
or answers 429 or a server error before the first byte; what went to each target and why one
was passed over is counted for /metrics. A target that could not be loaded or reached goes last
for ``COOLDOWN`` seconds, so that the requests after it do not wait for it again.

Routes are kept in the catalog and read from memory on the hot path, read again once the
catalog changed (a model renamed renames it in its routes too).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from modelyard.catalog.records import Route, Target
from modelyard.catalog.store import Store
from modelyard.errors import (
    EngineError,
    InvalidInput,
    LoadRefused,
    ModelExists,
    ModelNotLoaded,
    ModelyardError,
    QueueFull,
    QueueTimeout,
    QuotaExceeded,
    RouteNotFound,
    WontFit,
)
from modelyard.library.naming import check_name

# why a target was passed over, and what it did when it was not
OUTCOMES = ("served", "overloaded", "unavailable", "failed")
MAX_TARGETS = 16
COOLDOWN = 30.0  # seconds an unavailable target goes last


def passed_over(error: ModelyardError) -> str | None:
    """Why a target whose lease or request raised ``error`` is passed over for the next one:
    "overloaded" or "unavailable"; None where the request itself is at fault (the next target
    would refuse it too)."""
    if isinstance(error, QueueFull | QueueTimeout):
        return "overloaded"
    if isinstance(error, EngineError | ModelNotLoaded | LoadRefused | WontFit | QuotaExceeded):
        return "unavailable"
    return None


def answered_badly(status: int) -> str | None:
    """Why a target whose answer began with ``status`` is passed over: 429 "overloaded", a
    server error "failed"; None for an answer the client gets."""
    if status == 429:
        return "overloaded"
    return "failed" if status >= 500 else None


@dataclass(frozen=True, slots=True)
class Counted:
    route: str
    target: str
    outcome: str


class Routes:
    """Every route, from the catalog, with its counters. ``choose`` is random unless given
    ``rng`` (the tests')."""

    def __init__(
        self, store: Store, rng: random.Random | None = None, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._rng = rng or random.Random()
        self._now = now
        self._down: dict[tuple[str, str], float] = {}  # (route, target) -> until when it goes last
        self._lock = threading.Lock()
        self._read = -1  # the catalog's generation when the routes were read
        self._cached: dict[str, Route] = {}
        self.counts: Counter[Counted] = Counter()

    @property
    def _routes(self) -> dict[str, Route]:
        if self._read != self._store.generation:
            generation = self._store.generation
            self._cached = {r.name: r for r in self._store.routes()}
            self._read = generation
        return self._cached

    def __contains__(self, name: str) -> bool:
        return name in self._routes

    def all(self) -> list[Route]:
        return list(self._routes.values())

    def get(self, name: str) -> Route:
        route = self._routes.get(name)
        if route is None:
            raise RouteNotFound(name)
        return route

    def put(self, name: str, targets: list[Target], description: str = "", *, new: bool) -> Route:
        """Make the route ``name`` (``new``) or change its targets; each target must be a model of
        the library (not a route: a route does not lead to another). One change at a time: two
        makers of one name get a route and a refusal."""
        with self._lock:
            self._check(name, targets, new=new)
            return self._store.put_route(Route(name, list(targets), description))

    def _check(self, name: str, targets: list[Target], *, new: bool) -> None:
        check_name(name, "route")
        if new and name in self._routes:
            raise ModelExists(f"a route named {name!r} exists", hint=f"`modelyard routes edit {name}`")
        if not new:
            self.get(name)
        if new and (self._store.has_name(name) or self._store.find_by_alias(name) is not None):
            raise ModelExists(f"{name!r} names a model of the library", hint="pick another name")
        if not targets:
            raise InvalidInput(f"route {name!r} needs a target", hint="such as --target MODEL")
        if len(targets) > MAX_TARGETS:
            raise InvalidInput(f"a route has {MAX_TARGETS} targets at most")
        seen: set[str] = set()
        for t in targets:
            if t.model in seen:
                raise InvalidInput(f"route {name!r} names {t.model!r} twice")
            seen.add(t.model)
            if t.weight < 0:
                raise InvalidInput(
                    f"the weight of {t.model!r} is negative", hint="0 makes it a fallback only"
                )
            if t.model in self._routes:
                raise InvalidInput(f"{t.model!r} is a route: a target is a model")
            if not self._store.has_name(t.model):
                raise InvalidInput(
                    f"route {name!r}: no model named {t.model!r} in the library",
                    hint="import it first; a server elsewhere: `modelyard import --url URL --api-key KEY`",
                )
        if not any(t.weight > 0 for t in targets):
            raise InvalidInput(f"route {name!r} has no target of weight above 0", hint="give one a weight")

    def delete(self, name: str) -> None:
        self._store.delete_route(name)

    def choose(self, name: str) -> list[str] | None:
        """The targets of the route ``name`` in the order a request tries them: one picked by
        weight, then the rest as the route lists them, those cooling down last. None: ``name``
        is no route."""
        route = self._routes.get(name)
        if route is None:
            return None
        now = self._now()
        up = [t for t in route.targets if self._down.get((name, t.model), 0.0) <= now]
        down = [t for t in route.targets if t not in up]
        weighted = [t for t in up if t.weight > 0]
        if weighted:
            picked = self._rng.choices(weighted, weights=[t.weight for t in weighted])[0]
            up = [picked, *(t for t in up if t is not picked)]
        return [t.model for t in up + down]

    def count(self, route: str, target: str, outcome: str) -> None:
        """What ``target`` did with a request of ``route``; one that was unavailable cools down."""
        self.counts[Counted(route, target, outcome)] += 1
        if outcome == "unavailable":
            self._down[(route, target)] = self._now() + COOLDOWN
        elif outcome == "served":
            self._down.pop((route, target), None)
