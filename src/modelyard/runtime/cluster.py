"""The RayExecutor: engines on the nodes of a Ray cluster (MODELYARD_CLUSTER).

Ray is the source of truth for which nodes exist, whether they are alive and what they declared
when they joined (labels, RAM and per-GPU VRAM as custom resources; see cli/cluster.py). Each
start of an instance is one detached actor, named per start, ``max_restarts=0`` (the runtime
places again, not Ray), pinned to the node the scheduler chose and holding the memory it chose as
custom resources, so two placements never overbook a node even when they race. The actor starts
the engine in its own process group, dead with it (actors.py). One agent actor per node reports
the inventory and reads the logs kept there. The gateway talks to the engines directly at their
node's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from modelyard import estimate
from modelyard.backends.base import PEERS, Placement
from modelyard.errors import EngineError, InvalidImport, PathNotFound
from modelyard.formats.gguf import GGUFFile
from modelyard.formats.inspection import Inspection
from modelyard.runtime import actors
from modelyard.runtime.executor import LOST, Claim, Gpu, Launch, LogRef, Node, Usage
from modelyard.runtime.local import Answering

log = logging.getLogger(__name__)
AgentActor = ray.remote(num_cpus=0)(actors.Agent)
InstanceActor = ray.remote(num_cpus=0, max_restarts=0)(actors.Instance)
START_TIMEOUT = 60.0  # seconds an instance's actor has to be placed and start its engine
MiB = actors.MiB


async def _listening(address: str, timeout: float = 10.0) -> None:
    """Until something accepts connections at host:port (a part of a distributed engine)."""
    host, _, port = address.rpartition(":")
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            return
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise EngineError(f"the part of the engine at {address} does not listen") from None
            await asyncio.sleep(0.1)


def resources(claims: Sequence[Claim], node: str) -> dict[str, float]:
    """The custom resources that hold a claim's memory on ``node`` (MiB, rounded up)."""
    out: dict[str, float] = {}
    for c in claims:
        if c.node != node:
            continue
        if c.ram:
            out[actors.RAM] = out.get(actors.RAM, 0) + math.ceil(c.ram / MiB)
        for index, amount in c.vram:
            key = f"{actors.VRAM}{index}"
            out[key] = out.get(key, 0) + math.ceil(amount / MiB)
    return out


class RayEngine(Answering):
    """An engine in an instance actor: its health over HTTP from here, the rest from the actor."""

    def __init__(
        self,
        actor: Any,
        url: str,
        pid: int | None,
        health: str,
        log_ref: LogRef,
        http: httpx.AsyncClient,
        auth: dict[str, str],
        peers: list[Any] | None = None,
    ) -> None:
        super().__init__(url, health, log_ref, http, auth)
        self._actor = actor
        self._peers = peers or []  # a distributed engine's parts on other workers
        self._pid = pid
        self._watch = asyncio.ensure_future(self._watching())

    @property
    def pid(self) -> int | None:
        return self._pid

    async def _watching(self) -> None:
        """The engine's exit, or a part's: a distributed engine without a part cannot serve."""
        waits = [asyncio.ensure_future(self._wait(a)) for a in [self._actor, *self._peers]]
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        code = next(iter(done)).result()
        if waits[0] not in done:  # a part ended first: its engine goes too
            log.warning("a part of the engine at %s ended (%s); stopping it", self.url, code)
            with contextlib.suppress(RayError, TimeoutError):
                await asyncio.wait_for(self._actor.stop.remote(5.0), 15)
        for w in waits:
            w.cancel()
        if not self._exit.done():
            self._exit.set_result(code)

    async def _wait(self, actor: Any) -> int:
        try:
            code: int = await actor.wait.remote()
            return code
        except RayActorError:  # the actor died: with its node, or killed
            return LOST
        except RayError as e:
            log.warning("instance actor of %s: %s", self.url, e)
            return LOST

    async def stop(self, grace: float) -> int | None:
        async def stopped(actor: Any) -> int | None:
            with contextlib.suppress(RayError, TimeoutError):
                found: int | None = await asyncio.wait_for(actor.stop.remote(grace), grace + 10)
                return found
            return None

        code, *_ = await asyncio.gather(*(stopped(a) for a in [self._actor, *self._peers]))
        for actor in [self._actor, *self._peers]:
            with contextlib.suppress(RayError, TimeoutError, ValueError):
                ray.kill(actor, no_restart=True)
        if not self._exit.done():
            self._exit.set_result(code if code is not None else LOST)
        return code

    async def usage(self) -> Usage:
        try:
            found: Usage = await asyncio.wait_for(self._actor.usage.remote(), 5)
            return found
        except (RayError, TimeoutError):
            return Usage(memory=0, cpu_percent=0.0)


class RayExecutor:
    """Engines on a Ray cluster's workers. ``owner`` (the server's home) marks them; ``programs``
    gives each backend's program, which the agents look for on their nodes."""

    elastic = True

    def __init__(
        self, address: str, owner: str, programs: Callable[[], list[tuple[str, str]]] | None = None
    ) -> None:
        if not ray.is_initialized():
            ray.init(
                address=address,
                namespace=actors.NAMESPACE,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        self.owner = owner
        self.tag = hashlib.sha256(owner.encode()).hexdigest()[:8]  # in its actors' names
        self.programs = programs or (lambda: [])
        self._agents: dict[str, Any] = {}  # Ray node id -> its agent
        self._ids: dict[str, str] = {}  # worker name -> Ray node id
        self._holders: dict[str, list[str]] = {}  # model path -> the workers that last had it
        self._http = httpx.AsyncClient(timeout=5.0)
        estimate.elsewhere = self.gguf_header  # the headers of files only workers hold

    # -- the inventory ---------------------------------------------------------------------------

    def _agent(self, node_id: str, declared: dict[str, float]) -> Any:
        agent = self._agents.get(node_id)
        if agent is None:
            agent = AgentActor.options(
                name=f"agent-{node_id}",
                namespace=actors.NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(declared)
            self._agents[node_id] = agent
        return agent

    async def nodes(self, paths: Sequence[str] = ()) -> list[Node]:
        found = await asyncio.to_thread(ray.nodes)
        workers = [
            n
            for n in found
            if actors.RAM in n.get("Resources", {}) or n.get("Labels", {}).get(actors.WORKER_LABEL)
        ]
        programs = self.programs()
        out: list[Node] = []
        seen: set[str] = set()
        asks = []
        for n in workers:
            node_id: str = n["NodeID"]
            labels = dict(n.get("Labels") or {})
            name = labels.pop(actors.WORKER_LABEL, None) or node_id[:12]
            labels = {k: v for k, v in labels.items() if not k.startswith("ray.io/")}
            if not n["Alive"]:
                self._agents.pop(node_id, None)
                if self._ids.get(name) == node_id and name not in seen:
                    out.append(Node(name, n["NodeManagerAddress"], 0, 0, labels=labels, alive=False))
                    seen.add(name)
                continue
            seen.add(name)
            self._ids[name] = node_id
            agent = self._agent(node_id, dict(n.get("Resources") or {}))
            asks.append(
                (name, n["NodeManagerAddress"], labels, agent.inventory.remote(list(paths), programs))
            )
        for name, address, labels, ref in asks:
            try:
                inv = await asyncio.wait_for(ref, 10)
            except (RayError, TimeoutError) as e:
                log.warning("worker %s did not report: %s", name, e)
                out.append(Node(name, address, 0, 0, labels=labels, alive=False))
                continue
            gpus = tuple(
                Gpu(g["index"], g["name"], g["total"], g["free"], g["temperature"]) for g in inv["gpus"]
            )
            out.append(
                Node(
                    name, address, inv["ram_total"], inv["ram_free"], gpus, labels,
                    backends=frozenset(inv["backends"]), paths=frozenset(inv["paths"]), builds=inv.get("builds"),
                )
            )  # fmt: skip
        for path in paths:
            self._holders[path] = [n.id for n in out if n.paths is not None and path in n.paths]
        return sorted(out, key=lambda node: node.id)

    # -- files only the workers hold ------------------------------------------------------------

    async def inspect(self, path: str) -> tuple[str, Inspection] | None:
        for node in await self.nodes([path]):
            if node.alive and node.paths is not None and path in node.paths:
                answer = await asyncio.wait_for(self._agent_of(node.id).inspect.remote(path), 120)
                found: Inspection = _found(answer, path)
                return node.id, found
        return None

    def gguf_header(self, path: Path) -> GGUFFile:
        """A GGUF header read on a worker that holds the file (the one the last look at the
        nodes found), for an estimate made here; from a thread, never the event loop."""
        for node in self._holders.get(str(path), []):
            agent = self._agent_of(node)
            if agent is not None:
                header: GGUFFile = _found(ray.get(agent.gguf_header.remote(str(path)), timeout=60), str(path))
                return header
        raise PathNotFound(path)

    # -- engines ---------------------------------------------------------------------------------

    async def launch(self, launch: Launch) -> RayEngine:
        spec, where = launch.spec, launch.placement
        peers: list[Any] = []
        try:
            if where.peers:  # a distributed engine: its part on each peer first, then the engine
                if spec.peer is None:
                    raise EngineError(
                        f"the engine of instance {launch.instance} cannot run over several workers"
                    )
                addresses = []
                for node in where.peers:
                    gpus = tuple(i for c in launch.claims if c.node == node for i, _ in c.vram)
                    part = replace(launch, spec=spec.peer, placement=Placement(node, gpus), key=None)
                    actor, url, _ = await self._start(part, node, f"peer-{node}")
                    peers.append(actor)
                    addresses.append(url.removeprefix("http://"))
                await asyncio.gather(*(_listening(a) for a in addresses))
                argv = [",".join(addresses) if a == PEERS else a for a in spec.argv]
                # what is left is this node's part: an engine that knows where its peers are
                launch = replace(
                    launch, spec=replace(spec, argv=argv, peer=None), placement=replace(where, peers=())
                )
            actor, url, pid = await self._start(launch, where.node)
        except BaseException:
            for p in peers:
                with contextlib.suppress(RayError):
                    ray.kill(p, no_restart=True)
            raise
        auth = {"Authorization": f"Bearer {launch.key}"} if launch.key else {}
        ref = LogRef(where.node, launch.instance, launch.start)
        return RayEngine(actor, url, pid, spec.health_path, ref, self._http, auth, peers)

    async def _start(self, launch: Launch, node: str, part: str = "") -> tuple[Any, str, int | None]:
        """An instance actor on ``node`` holding the launch's claims there, and its engine started."""
        node_id = self._ids.get(node)
        if node_id is None:
            await self.nodes()
            node_id = self._ids.get(node)
        if node_id is None:
            raise EngineError(f"no worker {node!r} in the cluster", hint="`modelyard workers` lists them")
        found = await asyncio.to_thread(ray.nodes)
        address = next((n["NodeManagerAddress"] for n in found if n["NodeID"] == node_id), "127.0.0.1")
        actor: Any = InstanceActor.options(
            name=f"instance-{self.tag}-{launch.instance}.{launch.start}" + (f".{part}" if part else ""),
            namespace=actors.NAMESPACE,
            lifetime="detached",
            resources=resources(launch.claims, node),
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(self.owner, address, part)
        try:
            url, pid = await asyncio.wait_for(actor.start.remote(launch), START_TIMEOUT)
        except (TimeoutError, GetTimeoutError) as e:
            ray.kill(actor, no_restart=True)
            raise EngineError(
                f"worker {node!r} did not start instance {launch.instance} in {START_TIMEOUT:g} s",
                hint="its memory may be held by another placement; `modelyard workers` shows what is free",
            ) from e
        except RayError as e:
            with contextlib.suppress(RayError):
                ray.kill(actor, no_restart=True)
            raise EngineError(f"worker {node!r} could not start instance {launch.instance}: {e}") from e
        return actor, url, pid

    # -- logs and leftovers ----------------------------------------------------------------------

    def _agent_of(self, node: str) -> Any:
        node_id = self._ids.get(node)
        return self._agents.get(node_id) if node_id is not None else None

    async def read_log(self, ref: LogRef, offset: int = 0, limit: int = 1 << 20) -> bytes | None:
        agent = self._agent_of(ref.node)
        if agent is None:
            return None
        try:
            found: bytes | None = await asyncio.wait_for(
                agent.read_log.remote(ref.instance, ref.start, offset, limit), 10
            )
            return found
        except (RayError, TimeoutError):
            return None

    async def tail_log(self, ref: LogRef, lines: int = 40) -> str:
        agent = self._agent_of(ref.node)
        if agent is None:
            return ""
        try:
            found: str = await asyncio.wait_for(agent.tail_log.remote(ref.instance, ref.start, lines), 10)
            return found
        except (RayError, TimeoutError):
            return ""

    async def stop_orphans(self) -> list[int]:
        """Kill the instance actors an earlier server left (their engines die with them), and
        what the agents find still marked with this server's home."""
        named = await asyncio.to_thread(ray.util.list_named_actors, True)
        for entry in named:
            if entry["namespace"] == actors.NAMESPACE and entry["name"].startswith(f"instance-{self.tag}-"):
                with contextlib.suppress(RayError, ValueError):
                    ray.kill(ray.get_actor(entry["name"], namespace=actors.NAMESPACE), no_restart=True)
        await self.nodes()
        stopped: list[int] = []
        for agent in list(self._agents.values()):
            with contextlib.suppress(RayError, TimeoutError):
                stopped += await asyncio.wait_for(agent.stop_orphans.remote(self.owner), 10)
        return stopped

    async def close(self) -> None:
        if estimate.elsewhere == self.gguf_header:
            estimate.elsewhere = None
        await self._http.aclose()


def _found(answer: dict[str, Any], path: str) -> Any:
    """What an agent found at ``path``, or its refusal as the error it was there."""
    if "error" in answer:
        raise InvalidImport(f"{path} on its worker: {answer['error']}", hint=answer.get("hint"))
    return answer["found"]
