"""`modelyard catalog copy`: a SQLite catalog moved into a new one (PostgreSQL, and SQLite)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelyard.access.keys import Keys
from modelyard.catalog.records import Deployment, Route, Target, Usage, WorkerNote
from modelyard.catalog.store import Store
from modelyard.cli.main import app
from modelyard.errors import Conflict
from modelyard.library import ImportRequest, Library


def plain(value: Any) -> Any:
    """Records as plain data, their times in UTC (SQLite gives them back without a zone)."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return value


def test_a_catalog_copied_keeps_every_record_and_goes_on_from_there(
    tmp_path: Path, zoo: Path, catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store(old_url)
    library = Library(old)
    chat = library.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf"), name="chat"))
    library.import_model(ImportRequest(path=str(zoo / "hf/tiny-minilm"), name="embed"))
    library.put_settings("chat", {"n_ctx": 256, "threads": 2})
    key, secret = Keys(old).create("alice")
    hour = datetime(2026, 12, 7, 9, tzinfo=UTC)
    old.add_usage([Usage(hour, "chat", "alice", requests=3, tokens_in=30, tokens_out=12)])
    old.put_deployment(Deployment(model="chat", replicas=2))
    old.put_route(Route("both", [Target("chat", 3), Target("embed", 0)], "a route"))
    old.put_worker_note(WorkerNote("w1", {"zone": "a"}, "the big one", drained=True))
    before = (library.models(), old.keys(), old.usage(), old.deployments(), old.routes(), old.worker_notes())
    old.close()

    monkeypatch.setenv("COLUMNS", "200")
    out = CliRunner().invoke(app, ["catalog", "copy", "--from", old_url, "--to", catalog_url])
    assert out.exit_code == 0, out.output
    assert "copied " in out.output
    new = Store(catalog_url)
    moved = Library(new)
    after = (moved.models(), new.keys(), new.usage(), new.deployments(), new.routes(), new.worker_notes())
    assert plain(after) == plain(before)
    assert Keys(new).authenticate(secret).name == key.name  # its secret still opens it
    # new records take ids after the copied ones
    third = moved.import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-q8.gguf"), name="third"))
    assert third.id is not None
    assert chat.id is not None
    assert third.id > chat.id
    new.close()

    again = CliRunner().invoke(app, ["catalog", "copy", "--from", old_url, "--to", catalog_url])
    assert again.exit_code == 1
    assert "the target catalog is not empty: " in again.output
    assert "copy into a new, empty database" in again.output


def test_a_copy_into_a_catalog_that_is_not_empty_changes_nothing(tmp_path: Path, catalog_url: str) -> None:
    from modelyard.catalog.copy import copy_catalog

    source = f"sqlite:///{tmp_path / 'old.db'}"
    Store(source).put_worker_note(WorkerNote("w1"))
    Store(catalog_url).put_worker_note(WorkerNote("w2"))
    with pytest.raises(Conflict, match="not empty: 1 row in workers"):
        copy_catalog(source, catalog_url)
    assert list(Store(catalog_url).worker_notes()) == ["w2"]
