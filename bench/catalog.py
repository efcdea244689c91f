"""The catalog under load: 10,000 mixed catalog operations from 50 concurrent clients through the
API, on SQLite (the default) and on PostgreSQL (a throwaway server, tests/postgres.py), each with
a fresh `modelyard serve`.

    .venv/bin/python bench/catalog.py [--ops 10000] [--clients 50]

The operations, chosen at random (seeded) for each client: half reads (the library, a model, the
routes), a third settings changes (each client owns one option of one of 10 models, and merges a
new value into it: every client's change lands in the same rows as nine others'), and the rest
description edits and a route made and removed. A lost update is an owned option whose final
value is not the owner's last: the goal is 0 on both. The last line is the ratio of PostgreSQL's
throughput to SQLite's.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

from common import ROOT, modelyard_server

sys.path.insert(0, str(ROOT / "tests"))
import builders
from postgres import database, postgres_server

MODELS = 10
OPTIONS = ("n_ctx", "n_batch", "threads", "threads_batch", "cache_reuse")  # 10 x 5 = 50 owners


async def client(
    http: httpx.AsyncClient, me: int, ops: int, last: dict[tuple[str, str], int], errors: list[str]
) -> None:
    rng = random.Random(me)
    model, option = f"m{me % MODELS}", OPTIONS[(me // MODELS) % len(OPTIONS)]
    for n in range(ops):
        pick = rng.random()
        if pick < 0.5:
            path = rng.choice(["/api/models", f"/api/models/{model}", "/api/routes"])
            r = await http.get(path)
        elif pick < 0.83:
            value = 1 + (n % 500)
            r = await http.put(f"/api/models/{model}/settings", json={"options": {option: value}})
            if r.status_code == 200:
                last[model, option] = value
        elif pick < 0.93:
            r = await http.patch(f"/api/models/{model}", json={"description": f"client {me}, op {n}"})
        else:
            route = f"r{me}"
            r = await http.post(
                "/api/routes", json={"name": route, "targets": [{"model": model, "weight": 1}]}
            )
            if r.status_code == 201:
                r = await http.delete(f"/api/routes/{route}")
        if r.status_code >= 400:
            errors.append(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:200]}")


async def run(url: str, ops: int, clients: int) -> tuple[float, int, int]:
    """Seconds for ``ops`` operations, lost updates, errors."""
    last: dict[tuple[str, str], int] = {}
    errors: list[str] = []
    # idle connections dropped before the server's keep-alive (5 s) would close them under a request
    limits = httpx.Limits(max_connections=clients, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http, me, ops // clients, last, errors) for me in range(clients)))
        took = time.perf_counter() - start
        lost = 0
        for m in range(MODELS):
            saved = (await http.get(f"/api/models/m{m}/settings")).json()["saved"]
            lost += sum(
                1 for (model, option), v in last.items() if model == f"m{m}" and saved.get(option) != v
            )
    for e in errors[:5]:
        print("  error:", e)
    return took, lost, len(errors)


def bench(name: str, settings: dict[str, str], models: Path, ops: int, clients: int) -> float:
    with modelyard_server(settings=settings) as url:
        for m in range(MODELS):
            body = {"path": str(models / f"m{m}.gguf"), "name": f"m{m}"}
            httpx.post(url + "/api/models", json=body, timeout=60).raise_for_status()
        took, lost, errors = asyncio.run(run(url, ops, clients))
    print(f"{name:<10} {ops} ops, {clients} clients: {took:6.2f} s, {ops / took:7.1f} ops/s, "
          f"{lost} lost updates, {errors} errors")  # fmt: skip
    return ops / took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    a = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp)
        for m in range(MODELS):
            builders.write_llama_gguf(models / f"m{m}.gguf")
        sqlite = bench("sqlite", {}, models, a.ops, a.clients)
        with postgres_server() as server, database(server) as url:
            postgres = bench("postgresql", {"MODELYARD_DATABASE_URL": url}, models, a.ops, a.clients)
    print(f"ratio (PostgreSQL / SQLite throughput): {postgres / sqlite:.2f}")


if __name__ == "__main__":
    main()
