"""The store: the only place that opens sessions and turns rows into records."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from modelyard.catalog.records import (
    Adapter,
    ApiKey,
    Autoscale,
    Component,
    Deployment,
    Download,
    Instance,
    Model,
    ModelFile,
    ModelSettings,
    Quota,
    Route,
    Scheduling,
    StoredBatch,
    StoredFile,
    StoredResponse,
    Target,
    Usage,
    WorkerNote,
)
from modelyard.catalog.tables import (
    AdapterRow,
    ApiKeyRow,
    BatchRow,
    ComponentRow,
    DeploymentRow,
    DownloadRow,
    FileRow,
    InstanceRow,
    ModelFileRow,
    ModelRow,
    QuotaRow,
    ResponseRow,
    RouteRow,
    SettingsRow,
    UsageRow,
    WorkerRow,
    utcnow,
)
from modelyard.errors import (
    AdapterExists,
    AdapterNotFound,
    ComponentNotFound,
    DownloadNotFound,
    KeyExists,
    KeyNotFound,
    ModelExists,
    ModelNotFound,
    RouteNotFound,
)

MIGRATIONS = Path(__file__).parent / "migrations"
# A model row with everything its record carries, loaded in one round of queries.
_WHOLE = (
    selectinload(ModelRow.files),
    selectinload(ModelRow.components),
    selectinload(ModelRow.adapters),
    selectinload(ModelRow.settings),
)
_FIELDS = (
    "name", "description", "category", "format", "path", "quantization", "architecture", "parameters",
    "context_length", "template", "capabilities", "unsafe", "facts", "source", "source_repo",
    "source_revision", "aliases", "autoload",
)  # fmt: skip


def database_url(url: str) -> str:
    """``url`` as SQLAlchemy takes it: postgresql:// (and postgres://) through psycopg 3."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def make_engine(url: str) -> Engine:
    """An engine; for SQLite: WAL journal, foreign keys on, and a busy timeout; PostgreSQL
    through psycopg 3."""
    url = database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _model(row: ModelRow) -> Model:
    return Model(
        **{f: getattr(row, f) for f in _FIELDS},
        files=[ModelFile(f.path, f.size, f.sha256) for f in row.files],
        components=[Component(c.role, c.path, c.size, dict(c.facts or {})) for c in row.components],
        adapters=[
            Adapter(a.name, a.format, a.path, a.size, a.description, dict(a.facts or {}))
            for a in row.adapters
        ],
        settings=ModelSettings(row.settings.backend, dict(row.settings.options)) if row.settings else None,
        id=row.id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class Store:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._settings_lock = threading.Lock()
        # Bumped by every flush that writes: readers may cache records while it stays the same.
        self.generation = 0
        event.listen(self._sessions, "after_flush", self._bump)

    def _bump(self, session: Session, *_args: Any) -> None:
        # Download progress, instance states, key use and usage are written often and change nothing a
        # cached model record holds.
        touched = (*session.new, *session.dirty, *session.deleted)
        if touched and all(isinstance(o, DownloadRow | InstanceRow | ApiKeyRow | UsageRow) for o in touched):
            return
        self.generation += 1

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions.begin() as s:
            yield s

    def _row(self, s: Session, name: str, *, lock: bool = False) -> ModelRow:
        """A model's row; ``lock``: held until the session ends, so that a change read from it
        is written back before another server reads it (a row lock; SQLite, which has none,
        takes its write lock before the read)."""
        if lock and self.engine.dialect.name == "sqlite":
            s.execute(text("BEGIN IMMEDIATE"))
        query = select(ModelRow).where(ModelRow.name == name).options(*_WHOLE)
        row = s.scalar(query.with_for_update() if lock else query)
        if row is None:
            raise ModelNotFound(name)
        return row

    # -- models --------------------------------------------------------------------------

    def add_model(self, model: Model) -> Model:
        try:
            with self.session() as s:
                _not_a_route(s, model.name)
                row = ModelRow(**{f: getattr(model, f) for f in _FIELDS})
                row.files = [ModelFileRow(path=f.path, size=f.size, sha256=f.sha256) for f in model.files]
                row.components = [
                    ComponentRow(role=c.role, path=c.path, size=c.size, facts=c.facts)
                    for c in model.components
                ]
                if model.settings:
                    row.settings = SettingsRow(backend=model.settings.backend, options=model.settings.options)
                s.add(row)
                s.flush()
                return _model(row)
        except IntegrityError:
            raise ModelExists(
                f"the library already has a model named {model.name!r} or with these files",
                hint="pick another name with --name, or `modelyard show` the existing one",
            ) from None

    def get_model(self, name: str) -> Model:
        with self.session() as s:
            return _model(self._row(s, name))

    def find_by_path(self, path: str) -> Model | None:
        with self.session() as s:
            name = s.scalar(select(ModelRow.name).where(ModelRow.path == path))
        return None if name is None else self.get_model(name)

    def find_by_alias(self, alias: str) -> Model | None:
        with self.session() as s:
            for name, aliases in s.execute(select(ModelRow.name, ModelRow.aliases)):
                if alias in (aliases or []):
                    return self.get_model(name)
        return None

    def has_name(self, name: str) -> bool:
        with self.session() as s:
            return s.scalar(select(ModelRow.id).where(ModelRow.name == name)) is not None

    def name_taken(self, name: str) -> bool:
        """Whether ``name`` names a model, an alias or a route (what a new name may not be)."""
        return self.has_name(name) or self.find_by_alias(name) is not None or self.has_route(name)

    def list_models(self, category: str | None = None) -> list[Model]:
        with self.session() as s:
            q = select(ModelRow).order_by(ModelRow.category, ModelRow.name).options(*_WHOLE)
            if category:
                q = q.where(ModelRow.category == category)
            return [_model(r) for r in s.scalars(q)]

    def update_model(self, current: str, /, **changes: Any) -> Model:
        try:
            with self.session() as s:
                row = self._row(s, current)
                if changes.get("name", current) != current:
                    _not_a_route(s, changes["name"])
                    _renamed_in_routes(s, current, changes["name"])
                for key, value in changes.items():
                    if key not in _FIELDS:
                        raise AttributeError(key)
                    setattr(row, key, value)
                s.flush()
                return _model(row)
        except IntegrityError:
            raise ModelExists(f"the library already has a model named {changes.get('name')!r}") from None

    def delete_model(self, name: str) -> None:
        with self.session() as s:
            s.delete(self._row(s, name))

    def known_paths(self) -> set[str]:
        """Every path the library refers to: models, their files, components and adapters."""
        with self.session() as s:
            paths = set(s.scalars(select(ModelRow.path)))
            paths.update(s.scalars(select(ModelFileRow.path)))
            paths.update(s.scalars(select(ComponentRow.path)))
            paths.update(s.scalars(select(AdapterRow.path)))
        return paths

    # -- components, adapters, settings ------------------------------------------------------

    def set_component(self, name: str, component: Component) -> Model:
        with self.session() as s:
            row = self._row(s, name)
            existing = next((c for c in row.components if c.role == component.role), None)
            if existing is None:
                row.components.append(
                    ComponentRow(
                        role=component.role,
                        path=component.path,
                        size=component.size,
                        facts=component.facts,
                    )
                )
            else:
                existing.path, existing.size, existing.facts = (
                    component.path,
                    component.size,
                    component.facts,
                )
            s.flush()
            return _model(row)

    def remove_component(self, name: str, role: str) -> Model:
        with self.session() as s:
            row = self._row(s, name)
            existing = next((c for c in row.components if c.role == role), None)
            if existing is None:
                raise ComponentNotFound(name, role)
            row.components.remove(existing)
            s.flush()
            return _model(row)

    def add_adapter(self, name: str, adapter: Adapter) -> Model:
        with self.session() as s:
            row = self._row(s, name)
            if any(a.name == adapter.name for a in row.adapters):
                raise AdapterExists(
                    f"model {name!r} already has an adapter named {adapter.name!r}",
                    hint="pick another name",
                )
            row.adapters.append(
                AdapterRow(
                    name=adapter.name,
                    description=adapter.description,
                    format=adapter.format,
                    path=adapter.path,
                    size=adapter.size,
                    facts=adapter.facts,
                )
            )
            s.flush()
            return _model(row)

    def remove_adapter(self, name: str, adapter: str) -> Model:
        with self.session() as s:
            row = self._row(s, name)
            existing = next((a for a in row.adapters if a.name == adapter), None)
            if existing is None:
                raise AdapterNotFound(name, adapter)
            row.adapters.remove(existing)
            s.flush()
            return _model(row)

    def change_settings(self, name: str, change: Callable[[Model], ModelSettings]) -> Model:
        """Read a model's settings, ``change`` them and write them back, atomically: two changes
        at once both land (a lock in this process, a row lock on databases that have them)."""
        with self._settings_lock, self.session() as s:
            row = self._row(s, name, lock=True)
            settings = change(_model(row))
            if row.settings is None:
                row.settings = SettingsRow(backend=settings.backend, options=settings.options)
            else:
                row.settings.backend, row.settings.options = settings.backend, settings.options
            s.flush()
            return _model(row)

    # -- deployments and instances -------------------------------------------------------------

    def put_deployment(self, d: Deployment) -> Deployment:
        with self.session() as s:
            model = self._row(s, d.model)
            row = s.scalar(select(DeploymentRow).where(DeploymentRow.model_id == model.id))
            if row is None:
                row = DeploymentRow(model_id=model.id)
                s.add(row)
            row.adapter, row.backend, row.replicas = d.adapter, d.backend, d.replicas
            row.options, row.jit, row.env = d.options, d.jit, d.env
            row.backend_version, row.args, row.restart = d.backend_version, d.args, d.restart
            row.stopped, row.scheduling = d.stopped, asdict(d.scheduling)
            row.autoscale = asdict(d.autoscale) if d.autoscale is not None else None
            s.flush()
            return _deployment(row, d.model)

    def deployments(self) -> list[Deployment]:
        with self.session() as s:
            rows = s.execute(
                select(DeploymentRow, ModelRow.name).join(ModelRow, DeploymentRow.model_id == ModelRow.id)
            )
            return [_deployment(r, name) for r, name in rows]

    def deployment(self, model: str) -> Deployment | None:
        with self.session() as s:
            row = self._deployment_row(s, model)
            return _deployment(row, model) if row is not None else None

    @staticmethod
    def _deployment_row(s: Session, model: str) -> DeploymentRow | None:
        return s.scalar(
            select(DeploymentRow)
            .join(ModelRow, DeploymentRow.model_id == ModelRow.id)
            .where(ModelRow.name == model)
        )

    def delete_deployment(self, model: str) -> None:
        with self.session() as s:
            row = self._deployment_row(s, model)
            if row is not None:
                s.delete(row)  # its instances go with it; their logs stay on disk

    def add_instance(self, model: str) -> Instance:
        with self.session() as s:
            dep = self._deployment_row(s, model)
            if dep is None:
                raise ModelNotFound(model)
            row = InstanceRow(deployment_id=dep.id, state="pending", history=[_event("pending")])
            s.add(row)
            s.flush()
            return _instance(row, model)

    def update_instance(self, instance_id: int, *, note: str | None = None, **fields: Any) -> None:
        with self.session() as s:
            row = s.get(InstanceRow, instance_id)
            if row is None:
                return
            for key, value in fields.items():
                setattr(row, key, value)
            if "state" in fields:
                row.history = [*row.history, _event(fields["state"], note)][-50:]

    def instances(self) -> list[Instance]:
        with self.session() as s:
            rows = s.execute(
                select(InstanceRow, ModelRow.name)
                .join(DeploymentRow, InstanceRow.deployment_id == DeploymentRow.id)
                .join(ModelRow, DeploymentRow.model_id == ModelRow.id)
                .order_by(InstanceRow.id)
            )
            return [_instance(r, name) for r, name in rows]

    def delete_instance(self, instance_id: int) -> None:
        with self.session() as s:
            row = s.get(InstanceRow, instance_id)
            if row is not None:
                s.delete(row)

    # -- downloads ---------------------------------------------------------------------------

    def add_download(self, **fields: Any) -> Download:
        with self.session() as s:
            row = DownloadRow(**fields)
            s.add(row)
            s.flush()
            return _download(row)

    def get_download(self, job: int) -> Download:
        with self.session() as s:
            row = s.get(DownloadRow, job)
            if row is None:
                raise DownloadNotFound(job)
            return _download(row)

    def update_download(self, job: int, **fields: Any) -> Download:
        with self.session() as s:
            row = s.get(DownloadRow, job)
            if row is None:
                raise DownloadNotFound(job)
            for key, value in fields.items():
                setattr(row, key, value)
            s.flush()
            return _download(row)

    def downloads(self, states: tuple[str, ...] | None = None) -> list[Download]:
        with self.session() as s:
            query = select(DownloadRow).order_by(DownloadRow.id)
            if states:
                query = query.where(DownloadRow.state.in_(states))
            return [_download(r) for r in s.scalars(query)]

    def delete_download(self, job: int) -> None:
        with self.session() as s:
            row = s.get(DownloadRow, job)
            if row is None:
                raise DownloadNotFound(job)
            s.delete(row)

    # -- API keys ------------------------------------------------------------------------------

    def add_key(self, key: ApiKey) -> ApiKey:
        try:
            with self.session() as s:
                row = ApiKeyRow(
                    name=key.name,
                    prefix=key.prefix,
                    digest=key.digest,
                    scope=key.scope,
                    models=key.models,
                    expires_at=key.expires_at,
                    priority=key.priority,
                )
                s.add(row)
                s.flush()
                return _key(row)
        except IntegrityError:
            raise KeyExists(key.name) from None

    def keys(self) -> list[ApiKey]:
        with self.session() as s:
            return [_key(r) for r in s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id))]

    def key_by_digest(self, digest: str) -> ApiKey | None:
        with self.session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.digest == digest))
            return _key(row) if row else None

    def count_keys(self) -> int:
        with self.session() as s:
            return len(s.scalars(select(ApiKeyRow.id)).all())

    def key_used(self, digest: str, at: datetime) -> None:
        with self.session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.digest == digest))
            if row is not None:
                row.last_used_at = at

    def set_key_priority(self, name: str, priority: str) -> ApiKey:
        with self.session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name))
            if row is None:
                raise KeyNotFound(name)
            row.priority = priority
            s.flush()
            return _key(row)

    def delete_key(self, name: str) -> None:
        with self.session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.name == name))
            if row is None:
                raise KeyNotFound(name)
            s.delete(row)

    # -- usage and quotas ----------------------------------------------------------------------

    def add_usage(self, tallies: list[Usage]) -> None:
        """Add ``tallies`` to what the catalog holds for their hours, models and keys."""
        if not tallies:
            return
        counts = ("requests", "tokens_in", "tokens_out", "images", "loads")
        # one statement per tally, added up in the database: writers at once (two servers on
        # one PostgreSQL) lose nothing, where a read and a write back would
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        with self.session() as s:
            for t in tallies:
                fresh = insert(UsageRow).values(
                    hour=t.hour, model=t.model, key=t.key, **{c: getattr(t, c) for c in counts}
                )
                table = UsageRow.__table__.c
                s.execute(
                    fresh.on_conflict_do_update(
                        index_elements=["hour", "model", "key"],
                        set_={c: table[c] + fresh.excluded[c] for c in counts},
                    )
                )

    def usage(self, since: datetime | None = None, key: str | None = None) -> list[Usage]:
        """The hourly rows from ``since`` on (of ``key`` only, when given), oldest first."""
        query = select(UsageRow).order_by(UsageRow.hour, UsageRow.model, UsageRow.key)
        if since is not None:
            query = query.where(UsageRow.hour >= since)
        if key is not None:
            query = query.where(UsageRow.key == key)
        with self.session() as s:
            return [_usage(r) for r in s.scalars(query)]

    def quotas(self) -> list[Quota]:
        with self.session() as s:
            return [
                Quota(r.key, r.loads, r.period) for r in s.scalars(select(QuotaRow).order_by(QuotaRow.key))
            ]

    def put_quota(self, quota: Quota) -> Quota:
        with self.session() as s:
            row = s.scalar(select(QuotaRow).where(QuotaRow.key == quota.key))
            if row is None:
                s.add(QuotaRow(key=quota.key, loads=quota.loads, period=quota.period))
            else:
                row.loads, row.period = quota.loads, quota.period
        return quota

    # -- routes ------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        with self.session() as s:
            return [_route(r) for r in s.scalars(select(RouteRow).order_by(RouteRow.name))]

    def has_route(self, name: str) -> bool:
        with self.session() as s:
            return s.scalar(select(RouteRow.id).where(RouteRow.name == name)) is not None

    def put_route(self, route: Route) -> Route:
        """Add ``route``, or replace the one of its name."""
        targets = [asdict(t) for t in route.targets]
        with self.session() as s:
            row = s.scalar(select(RouteRow).where(RouteRow.name == route.name))
            if row is None:
                row = RouteRow(name=route.name, targets=targets, description=route.description)
                s.add(row)
            else:
                row.targets, row.description = targets, route.description
            s.flush()
            return _route(row)

    def delete_route(self, name: str) -> None:
        with self.session() as s:
            row = s.scalar(select(RouteRow).where(RouteRow.name == name))
            if row is None:
                raise RouteNotFound(name)
            s.delete(row)

    def worker_notes(self) -> dict[str, WorkerNote]:
        with self.session() as s:
            return {
                r.name: WorkerNote(r.name, dict(r.labels), r.note, r.drained)
                for r in s.scalars(select(WorkerRow))
            }

    def put_worker_note(self, note: WorkerNote) -> WorkerNote:
        with self.session() as s:
            row = s.scalar(select(WorkerRow).where(WorkerRow.name == note.name))
            if row is None:
                s.add(
                    WorkerRow(name=note.name, labels=dict(note.labels), note=note.note, drained=note.drained)
                )
            else:
                row.labels, row.note, row.drained = dict(note.labels), note.note, note.drained
        return note

    def put_response(self, stored: StoredResponse) -> None:
        with self.session() as s:
            s.add(ResponseRow(id=stored.id, account=stored.account, model=stored.model, previous=stored.previous,
                              input=stored.input, response=stored.response, status=stored.response["status"],
                              created_at=stored.created_at or utcnow()))  # fmt: skip

    def update_response(self, rid: str, response: dict[str, Any]) -> None:
        """The stored response ``rid`` as it is now (a background one, as it goes)."""
        with self.session() as s:
            row = s.get(ResponseRow, rid)
            if row is not None:
                row.response, row.status = response, response["status"]

    def unfinished_responses(self) -> list[StoredResponse]:
        """The responses still queued or in progress (background ones)."""
        with self.session() as s:
            query = select(ResponseRow).where(ResponseRow.status.in_(("queued", "in_progress")))
            return [_response(r) for r in s.scalars(query)]

    def get_response(self, rid: str, account: str) -> StoredResponse | None:
        """The stored response ``rid`` of ``account``; None when there is none (or another's)."""
        with self.session() as s:
            row = s.get(ResponseRow, rid)
            return _response(row) if row is not None and row.account == account else None

    def delete_response(self, rid: str, account: str) -> bool:
        with self.session() as s:
            row = s.get(ResponseRow, rid)
            if row is None or row.account != account:
                return False
            s.delete(row)
            return True

    def delete_responses_before(self, at: datetime) -> int:
        """Forget the responses stored before ``at``; how many."""
        with self.session() as s:
            done = s.execute(delete(ResponseRow).where(ResponseRow.created_at < at))
            return int(done.rowcount)  # type: ignore[attr-defined]

    def put_file(self, stored: StoredFile) -> None:
        with self.session() as s:
            s.add(FileRow(**asdict(stored)))

    def get_file(self, fid: str, account: str | None) -> StoredFile | None:
        """The file ``fid`` of ``account`` (None: of anyone); None when there is none."""
        with self.session() as s:
            row = s.get(FileRow, fid)
            return _file(row) if row is not None and account in (None, row.account) else None

    def files(self, account: str, purpose: str | None = None) -> list[StoredFile]:
        """``account``'s files (of ``purpose``), the newest first."""
        with self.session() as s:
            query = select(FileRow).where(FileRow.account == account)
            if purpose is not None:
                query = query.where(FileRow.purpose == purpose)
            return [_file(r) for r in s.scalars(query.order_by(FileRow.created_at.desc(), FileRow.id))]

    def delete_file(self, fid: str, account: str) -> bool:
        with self.session() as s:
            row = s.get(FileRow, fid)
            if row is None or row.account != account:
                return False
            s.delete(row)
            return True

    def put_batch(self, stored: StoredBatch) -> None:
        with self.session() as s:
            s.add(BatchRow(id=stored.id, account=stored.account, status=stored.batch["status"],
                           created_at=datetime.fromtimestamp(stored.batch["created_at"], UTC), batch=stored.batch))  # fmt: skip

    def update_batch(self, bid: str, batch: dict[str, Any]) -> None:
        """The batch ``bid`` as it stands now."""
        with self.session() as s:
            row = s.get(BatchRow, bid)
            if row is not None:
                row.batch, row.status = batch, batch["status"]

    def get_batch(self, bid: str, account: str | None) -> StoredBatch | None:
        """The batch ``bid`` of ``account`` (None: of anyone); None when there is none."""
        with self.session() as s:
            row = s.get(BatchRow, bid)
            return _batch(row) if row is not None and account in (None, row.account) else None

    def batches(self, account: str | None, statuses: tuple[str, ...] | None = None) -> list[StoredBatch]:
        """The batches of ``account`` (None: everyone's; of these ``statuses``), newest first."""
        with self.session() as s:
            query = select(BatchRow)
            if account is not None:
                query = query.where(BatchRow.account == account)
            if statuses is not None:
                query = query.where(BatchRow.status.in_(statuses))
            return [
                _batch(r) for r in s.scalars(query.order_by(BatchRow.created_at.desc(), BatchRow.id.desc()))
            ]

    def delete_quota(self, key: str) -> bool:
        """Remove ``key``'s quota; whether it had one."""
        with self.session() as s:
            row = s.scalar(select(QuotaRow).where(QuotaRow.key == key))
            if row is not None:
                s.delete(row)
            return row is not None


def _not_a_route(s: Session, name: str) -> None:
    if s.scalar(select(RouteRow.id).where(RouteRow.name == name)) is not None:
        raise ModelExists(f"{name!r} names a route", hint="pick another name, or delete the route")


def _renamed_in_routes(s: Session, old: str, new: str) -> None:
    for row in s.scalars(select(RouteRow)):
        if any(t["model"] == old for t in row.targets):
            row.targets = [{**t, "model": new} if t["model"] == old else t for t in row.targets]


def _route(r: RouteRow) -> Route:
    targets = [Target(str(t["model"]), int(t.get("weight", 1))) for t in r.targets]
    return Route(r.name, targets, r.description or "", _aware(r.created_at))


def _response(r: ResponseRow) -> StoredResponse:
    return StoredResponse(
        id=r.id, account=r.account, model=r.model, previous=r.previous, input=r.input,
        response=r.response, created_at=_aware(r.created_at),
    )  # fmt: skip


def _file(r: FileRow) -> StoredFile:
    created = _aware(r.created_at)
    assert created is not None
    return StoredFile(r.id, r.account, r.filename, r.purpose, r.bytes, created, _aware(r.expires_at))


def _batch(r: BatchRow) -> StoredBatch:
    return StoredBatch(r.id, r.account, r.batch)


def _usage(r: UsageRow) -> Usage:
    hour = _aware(r.hour)
    assert hour is not None
    return Usage(hour, r.model, r.key, r.requests, r.tokens_in, r.tokens_out, r.images, r.loads)


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        name=row.name,
        prefix=row.prefix,
        digest=row.digest,
        scope=row.scope,
        models=list(row.models),
        expires_at=_aware(row.expires_at),
        priority=row.priority,
        created_at=_aware(row.created_at),
        last_used_at=_aware(row.last_used_at),
        id=row.id,
    )


def _aware(at: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes: they were stored in UTC."""
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _event(state: str, note: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"state": state, "at": utcnow().isoformat()}
    if note:
        event["note"] = note
    return event


def _download(row: DownloadRow) -> Download:
    return Download(**{f.name: getattr(row, f.name) for f in dataclass_fields(Download)})


def _deployment(row: DeploymentRow, model: str) -> Deployment:
    return Deployment(
        model=model,
        backend=row.backend,
        replicas=row.replicas,
        options=dict(row.options),
        adapter=row.adapter,
        jit=row.jit,
        env=dict(row.env),
        backend_version=row.backend_version,
        args=list(row.args),
        restart=row.restart,
        stopped=row.stopped,
        scheduling=Scheduling(**row.scheduling),
        autoscale=Autoscale(**row.autoscale) if row.autoscale is not None else None,
        id=row.id,
    )


def _instance(row: InstanceRow, model: str) -> Instance:
    return Instance(
        id=row.id,
        model=model,
        state=row.state,
        node=row.node,
        url=row.url,
        starts=row.starts,
        restarts=row.restarts,
        error=row.error,
        history=list(row.history),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
