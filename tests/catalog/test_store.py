from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from modelyard.catalog.store import Store
from modelyard.catalog.tables import Base


def test_migrations_match_the_tables(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.close()


def test_reopening_keeps_the_records(catalog_url: str, zoo: Path) -> None:
    from modelyard.library import ImportRequest, Library

    url = catalog_url
    first = Store(url)
    Library(first).import_model(ImportRequest(path=str(zoo / "chat/tiny-llama-f32.gguf")))
    first.close()
    second = Store(url)  # migrations run again: nothing to do
    assert [m.name for m in Library(second).models()] == ["tiny-llama-f32"]
    second.close()
