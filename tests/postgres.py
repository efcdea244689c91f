"""A throwaway PostgreSQL server for the tests (and bench/catalog.py): Debian's postgresql
package (scripts/system-packages --test installs it), a cluster in a temporary folder listening
on 127.0.0.1 at a free port, stopped and removed afterwards. PostgreSQL refuses to run as root: as root, the
cluster belongs to the package's `postgres` user."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from modelyard.catalog.store import Store

USER = "modelyard"
_names = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def programs() -> Path:
    """The folder of the newest installed PostgreSQL's server programs."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL's server is not installed: sudo apt-get install postgresql")
    return found[-1].parent


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running server; yields the URL of its `postgres` database, for a superuser."""
    bin_ = programs()
    folder = Path(tempfile.mkdtemp(prefix="modelyard-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    data, port = folder / "data", free_port()
    quiet = {"stdout": subprocess.DEVNULL, "check": True}
    subprocess.run(
        _as_owner(
            [str(bin_ / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]
        ),
        **quiet,  # type: ignore[arg-type]
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c max_connections=200"
    start = [str(bin_ / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]
    subprocess.run(_as_owner(start), **quiet)  # type: ignore[arg-type]
    try:
        yield f"postgresql://{USER}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_owner([str(bin_ / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), **quiet)  # type: ignore[arg-type]
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def database(server: str) -> Iterator[str]:
    """A new empty database on ``server``; yields its URL, and drops it afterwards."""
    name = f"test_{os.getpid()}_{next(_names)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- fixtures: the catalog's tests and the library's run on both (their conftest imports these)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty catalog's URL on each kind of database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    with database(request.getfixturevalue("postgres")) as url:
        yield url


@pytest.fixture
def store(catalog_url: str) -> Iterator[Store]:
    s = Store(catalog_url)
    yield s
    s.close()
