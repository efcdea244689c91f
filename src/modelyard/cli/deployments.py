"""Deployment commands: deploy, reload, and `modelyard deployments ...` (ls, show, edit, stop,
start, rm, rm-instance)."""

from __future__ import annotations

from typing import Any

import click

from modelyard.cli.client import ApiError, Client
from modelyard.cli.common import (
    Command,
    Group,
    client,
    parse_assignments,
    parse_pairs,
    scheduling,
    scheduling_options,
)
from modelyard.cli.downloads import SOURCE_HELP, follow
from modelyard.cli.render import Column, console, fitted, human_size, print_json
from modelyard.cli.runtime import loading
from modelyard.errors import EngineError, InvalidInput
from modelyard.hub.refs import is_local


def _held(dep: dict[str, Any]) -> str | None:
    """A deployment without instances: stopped, or held back with why and when it is tried again."""
    if dep["state"] in ("running", "starting"):
        return None
    retry = f", tried again in {dep['retry_in']:.0f} s" if dep.get("retry_in") is not None else ""
    reason = f" ({dep['reason']}{retry})" if dep.get("reason") else ""
    return f"{dep['state']}{reason}"


def _replicas(dep: dict[str, Any]) -> str:
    """Its replicas, and their range when they follow its requests: 2 (1-4)."""
    a = dep.get("autoscale")
    return f"{dep['replicas']} ({a['least']}-{a['most']})" if a else str(dep["replicas"])


def _autoscale(text: str | None, off: bool = False) -> dict[str, int] | bool | None:
    """--autoscale LEAST:MOST as the API takes it (``off``: 'off' turns it off)."""
    if text is None:
        return None
    if off and text == "off":
        return False
    least, sep, most = text.partition(":")
    if not sep or not least.isdigit() or not most.isdigit():
        raise click.BadParameter(f"{text!r}: write LEAST:MOST, such as 0:4" + (", or off" if off else ""))
    return {"least": int(least), "most": int(most)}


def _print(dep: dict[str, Any]) -> None:
    name = dep["model"] + (f":{dep['adapter']}" if dep["adapter"] else "")
    backend = dep["serving_backend"] or dep["backend"] or "auto"
    version = f" {dep['backend_version']}" if dep["backend_version"] else ""
    state = _held(dep) or f"{len(dep['instances'])}/{_replicas(dep)} instances"
    console.print(f"[bold]{name}[/] on {backend}{version}: {state}", highlight=False)
    for inst in dep["instances"]:
        memory = f", {human_size(inst['memory'])}" if inst["memory"] else ""
        node = f" on {inst['node']}" if inst["node"] else ""
        why = f": {inst['error']}" if inst["state"] in ("pending", "unreachable") and inst["error"] else ""
        console.print(
            f"  instance {inst['id']}: {inst['state']}{node}, pid {inst['pid'] or '-'}{memory}{why}",
            highlight=False,
        )


def _model_exists(api: Client, name: str) -> bool:
    try:
        api.get(f"/api/models/{name}")
    except ApiError as e:
        if e.status == 404:
            return False
        raise
    return True


@click.command("deploy", cls=Command)
@click.argument("ref", help="a library model, a local path (/, ./, ../, ~), or anything `pull` takes")
@click.option("--name", help="the name an imported or downloaded model gets")
@click.option(
    "--replicas",
    "-r",
    default=1,
    show_default=True,
    type=click.IntRange(min=1, max=64),
    help="engine processes",
)
@click.option("--autoscale", metavar="LEAST:MOST", help="replicas that follow its requests, such as 0:4")
@click.option("--backend", default="", help="a backend that takes the model (default: the best)")
@click.option("--backend-version", "version", help="a build of the backend")
@click.option("--arg", multiple=True, help="an engine argument: --arg=--flag (repeatable)")
@click.option("--env", "-e", multiple=True, help="NAME=VALUE for its engines (repeatable)")
@click.option("--set", "-s", "set_", multiple=True, help="a setting KEY=VALUE (repeatable)")
@click.option("--no-restart", is_flag=True, help="leave an engine that exits stopped")
@click.option("--lora", help="one of the model's LoRA adapters")
@click.option("--source", help=SOURCE_HELP)
@click.option("--quant", "-q", help="a GGUF quantization, such as Q4_K_M")
@click.option("--file", "-f", multiple=True, help="a file or glob pattern of the repo")
@click.option("--force", is_flag=True, help="start even if the estimate says it will not fit")
@click.option("--dry-run", is_flag=True, help="only say whether it would run now, and where (starts nothing)")
@scheduling_options
def deploy(
    ref: str,
    name: str | None,
    replicas: int,
    autoscale: str | None,
    backend: str,
    version: str | None,
    arg: tuple[str, ...],
    env: tuple[str, ...],
    set_: tuple[str, ...],
    no_restart: bool,
    lora: str | None,
    source: str | None,
    quant: str | None,
    file: tuple[str, ...],
    force: bool,
    dry_run: bool,
    **where: Any,
) -> None:
    """Deploy in one step: download what is missing, import it, save the settings, start it.
    With --dry-run, only check a model of the library: which workers could take it, and why
    the others cannot."""
    api = client()
    body: dict[str, Any] = {
        "name": name, "replicas": replicas, "backend": backend, "backend_version": version,
        "args": arg, "env": parse_pairs(env), "settings": parse_assignments(set_), "restart": not no_restart,
        "adapter": lora, "force": force, "autoscale": _autoscale(autoscale),
        **scheduling(**where),
    }  # fmt: skip
    if is_local(ref):
        body["path"] = ref
    elif _model_exists(api, ref):
        body["model"] = ref
    elif dry_run:
        raise InvalidInput(f"{ref!r} is not in the library", hint="a dry run checks a model of the library")
    else:
        body.update(ref=ref, source=source, quantization=quant, files=file)
    if dry_run:
        _dry_run(
            api.post("/api/deployments/check", {k: v for k, v in body.items() if k not in ("name", "force")})
        )
        return
    done = loading(f"deploying {ref}", lambda: api.post("/api/deployments", body))
    if done["download"] is not None:
        job = follow(api, done["download"])
        if not job["models"]:
            raise EngineError("the download brought no model to deploy", hint=job["note"])
        try:
            done["deployment"] = api.get(f"/api/deployments/{job['models'][0]}")
        except ApiError as e:
            if e.status != 404:
                raise
            raise EngineError(
                f"{job['models'][0]} was imported, but not deployed", hint=job["note"]
            ) from None
    _print(done["deployment"])


def _dry_run(found: dict[str, Any]) -> None:
    """What a check answered: whether it would run, and each worker's verdict."""
    n, replicas = found["placed"], found["replicas"]
    head = f"{found['model']} on {found['backend']}: "
    if found["fits"]:
        console.print(head + f"{replicas} instance{'s' * (replicas != 1)} would be placed", highlight=False)
    else:
        console.print(head + f"{n} of {replicas} would be placed: {found['reason']}", highlight=False)
    rows = [
        [v["worker"], f"yes ({v['way']})" if v["fits"] else "no", v["reason"] or ""] for v in found["workers"]
    ]
    console.print(fitted([Column("WORKER"), Column("FITS"), Column("WHY NOT", fold=True)], rows))
    if not found["fits"]:
        raise SystemExit(1)


@click.command("reload", cls=Command)
@click.argument("name", help="a running deployment")
def reload(name: str) -> None:
    """Start its engines again with the model's settings, one instance at a time (no request fails)."""
    with console.status(f"reloading {name}..."):
        dep = client().post(f"/api/deployments/{name}/reload", {})
    _print(dep)


@click.group("deployments", cls=Group, invoke_without_command=True)
@click.pass_context
def app(ctx: click.Context) -> None:
    """Deployments: models kept running, with their engines' setup. `modelyard deployments`
    lists them."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(ls)


@app.command("ls")
@click.option("--json", "as_json", is_flag=True)
def ls(as_json: bool) -> None:
    """List the deployments."""
    found = client().get("/api/deployments")
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no deployment: `modelyard deploy REF`")
        return
    columns = [
        Column("MODEL", fold=True),
        Column("BACKEND"),
        Column("VERSION", drop=2),
        Column("REPLICAS"),
        Column("STATE"),
        Column("RESTART", drop=1),
    ]
    rows = []
    for d in found:
        serving = sum(1 for i in d["instances"] if i["state"] == "running")
        state = d["state"] if d["state"] not in ("running", "starting") else f"{serving} serving"
        rows.append(
            [
                d["model"] + (f":{d['adapter']}" if d["adapter"] else ""),
                d["serving_backend"] or d["backend"] or "auto",
                d["backend_version"] or "-",
                _replicas(d),
                state,
                "on" if d["restart"] else "off",
            ]
        )
    console.print(fitted(columns, rows))


@app.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def show(name: str, as_json: bool) -> None:
    """A deployment's setup and its instances."""
    dep = client().get(f"/api/deployments/{name}")
    if as_json:
        print_json(dep)
        return
    _print(dep)
    where = [dep["placement"]] + [f"{k}={v}" for k, v in dep["selector"].items()]
    where += [f"GPUs {','.join(dep['gpus'])}"] if dep["gpus"] else []
    where += [] if dep["cpu_offload"] else ["no CPU offload"]
    where += ["distributed"] if dep["distributed"] else []
    console.print(f"  placement: {', '.join(where)}", highlight=False)
    for key in ("args", "env", "options"):
        if dep[key]:
            console.print(f"  {key}: {dep[key]}", highlight=False)
    console.print(f"  restart: {'on' if dep['restart'] else 'off'}", highlight=False)


@app.command("edit")
@click.argument("name")
@click.option("--replicas", "-r", type=click.IntRange(min=0, max=64))
@click.option("--autoscale", metavar="LEAST:MOST", help="replicas that follow its requests (0:4), or off")
@click.option("--backend", help="a backend; '' lets the registry choose")
@click.option("--backend-version", "version", help="a build; '' for the default one")
@click.option("--arg", multiple=True, help="the engine arguments (replace them)")
@click.option("--clear-args", is_flag=True, help="no engine arguments")
@click.option("--env", "-e", multiple=True, help="the variables (replace them)")
@click.option("--set", "-s", "set_", multiple=True, help="a setting KEY=VALUE (repeatable)")
@click.option("--restart/--no-restart", default=None)
@click.option("--force", is_flag=True, help="roll even if the estimate says it will not fit")
@scheduling_options
def edit(
    name: str,
    replicas: int | None,
    autoscale: str | None,
    backend: str | None,
    version: str | None,
    arg: tuple[str, ...],
    clear_args: bool,
    env: tuple[str, ...],
    set_: tuple[str, ...],
    restart: bool | None,
    force: bool,
    **where: Any,
) -> None:
    """Change a deployment; a running one rolls: each new instance serves before an old one stops."""
    body: dict[str, Any] = {
        "replicas": replicas, "autoscale": _autoscale(autoscale, off=True), "backend": backend,
        "backend_version": version, "args": [] if clear_args else arg or None, "env": parse_pairs(env) if env is not None else None,
        "settings": parse_assignments(set_) or None, "restart": restart, "force": force,
        **scheduling(**where),
    }  # fmt: skip
    with console.status(f"updating {name}..."):
        dep = client().patch(f"/api/deployments/{name}", {k: v for k, v in body.items() if v is not None})
    _print(dep)


@app.command("stop")
@click.argument("name")
@click.option("--force", is_flag=True, help="stop at once, even with requests in flight")
def stop(name: str, force: bool) -> None:
    """Stop its instances; the deployment is kept for a start."""
    with console.status(f"stopping {name}..."):
        client().post(f"/api/deployments/{name}/stop", {"force": force})
    console.print(f"stopped {name}", highlight=False)


@app.command("start")
@click.argument("name")
def start(name: str) -> None:
    """Start a stopped deployment as it was."""
    with console.status(f"starting {name}..."):
        dep = client().post(f"/api/deployments/{name}/start", {})
    _print(dep)


@app.command("rm")
@click.argument("name")
@click.option("--force", is_flag=True, help="stop at once, even with requests in flight")
def rm(name: str, force: bool) -> None:
    """Stop a deployment and forget it (the model stays in the library)."""
    client().request("DELETE", f"/api/deployments/{name}", json={"force": force})
    console.print(f"deleted the deployment of {name}", highlight=False)


@app.command("rm-instance")
@click.argument("instance", type=click.IntRange(min=1), help="an instance id (`modelyard ps`)")
def rm_instance(instance: int) -> None:
    """Delete an instance: a new one takes its place, serving before the old one stops."""
    with console.status(f"replacing instance {instance}..."):
        done = client().delete(f"/api/instances/{instance}")
    console.print(f"instance {done['removed']} replaced by {done['instance']}", highlight=False)
