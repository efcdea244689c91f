"""Cluster commands: start the head, join workers (both wrap `ray start`), list, label and drain
workers.

A worker joins with its name and labels as Ray node labels, and with the memory engines may use
as Ray custom resources: its RAM, and each GPU's VRAM (NVML), in MiB. The scheduler's placements
hold that memory as the same resources, so Ray refuses one that would overbook a worker.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from modelyard.cli.common import F, Group, client, parse_pairs
from modelyard.cli.render import Column, console, fitted, human_size, print_json
from modelyard.errors import EngineUnavailable

# The names the executor reads (runtime/actors.py), spelled here so that the CLI needs no Ray.
WORKER_LABEL = "modelyard/worker"
RAM, VRAM = "modelyard_ram", "modelyard_vram_gpu"
MiB, GiB = 1 << 20, 1 << 30
# a node that stops answering is dead after 5 missed health checks a second apart (Ray: ~15 s)
HEALTH = {"health_check_period_ms": 1000, "health_check_failure_threshold": 5}

cluster_app = Group(
    "cluster", help="A cluster on Ray: `cluster start` on the head, then `worker join` on each worker."
)
worker_app = Group("worker", help="This machine as a worker of a cluster.")


def ray_program() -> str:
    program = Path(sys.executable).parent / "ray"
    if not program.exists():
        raise EngineUnavailable(
            "Ray is not installed", hint="install the cluster extra: pip install 'modelyard[cluster]'"
        )
    return str(program)


def worker_args(name: str, labels: dict[str, str], ram_gib: float | None) -> list[str]:
    """`ray start` arguments that make this machine a worker: its name and labels, its RAM and
    each GPU's VRAM as resources."""
    import psutil

    from modelyard.monitor.gpus import nvidia

    ram = int(ram_gib * GiB) if ram_gib else psutil.virtual_memory().total
    resources = {RAM: ram // MiB}
    gpus = [g for g in nvidia() if g.memory_total]
    for g in gpus:
        resources[f"{VRAM}{g.index}"] = (g.memory_total or 0) // MiB
    text = ",".join(f"{k}={v}" for k, v in {WORKER_LABEL: name, **labels}.items())
    return ["--resources", json.dumps(resources), "--labels", text, "--num-gpus", str(len(gpus))]


def head_command(
    port: int,
    worker: bool,
    name: str,
    labels: dict[str, str],
    ram_gib: float | None,
    ip: str | None,
    block: bool,
) -> list[str]:
    argv = [ray_program(), "start", "--head", "--port", str(port), "--include-dashboard=false"]
    argv += ["--disable-usage-stats", "--system-config", json.dumps(HEALTH)]
    argv += ["--node-ip-address", ip] if ip else []
    argv += worker_args(name, labels, ram_gib) if worker else ["--num-cpus", "0", "--num-gpus", "0"]
    return argv + (["--block"] if block else [])


def join_command(
    address: str, name: str, labels: dict[str, str], ram_gib: float | None, ip: str | None, block: bool
) -> list[str]:
    argv = [ray_program(), "start", "--address", address, "--disable-usage-stats"]
    argv += ["--node-ip-address", ip] if ip else []
    return argv + worker_args(name, labels, ram_gib) + (["--block"] if block else [])


def _run(argv: list[str]) -> None:
    if "--block" in argv:  # Ray in this process's place: signals reach it, and it stops with them
        os.execv(argv[0], argv)
    done = subprocess.run(argv, check=False)
    if done.returncode != 0:
        raise click.exceptions.Exit(done.returncode)


def worker_options(fn: F) -> F:
    """How a worker joins: the same options on `cluster start` and `worker join`."""
    options = (
        click.option("--name", help="this worker's name (default: the host name)"),
        click.option("--label", "-l", multiple=True, help="KEY=VALUE: a label for selectors (repeatable)"),
        click.option(
            "--ram", type=click.FloatRange(min=0.5), help="GiB of RAM engines may use here (default: all)"
        ),
        click.option("--ip", help="the address other machines reach this one at (default: Ray's choice)"),
        click.option("--block", is_flag=True, help="stay in the foreground; Ray stops with this command"),
    )
    for option in reversed(options):
        fn = option(fn)
    return fn


@cluster_app.command("start")
@click.option("--port", default=6379, show_default=True, type=int, help="the head's port (Ray's GCS)")
@click.option("--worker/--no-worker", default=True, help="run engines on the head too")
@worker_options
def start(
    port: int,
    worker: bool,
    name: str | None,
    label: tuple[str, ...],
    ram: float | None,
    ip: str | None,
    block: bool,
) -> None:
    """Start the head of a cluster (`ray start --head`, with modelyard's settings)."""
    address = f"{ip or '<this machine>'}:{port}"
    console.print(
        f"On each worker: [bold]modelyard worker join {address}[/]\n"
        f"then serve with [bold]MODELYARD_CLUSTER={address} modelyard serve[/]",
        highlight=False,
    )
    _run(
        head_command(
            port, worker, name or socket.gethostname(), parse_pairs(label, "KEY=VALUE"), ram, ip, block
        )
    )


@cluster_app.command("stop")
def stop() -> None:
    """Stop Ray on this machine (the head, or a worker): its engines stop with it."""
    _run([ray_program(), "stop"])


@worker_app.command("join")
@click.argument("address", help="the head's address, host:port")
@worker_options
def join(
    address: str, name: str | None, label: tuple[str, ...], ram: float | None, ip: str | None, block: bool
) -> None:
    """Join a cluster as a worker (`ray start --address`, with labels and GPU memory)."""
    _run(join_command(address, name or socket.gethostname(), parse_pairs(label, "KEY=VALUE"), ram, ip, block))
    if not block:
        console.print(f"joined {address} as {name or socket.gethostname()}", highlight=False)


@worker_app.command("leave")
def leave() -> None:
    """Leave the cluster: Ray stops here, and the engines here with it (they are placed again)."""
    _run([ray_program(), "stop"])


@click.group("workers", cls=Group, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def workers_app(ctx: click.Context, as_json: bool) -> None:
    """The workers engines run on: address, labels, GPUs (free/total VRAM), free RAM, instances."""
    if ctx.invoked_subcommand is None:
        _list(as_json)


def _list(as_json: bool) -> None:
    found = client().get("/api/workers")
    if as_json:
        print_json(found)
        return
    columns = [
        Column("NAME"),
        Column("ADDRESS", drop=2),
        Column("LABELS", fold=True),
        Column("GPUS (FREE/TOTAL)", fold=True),
        Column("RAM FREE"),
        Column("INSTANCES"),
    ]
    rows = [
        [
            w["name"] + ("" if w["alive"] else " (gone)") + (" (drained)" if w["drained"] else ""),
            w["address"],
            ",".join(f"{k}={v}" for k, v in w["labels"].items()) or "-",
            " ".join(
                f"{g['index']}:{human_size(g['vram_free'])}/{human_size(g['vram_total'])}" for g in w["gpus"]
            )
            or "-",
            f"{human_size(w['ram_free'])}/{human_size(w['ram_total'])}",
            ",".join(str(i) for i in w["instances"]) or "-",
        ]
        for w in found
    ]
    console.print(fitted(columns, rows))


@workers_app.command("label")
@click.argument("name", help="a worker")
@click.argument("pairs", nargs=-1, required=True, help="KEY=VALUE to set, KEY= to remove")
def label(name: str, pairs: tuple[str, ...]) -> None:
    """Set labels of a worker (over those it joined with): selectors match them."""
    labels: dict[str, Any] = parse_pairs(pairs, "KEY=VALUE")
    found = client().put(f"/api/workers/{name}", {"labels": labels})
    console.print(
        f"{name}: " + (",".join(f"{k}={v}" for k, v in found["labels"].items()) or "no labels"),
        highlight=False,
    )


@workers_app.command("note")
@click.argument("name")
@click.argument("text", help="'' clears it")
def note(name: str, text: str) -> None:
    """Keep a note about a worker."""
    client().put(f"/api/workers/{name}", {"note": text})
    console.print(f"{name}: noted", highlight=False)


@workers_app.command("drain")
@click.argument("name", help="a worker")
def drain(name: str) -> None:
    """Take a worker out for maintenance: nothing new goes there, and each of its instances is
    replaced elsewhere (the new one serves before the old one stops). `undrain` brings it back."""
    with console.status(f"draining {name}..."):
        done = client().request("POST", f"/api/workers/{name}/drain", wait=True)
    for m in done["moved"]:
        console.print(
            f"{m['model']}: instance {m['instance']} -> {m['to']} on {m['worker']}", highlight=False
        )
    for s in done["stayed"]:
        console.print(f"{s['model']}: instance {s['instance']} stays: {s['reason']}", highlight=False)
    moved, stayed = len(done["moved"]), len(done["stayed"])
    console.print(
        f"{name} drained: {moved} instance{'s' * (moved != 1)} moved"
        + (f", {stayed} stayed" if stayed else ""),
        highlight=False,
    )
    if stayed:
        raise SystemExit(1)


@workers_app.command("undrain")
@click.argument("name", help="a worker")
def undrain(name: str) -> None:
    """Bring a drained worker back: new instances may go there again."""
    client().post(f"/api/workers/{name}/undrain", None)
    console.print(f"{name}: takes new instances again", highlight=False)
