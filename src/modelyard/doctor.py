"""What this machine has and lacks for modelyard (`modelyard doctor`): each backend's engine and
its builds or environments, the GPUs and their drivers, the catalog, the port, the disk, and
whether the server may listen where it is set to. Each finding says what it saw, and a problem
says the command that fixes it. Nothing here changes anything: the catalog is read, not
migrated; the port is bound for a moment, then let go.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelyard import __version__
from modelyard.access.network import is_loopback
from modelyard.backends import environments
from modelyard.backends.install import installed_variant
from modelyard.backends.registry import Backends
from modelyard.config import Settings
from modelyard.errors import EngineUnavailable
from modelyard.monitor import gpus

Status = Literal["ok", "missing", "outdated", "problem"]
LOW_DISK = 10 << 30  # bytes free under the home below which models and builds will not fit
GIB = 1 << 30


@dataclass(frozen=True)
class Finding:
    """One thing looked at: ``ok``; ``missing``, something this machine lacks that only some
    models need (a backend not installed); ``outdated``, installed from other inputs than this
    modelyard's; ``problem``, something that stops modelyard doing what it is set to do.
    ``fix``: the command that fixes it."""

    area: str
    name: str
    status: Status
    detail: str
    fix: str | None = None


def examine(settings: Settings) -> list[Finding]:
    """Every finding, in the order a person reads them."""
    found = [_modelyard(settings)]
    for look in (_backends, _gpus, _catalog, _port, _disk):
        found.extend(look(settings))
    return found


def as_json(findings: list[Finding]) -> str:
    return json.dumps(
        {
            "version": __version__,
            "ok": not any(f.status == "problem" for f in findings),
            "findings": [f.__dict__ for f in findings],
        },
        indent=2,
    )


def _command(hint: str | None) -> str | None:
    """The command a hint names (between backticks), else None."""
    named = re.search(r"`([^`]+)`", hint or "")
    return named.group(1) if named else None


def _modelyard(settings: Settings) -> Finding:
    return Finding(
        "modelyard", "version", "ok",
        f"modelyard {__version__}, Python {platform.python_version()}, home {settings.home}",
    )  # fmt: skip


def _backends(settings: Settings) -> Iterator[Finding]:
    for backend in Backends.from_settings(settings):
        try:
            what = backend.preflight()
        except EngineUnavailable as e:
            command = _command(e.hint)
            detail = e.message if command or not e.hint else f"{e.message}: {e.hint}"
            yield Finding("backend", backend.name, "missing", detail, command)
            if backend.name == "llama.cpp":
                yield from _build_tools()
            continue
        if backend.name == "llama.cpp":
            yield from _llama_builds(what, backend.versions())
            continue
        yield Finding("backend", backend.name, "ok", what)
        for variant, folder in environments.installed(settings.envs_dir, backend.name):
            key = environments.env_key(backend.name, variant, torch_index=settings.torch_index or None)
            if environments.installed_key(folder) == key:
                yield Finding("environment", f"{backend.name} ({variant})", "ok", str(folder))
            else:
                yield Finding(
                    "environment", f"{backend.name} ({variant})", "outdated",
                    f"{folder} was installed from other packages, torch index or Python than this "
                    "modelyard's",
                    f"modelyard backends install {backend.name} --variant {variant}",
                )  # fmt: skip


def _llama_builds(program: str, versions: list[str]) -> Iterator[Finding]:
    variant = installed_variant(program)
    built = f" ({variant} build)" if variant else ""
    versions_shown = f"; versions beside it: {', '.join(versions)}" if versions else ""
    yield Finding("backend", "llama.cpp", "ok", f"{program}{built}{versions_shown}")
    if environments.has_nvidia() and variant == "cpu":
        yield Finding(
            "backend", "llama.cpp", "missing",
            "this machine has an NVIDIA GPU, and llama-server is built for the CPU only",
            "modelyard backends install llama.cpp --variant cuda",
        )  # fmt: skip


def _build_tools() -> Iterator[Finding]:
    """What building llama-server takes (`modelyard backends install llama.cpp`)."""
    lacking = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    if lacking:
        yield Finding(
            "backend", "build tools", "missing",
            f"building llama-server needs {' and '.join(lacking)}",
            "sudo apt-get install cmake build-essential",
        )  # fmt: skip


def _gpus(settings: Settings) -> Iterator[Finding]:
    nvidia = gpus.nvidia()
    for gpu in nvidia:
        free = (gpu.memory_total or 0) - (gpu.memory_used or 0)
        yield Finding(
            "gpu", f"GPU {gpu.index}", "ok",
            f"{gpu.name}: {(gpu.memory_total or 0) / GIB:.1f} GiB, {free / GIB:.1f} GiB free",
        )  # fmt: skip
    if nvidia:
        if shutil.which("nvcc") is None:
            yield Finding(
                "gpu", "CUDA toolkit", "missing",
                "nvcc is not on PATH: the CUDA build of llama-server cannot be made",
                "sudo apt-get install nvidia-cuda-toolkit",
            )  # fmt: skip
    elif environments.has_nvidia():
        yield Finding(
            "gpu", "NVIDIA driver", "problem",
            "an NVIDIA driver is installed, but NVML answers nothing: GPUs are not used",
            "nvidia-smi (it says what is wrong with the driver)",
        )  # fmt: skip
    others = gpus.others()
    drivers = gpus.vulkan_drivers()
    for gpu in others:
        memory = f": {gpu.memory_total / GIB:.1f} GiB" if gpu.memory_total else ""
        yield Finding("gpu", f"{gpu.vendor} GPU", "ok", f"{gpu.name}{memory}")
    if others and not drivers:
        yield Finding(
            "gpu", "Vulkan", "problem", "a GPU without a Vulkan driver: llama.cpp cannot use it",
            "sudo apt-get install mesa-vulkan-drivers",
        )  # fmt: skip
    elif drivers:
        yield Finding("gpu", "Vulkan", "ok", f"drivers: {', '.join(drivers)}")
    if not nvidia and not others:
        yield Finding("gpu", "GPUs", "ok", "none found: the engines run on the CPU")


def _catalog(settings: Settings) -> Iterator[Finding]:
    """The catalog's schema against the newest this modelyard knows, read only: a SQLite file
    that is not there yet is made on first use."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from modelyard.catalog.store import MIGRATIONS, make_engine
    from modelyard.catalog.tables import ApiKeyRow, ModelRow

    url = settings.catalog_url
    shown = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)  # never a password
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        yield Finding("catalog", "catalog", "ok", f"{shown}: made on first use")
        yield from _keys(settings, keys=0)
        return
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            models = conn.scalar(select(func.count()).select_from(ModelRow)) if current else 0
            keys = conn.scalar(select(func.count()).select_from(ApiKeyRow)) if current else 0
    except SQLAlchemyError as e:
        reason = (str(getattr(e, "orig", None) or e).strip().splitlines() or ["no answer"])[0]
        yield Finding(
            "catalog", "catalog", "problem", f"{shown} cannot be read: {reason}",
            "check MODELYARD_DATABASE_URL (the server, its user and password, the database)",
        )  # fmt: skip
        return
    finally:
        engine.dispose()
    if current == head:
        yield Finding("catalog", "catalog", "ok", f"{shown}: {models} models, schema {current}")
    else:
        yield Finding(
            "catalog", "catalog", "ok",
            f"{shown}: {models} models, schema {current or 'none'}: brought to {head} on the next start",
        )  # fmt: skip
    yield from _keys(settings, keys=keys or 0)


def _keys(settings: Settings, *, keys: int) -> Iterator[Finding]:
    if is_loopback(settings.host):
        yield Finding("keys", "API keys", "ok", f"{keys} keys; the server listens on {settings.host} only")
    elif keys:
        yield Finding("keys", "API keys", "ok", f"{keys} keys guard the server on {settings.host}")
    elif settings.insecure:
        yield Finding(
            "keys", "API keys", "problem",
            f"the server listens on {settings.host} without a key (insecure is set)",
            "modelyard keys create admin --scope admin",
        )  # fmt: skip
    else:
        yield Finding(
            "keys", "API keys", "problem",
            f"the server will not listen on {settings.host} without an API key",
            "modelyard keys create admin --scope admin",
        )  # fmt: skip


def _port(settings: Settings, health: Callable[[str], str | None] | None = None) -> Iterator[Finding]:
    """Whether the server's port (and the Ollama one) is free, or held by a modelyard."""
    ports = [("port", settings.port)]
    if settings.ollama_port is not None:
        ports.append(("Ollama port", settings.ollama_port))
    for name, port in ports:
        host = settings.host
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, port))
        except OSError as e:
            url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
            running = (health or _modelyard_at)(url)
            if running is not None:
                yield Finding("port", name, "ok", f"{host}:{port}: modelyard {running} runs there")
            else:
                yield Finding(
                    "port", name, "problem", f"{host}:{port} is taken by another program ({e.strerror})",
                    f"modelyard serve --port {port + 1} (or set MODELYARD_PORT)"
                    if name == "port" else "set MODELYARD_OLLAMA_PORT to a free port",
                )  # fmt: skip
        else:
            yield Finding("port", name, "ok", f"{host}:{port} is free")


def _modelyard_at(url: str) -> str | None:
    """The version of the modelyard that answers at ``url`` (its health is public), else None."""
    import httpx

    with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError):
        body = httpx.get(f"{url}/api/health", timeout=2).json()
        if body.get("status") == "ok" and "version" in body:
            return str(body["version"])
    return None


def _disk(settings: Settings) -> Iterator[Finding]:
    where = settings.home
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if free < LOW_DISK:
        yield Finding(
            "disk", "disk", "problem",
            f"{free / GIB:.1f} GiB free under {settings.home}: models and engine builds need more",
            "free some space, or set MODELYARD_HOME to a larger disk",
        )  # fmt: skip
    else:
        yield Finding("disk", "disk", "ok", f"{free / GIB:.0f} GiB free under {settings.home}")
