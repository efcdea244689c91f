"""Writers at once, as two servers on one catalog (two Stores on one URL), each with threads:
what SQLite serialises must hold on PostgreSQL's isolation too. Nothing written is lost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelyard.catalog.records import Usage
from modelyard.catalog.store import Store
from modelyard.library import ImportRequest, Library

THREADS = 8


@pytest.fixture
def two(catalog_url: str) -> Iterator[tuple[Store, Store]]:
    first, second = Store(catalog_url), Store(catalog_url)
    yield first, second
    first.close()
    second.close()


def at_once(jobs: list[Callable[[], object]]) -> None:
    with ThreadPoolExecutor(THREADS) as pool:
        for done in [pool.submit(job) for job in jobs]:
            done.result()


def test_settings_changed_at_once_all_land(two: tuple[Store, Store], zoo: Path) -> None:
    libraries = [Library(s) for s in two]
    name = libraries[0].import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf"))).name
    changes = [
        {"n_ctx": 256}, {"n_batch": 256}, {"threads": 3}, {"cpu_only": True},
        {"no_kv_offload": True}, {"cache_reuse": 64}, {"n_gpu_layers": 7}, {"main_gpu": 0},
    ]  # fmt: skip
    for _ in range(3):  # the settings row is made by one of them, then changed by all
        libraries[0].put_settings(name, {}, merge=False)
        at_once([lambda c=c, i=i: libraries[i % 2].put_settings(name, c) for i, c in enumerate(changes)])
        settings = libraries[1].get(name).settings
        assert settings is not None
        assert settings.options == {k: v for c in changes for k, v in c.items()}


def test_usage_added_at_once_is_all_counted(two: tuple[Store, Store]) -> None:
    hour = datetime(2026, 12, 7, 10, tzinfo=UTC)
    rounds = 40
    jobs: list[Callable[[], object]] = [
        lambda i=i: two[i % 2].add_usage(
            [
                Usage(hour, "chat", "alice", requests=1, tokens_in=3),
                Usage(hour, "chat", f"k{i % 3}", requests=1),
            ]
        )
        for i in range(rounds)
    ]
    at_once(jobs)
    rows = {r.key: r for r in two[0].usage()}
    assert (rows["alice"].requests, rows["alice"].tokens_in) == (rounds, 3 * rounds)
    assert sum(rows[f"k{i}"].requests for i in range(3)) == rounds


def test_download_progress_and_state_written_at_once_both_stay(two: tuple[Store, Store]) -> None:
    jobs = [
        two[0].add_download(source="hf", repo=f"org/m{i}", revision="main", ref=f"org/m{i}", destination="/d")
        for i in range(THREADS)
    ]
    assert len({j.id for j in jobs}) == THREADS
    writes: list[Callable[[], object]] = []
    for j in jobs:  # one server counts the bytes while the other changes the state
        writes += [lambda j=j, n=n: two[0].update_download(j.id, bytes_done=n) for n in range(1, 11)]
        writes.append(lambda j=j: two[1].update_download(j.id, state="running", bytes_total=10))
    at_once(writes)
    for j in jobs:
        found = two[1].get_download(j.id)
        assert (found.state, found.bytes_total) == ("running", 10)
        assert found.bytes_done > 0
