"""Copy a catalog to another database (SQLite to PostgreSQL, say): the target is brought to the
newest schema and must hold nothing yet; every table's rows go over in one transaction, so a copy
that fails leaves the target as empty as it was."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, text

from modelyard.catalog.store import Store
from modelyard.catalog.tables import Base
from modelyard.errors import Conflict, InvalidInput

BATCH = 1000
Progress = Callable[[str, int, int], None]  # table, rows copied so far, rows in all


def copy_catalog(source_url: str, target_url: str, progress: Progress | None = None) -> dict[str, int]:
    """Copy every row of the catalog at ``source_url`` into the empty one at ``target_url``;
    the rows copied per table."""
    if source_url == target_url:
        raise InvalidInput("the source and the target are the same catalog", hint="give another --to")
    source, target = Store(source_url), Store(target_url)
    try:
        tables = Base.metadata.sorted_tables  # those referred to first
        with source.engine.connect() as src, target.engine.begin() as dst:
            held = {t.name: dst.scalar(select(func.count()).select_from(t)) or 0 for t in tables}
            if any(held.values()):
                full, count = [n for n, c in held.items() if c], sum(held.values())
                raise Conflict(
                    f"the target catalog is not empty: {count} row{'s' * (count != 1)} in {', '.join(full)}",
                    hint="copy into a new, empty database",
                )
            sizes = {t.name: src.scalar(select(func.count()).select_from(t)) or 0 for t in tables}
            total, done = sum(sizes.values()), 0
            for table in tables:
                rows = src.execute(select(table)).mappings()
                while chunk := rows.fetchmany(BATCH):
                    dst.execute(insert(table), [_utc(dict(r)) for r in chunk])
                    done += len(chunk)
                    if progress is not None:
                        progress(table.name, done, total)
            if target.engine.dialect.name == "postgresql":
                for table in tables:  # new rows take ids after the copied ones
                    if "id" in table.c and sizes[table.name]:
                        dst.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                f"(SELECT max(id) FROM {table.name}))"
                            )
                        )
        return sizes
    finally:
        source.close()
        target.close()


def _utc(row: dict[str, Any]) -> dict[str, Any]:
    """SQLite gives its times back without a zone: they were written in UTC."""
    return {
        k: v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v
        for k, v in row.items()
    }
