"""Deployments on fakes: a roll keeps serving, stop keeps the deployment, a deleted instance is
replaced, the auto-restart switch, backend versions and engine arguments."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from modelyard.backends.environments import default_variant
from modelyard.catalog.records import Deployment, ModelSettings
from modelyard.errors import (
    EngineBuilding,
    EngineError,
    EngineUnavailable,
    InvalidSettings,
    ModelNotLoaded,
    NotFound,
)
from modelyard.runtime.supervisor import State
from runtime.fakes import Harness, harness, run, until


async def serve_all_along(h: Harness, name: str, stop: asyncio.Event) -> tuple[int, int, set[int]]:
    """Requests one after another (each held a moment) until ``stop``: (answered, failed, the
    instances that answered)."""
    answered = failed = 0
    seen: set[int] = set()
    while not stop.is_set():
        try:
            queue, slot = await asyncio.wait_for(h.acquire(name), 5)
        except Exception:
            failed += 1
            await asyncio.sleep(0.001)
            continue
        seen.add(slot.instance_id)
        await asyncio.sleep(0.001)
        queue.release(slot)
        answered += 1
    return answered, failed, seen


def save_settings(h: Harness, name: str, options: dict[str, int]) -> None:
    """Settings saved for the fake backend (the library checks them against the real ones')."""
    h.library.store.change_settings(name, lambda _m: ModelSettings(backend="fake", options=options))


def argv_of(h: Harness, name: str) -> list[list[str]]:
    return [e.launch.spec.argv for e in h.engines(name)]


@run
async def test_an_edit_rolls_one_instance_at_a_time_and_no_request_fails(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        await h.runtime.deploy(Deployment(model="m", replicas=2))
        old = {e.launch.instance for e in h.engines("m")}
        h.script("m", ready_after=5)  # the new engines take 5 s to be ready
        stop = asyncio.Event()
        traffic = asyncio.ensure_future(serve_all_along(h, "m", stop))
        save_settings(h, "m", {"n_ctx": 1024})
        rolling = asyncio.ensure_future(h.runtime.deploy(Deployment(model="m", replicas=2, args=["--fast"])))
        await until(lambda: len(h.engines("m")) == 3)  # the first new one starts beside the old two
        await h.advance(5.2)
        await until(
            lambda: len(h.engines("m")) == 3 and not old <= {e.launch.instance for e in h.engines("m")}
        )
        await h.advance(5.2)
        dep = await rolling
        stop.set()
        answered, failed, seen = await traffic
        assert failed == 0
        assert answered > 0
        new = {e.launch.instance for e in h.engines("m")}
        assert len(new) == 2
        assert not new & old
        assert seen & old
        assert seen & new
        assert all(argv[-1] == "--fast" for argv in argv_of(h, "m"))
        assert dep.args == ["--fast"]
        assert dep.options == {"n_ctx": 1024}
        assert h.state("m") == ["running", "running"]


@run
async def test_a_roll_whose_new_instance_fails_leaves_the_old_ones_serving(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        await h.runtime.deploy(Deployment(model="m", replicas=1))
        (old,) = h.engines("m")
        h.script("m", fail_start=True)
        with pytest.raises(EngineError, match="exited with status 1 while starting"):
            await h.runtime.deploy(Deployment(model="m", replicas=1, args=["--fast"]))
        assert h.engines("m") == [old]
        assert h.library.store.deployment("m").args == []  # type: ignore[union-attr]
        queue, slot = await h.acquire("m")
        assert slot.instance_id == old.launch.instance
        queue.release(slot)


@run
async def test_reload_rolls_with_the_saved_settings(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        await h.runtime.deploy(Deployment(model="m"))
        (old,) = h.engines("m")
        save_settings(h, "m", {"n_ctx": 512})
        dep = await h.runtime.reload("m")
        (new,) = h.engines("m")
        assert new is not old
        assert old.returncode() is not None
        assert dep.options == {"n_ctx": 512}
        with pytest.raises(ModelNotLoaded):
            await h.runtime.reload("other")


@run
async def test_stop_keeps_the_deployment_and_start_brings_it_back_as_it_was(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        await h.runtime.deploy(Deployment(model="m", replicas=2, args=["--mode", "x"], env={"A": "1"}))
        stopped = await h.runtime.stop("m")
        assert stopped.stopped
        assert stopped.replicas == 2
        assert h.engines("m") == []
        assert h.runtime.instances() == []
        with pytest.raises(ModelNotLoaded):
            await h.acquire("m")
        started = await h.runtime.start_deployment("m")
        assert not started.stopped
        assert len(h.engines("m")) == 2
        for engine in h.engines("m"):
            assert engine.launch.spec.argv[-2:] == ["--mode", "x"]
            assert engine.launch.env == {"A": "1"}


@run
async def test_a_stopped_deployment_stays_stopped_when_the_server_starts_again(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        h.add("n", "embedding")
        await h.runtime.deploy(Deployment(model="m"))
        await h.runtime.deploy(Deployment(model="n"))
        await h.runtime.stop("m")
    async with harness(tmp_path) as h:
        await until(lambda: h.state("n") == ["running"])
        assert h.engines("m") == []
        kept = h.library.store.deployment("m")
        assert kept is not None
        assert kept.stopped
        await h.runtime.unload("m")  # deleting a stopped deployment forgets it
        assert h.library.store.deployment("m") is None


@run
async def test_a_deleted_instance_is_replaced_by_a_new_one(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        await h.runtime.deploy(Deployment(model="m", replicas=2))
        first, second = sorted(e.launch.instance for e in h.engines("m"))
        new = await h.runtime.recreate(first)
        ids = sorted(i.id for i in h.runtime.instances())
        assert ids == [second, new]
        assert new > second
        assert h.state("m") == ["running", "running"]
        with pytest.raises(NotFound):
            await h.runtime.recreate(first)


@run
async def test_with_auto_restart_off_an_engine_that_exits_stays_down(tmp_path: Path) -> None:
    async with harness(tmp_path, restart_backoff=1) as h:
        h.add("m")
        await h.runtime.deploy(Deployment(model="m", restart=False))
        (engine,) = h.engines("m")
        await engine.crash(3)
        await until(lambda: h.state("m") == ["error"])
        await h.advance(60)
        assert h.engines("m") == []
        (inst,) = h.runtime.instances()
        assert "auto-restart is off" in inst.history[-1]["note"]
        # switched on again (no roll: the engines would start the same way)
        await h.runtime.deploy(Deployment(model="m", restart=True))
        await h.runtime.recreate(inst.id)
        (engine,) = h.engines("m")
        await engine.crash(3)
        await h.advance(1.5)
        await until(lambda: len(h.engines("m")) == 1)


@run
async def test_versions_are_pinned_per_deployment(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        with pytest.raises(EngineUnavailable, match=r"fake-engine 2\.0 is not installed"):
            await h.runtime.deploy(Deployment(model="m", backend_version="2.0"))
        assert h.library.store.deployment("m") is None  # nothing half-written
        h.backend.install("cpu", lambda *_: None, "2.0")
        await h.runtime.deploy(Deployment(model="m", backend="fake", backend_version="2.0"))
        assert [argv[0] for argv in argv_of(h, "m")] == ["fake-engine-2.0"]
        await h.runtime.deploy(Deployment(model="m", backend="fake"))  # back to the default: a roll
        assert [argv[0] for argv in argv_of(h, "m")] == ["fake-engine"]


@run
async def test_a_load_with_no_engine_installed_starts_installing_the_one_that_installs_on_first_use(
    tmp_path: Path,
) -> None:
    """llama-server is built on its first use: the load that finds none starts the install (one,
    however many loads ask) and says so; once it is done, the load goes through. Another
    backend's missing engine only says how to install it."""
    async with harness(tmp_path) as h:
        h.add("m")
        h.backend.missing = True
        with pytest.raises(EngineUnavailable, match="fake-engine is not installed") as refused:
            await h.runtime.deploy(Deployment(model="m"))
        assert not isinstance(refused.value, EngineBuilding)
        assert h.runtime.installs.all() == []

        h.backend.installs_on_first_use = True
        h.backend.building.clear()  # the build takes a while
        with pytest.raises(EngineBuilding) as building:
            await h.runtime.deploy(Deployment(model="m"))
        assert h.library.store.deployment("m") is None  # nothing half-written
        (job,) = h.runtime.installs.all()
        assert (job.backend, job.variant, building.value.job) == ("fake", default_variant(), job.id)
        assert f"install job {job.id}" in building.value.message
        with pytest.raises(EngineBuilding) as again:  # the same install, not a second one
            await h.runtime.deploy(Deployment(model="m"))
        assert again.value.job == job.id
        h.backend.building.set()
        states = [event["state"] async for event in h.runtime.installs.events(job.id)]
        assert states[-1] == "done"
        await h.runtime.deploy(Deployment(model="m"))
        assert [argv[0] for argv in argv_of(h, "m")] == ["fake-engine"]


@run
async def test_without_auto_install_a_missing_engine_is_only_refused(tmp_path: Path) -> None:
    async with harness(tmp_path, auto_install=False) as h:
        h.add("m")
        h.backend.missing = True
        h.backend.installs_on_first_use = True
        with pytest.raises(EngineUnavailable, match="fake-engine is not installed") as refused:
            await h.runtime.deploy(Deployment(model="m"))
        assert not isinstance(refused.value, EngineBuilding)
        assert h.runtime.installs.all() == []


@run
async def test_engine_arguments_are_checked_before_anything_starts(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        with pytest.raises(InvalidSettings, match="fake-engine has no flag --fsat"):
            await h.runtime.deploy(Deployment(model="m", args=["--fsat"]))
        with pytest.raises(Exception, match="no backend named 'other'"):
            await h.runtime.deploy(Deployment(model="m", backend="other"))
        assert h.engines("m") == []
        assert h.library.store.deployment("m") is None


@run
async def test_a_load_keeps_what_the_deployment_says(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        await h.runtime.deploy(Deployment(model="m", args=["--fast"], env={"A": "1"}))
        await h.runtime.stop("m")
        dep = await h.runtime.load("m")
        assert dep.args == ["--fast"]
        assert dep.env == {"A": "1"}
        (engine,) = h.engines("m")
        assert engine.launch.spec.argv[-1] == "--fast"


@run
async def test_editing_a_stopped_deployment_checks_it_and_keeps_it_stopped(tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        h.add("m")
        await h.runtime.deploy(Deployment(model="m"))
        dep = await h.runtime.stop("m")
        with pytest.raises(InvalidSettings):
            await h.runtime.edit(replace(dep, args=["--nope"]))
        edited = await h.runtime.edit(replace(dep, replicas=3))
        assert edited.stopped
        assert edited.replicas == 3
        assert h.engines("m") == []
        assert [i.state for i in h.runtime.instances()] == []
        assert State.RUNNING not in h.state("m")
