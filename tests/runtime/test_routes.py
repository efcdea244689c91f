"""Model routes in the runtime: the order a request tries the targets in (by weight, fallbacks
after, those cooling down last), why a target is passed over, and admission of a route's name on
the fake executor."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from modelyard.access.keys import Caller
from modelyard.catalog.records import ApiKey, Target
from modelyard.catalog.store import Store
from modelyard.errors import (
    EngineError,
    InvalidRequest,
    ModelNotLoaded,
    NoWorker,
    OverShare,
    QueueTimeout,
    ScopeDenied,
    Unsupported,
)
from modelyard.runtime.admission import Admission
from modelyard.runtime.routes import COOLDOWN, Routes, answered_badly, passed_over
from runtime.fakes import harness, run


class Now:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def routes_of(store: Store, now: Now | None = None) -> Routes:
    return Routes(store, random.Random(7), now or Now())


@run
async def test_the_first_target_goes_by_weight_and_the_rest_follow_in_order(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        for name in ("a", "b", "c"):
            h.add(name)
        routes = routes_of(h.library.store)
        routes.put("team", [Target("a", 3), Target("b", 1), Target("c", 0)], new=True)
        orders = [routes.choose("team") for _ in range(4000)]
        assert {tuple(o) for o in orders} == {("a", "b", "c"), ("b", "a", "c")}  # c: a fallback only
        share = sum(o[0] == "a" for o in orders) / len(orders)
        assert 0.72 < share < 0.78  # 3 of 4
        assert routes.choose("a") is None  # a model, not a route


@run
async def test_an_unavailable_target_goes_last_while_it_cools_down(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        for name in ("a", "b", "c"):
            h.add(name)
        now = Now()
        routes = routes_of(h.library.store, now)
        routes.put("team", [Target("a", 1), Target("b", 0), Target("c", 0)], new=True)
        routes.count("team", "a", "unavailable")
        assert routes.choose("team") == ["b", "c", "a"]  # the fallbacks in their order, a last
        routes.count("team", "a", "overloaded")  # a full queue passes: no cooling down for it
        now.t += COOLDOWN - 1
        assert routes.choose("team") == ["b", "c", "a"]
        now.t += 1
        assert routes.choose("team") == ["a", "b", "c"]
        routes.count("team", "b", "unavailable")
        routes.count("team", "b", "served")  # it answered again
        assert routes.choose("team") == ["a", "b", "c"]
        counts = {(c.target, c.outcome): n for c, n in routes.counts.items()}
        assert counts == {("a", "unavailable"): 1, ("a", "overloaded"): 1, ("b", "unavailable"): 1,
                          ("b", "served"): 1}  # fmt: skip


def test_what_passes_a_target_over() -> None:
    assert passed_over(OverShare("m", "k", 20, 20, 2)) == "overloaded"
    assert passed_over(QueueTimeout("m", 60)) == "overloaded"
    assert passed_over(NoWorker("m", "no worker has 8 GPUs")) == "unavailable"
    assert passed_over(EngineError("it exited")) == "unavailable"
    assert passed_over(ModelNotLoaded("m")) == "unavailable"
    assert passed_over(InvalidRequest("bad temperature")) is None  # the next would refuse it too
    assert [answered_badly(s) for s in (200, 400, 404, 429, 500, 503)] == [
        None, None, None, "overloaded", "failed", "failed"
    ]  # fmt: skip


@run
async def test_a_routes_name_is_admitted_as_its_targets(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        for name in ("a", "gone", "b"):
            h.add(name)
        routes = routes_of(h.library.store)
        routes.put("team", [Target("a", 1), Target("gone", 0), Target("b", 0)], new=True)
        h.library.store.delete_model("gone")  # behind the library's back: its routes still name it
        admission = Admission(h.runtime, routes)
        ticket = admission.admit("team", "chat", Caller())
        # a target no longer in the library is left out
        assert [ticket.model.name, *(t.model.name for t in ticket.then)] == ["a", "b"]
        assert {t.route for t in (ticket, *ticket.then)} == {"team"}
        assert ticket.then[0].stands_in(ticket, "/v1/chat/completions")
        assert ticket.then[0].stands_in(ticket, "/infill")  # the same backend: its own paths too
        # no target serves it: the first one's refusal, named for the route
        with pytest.raises(
            Unsupported, match="route 'team': 'a' is a chat model: it does not serve /v1/rerank"
        ):
            admission.admit("team", "rerank", Caller())

        # a key reaches a route by the route's name; its targets through it only
        key = ApiKey(name="k", prefix="my-", digest="d", scope="inference", models=["team"])
        assert admission.admit("team", "chat", Caller(key)).model.name == "a"
        with pytest.raises(ScopeDenied):
            admission.admit("a", "chat", Caller(key))
