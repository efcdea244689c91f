"""ORM tables. Only the store touches them; everyone else gets records (records.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(32), index=True)
    format: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text, unique=True)
    quantization: Mapped[str | None] = mapped_column(String(64))
    architecture: Mapped[str | None] = mapped_column(String(128))
    parameters: Mapped[int | None] = mapped_column(BigInteger)
    context_length: Mapped[int | None] = mapped_column(Integer)
    template: Mapped[str | None] = mapped_column(String(32))
    capabilities: Mapped[list[str]] = mapped_column(JSON, default=list)
    unsafe: Mapped[bool] = mapped_column(Boolean, default=False)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(32), default="local")
    source_repo: Mapped[str | None] = mapped_column(String(256))
    source_revision: Mapped[str | None] = mapped_column(String(128))
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)
    autoload: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    files: Mapped[list[ModelFileRow]] = relationship(
        back_populates="model",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ModelFileRow.id",
    )
    components: Mapped[list[ComponentRow]] = relationship(
        back_populates="model",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ComponentRow.role",
    )
    adapters: Mapped[list[AdapterRow]] = relationship(
        back_populates="model",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="AdapterRow.name",
    )
    settings: Mapped[SettingsRow | None] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True
    )


class ModelFileRow(Base):
    __tablename__ = "model_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))

    model: Mapped[ModelRow] = relationship(back_populates="files")


class ComponentRow(Base):
    __tablename__ = "components"
    __table_args__ = (UniqueConstraint("model_id", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    model: Mapped[ModelRow] = relationship(back_populates="components")


class AdapterRow(Base):
    __tablename__ = "adapters"
    __table_args__ = (UniqueConstraint("model_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    format: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    model: Mapped[ModelRow] = relationship(back_populates="adapters")


class SettingsRow(Base):
    __tablename__ = "model_settings"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    backend: Mapped[str] = mapped_column(String(32))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    model: Mapped[ModelRow] = relationship(back_populates="settings")


class DeploymentRow(Base):
    """The wish that a model runs: 'load' is one replica, 'unload' forgets it, 'stop' keeps it."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), unique=True)
    adapter: Mapped[str | None] = mapped_column(String(128))
    backend: Mapped[str] = mapped_column(String(32))  # asked for; "": the registry chooses
    backend_version: Mapped[str | None] = mapped_column(String(64))  # a build of it; None: the default
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    jit: Mapped[bool] = mapped_column(Boolean, default=False)
    env: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # the engines' own variables
    args: Mapped[list[str]] = mapped_column(JSON, default=list)  # more engine arguments
    restart: Mapped[bool] = mapped_column(Boolean, default=True)  # start again after a crash
    stopped: Mapped[bool] = mapped_column(Boolean, default=False)  # no instances; the rest kept
    scheduling: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # records.Scheduling's fields
    autoscale: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # records.Autoscale's fields; None: off
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    instances: Mapped[list[InstanceRow]] = relationship(
        back_populates="deployment",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="InstanceRow.id",
    )


class InstanceRow(Base):
    """One replica: a process serving the model on its own port. Ids are never reused: each
    start of each instance has its own log, named by them."""

    __tablename__ = "instances"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    node: Mapped[str | None] = mapped_column(String(128))
    url: Mapped[str | None] = mapped_column(String(256))
    starts: Mapped[int] = mapped_column(Integer, default=0)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    deployment: Mapped[DeploymentRow] = relationship(back_populates="instances")


class DownloadRow(Base):
    """A download job: what to fetch from which hub, where to, and how far it got."""

    __tablename__ = "downloads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    repo: Mapped[str] = mapped_column(String(256))
    revision: Mapped[str] = mapped_column(String(128))
    ref: Mapped[str] = mapped_column(Text)  # as the user wrote it
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # RemoteFile.to_json()
    destination: Mapped[str] = mapped_column(Text)
    base: Mapped[str | None] = mapped_column(String(128))  # the base model of a LoRA
    name: Mapped[str | None] = mapped_column(String(128))  # the name the imported model gets
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    files_done: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    hint: Mapped[str | None] = mapped_column(Text)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)  # what the import added
    deploy: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # a deployment to start when imported
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ApiKeyRow(Base):
    """An API key: only the sha256 of its secret is kept, never the secret."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the secret's first characters, to tell keys apart
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))  # admin or inference
    models: Mapped[list[str]] = mapped_column(JSON, default=list)  # globs; empty: every model
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    priority: Mapped[str] = mapped_column(String(16), default="default", server_default="default")


class UsageRow(Base):
    """What one key asked of one model in one hour (UTC), added up."""

    __tablename__ = "usage"
    __table_args__ = (UniqueConstraint("hour", "model", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    model: Mapped[str] = mapped_column(String(128))  # a name, kept after the model is removed
    key: Mapped[str] = mapped_column(String(64))  # a key's name, or "local" without keys
    requests: Mapped[int] = mapped_column(Integer, default=0)
    tokens_in: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_out: Mapped[int] = mapped_column(BigInteger, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    loads: Mapped[int] = mapped_column(Integer, default=0)  # loads that count against a quota


class QuotaRow(Base):
    """How many quota-counted loads a key may make per period; key "*": every key without one."""

    __tablename__ = "quotas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    loads: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(16))  # day, week, month or total


class WorkerRow(Base):
    """A cluster worker's labels and note, as people edited them."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    drained: Mapped[bool] = mapped_column(Boolean, default=False)


class RouteRow(Base):
    """A model route: its targets in order, each ``{"model": name, "weight": n}``."""

    __tablename__ = "routes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ResponseRow(Base):
    """A stored response of the Responses API: its input items and the response, for
    previous_response_id, GET and input_items; only the key that made it reads it."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))  # a key's name, or "" for the local user
    model: Mapped[str] = mapped_column(String(128))
    previous: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # the response's: queued, in_progress, completed, ...
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    input: Mapped[list[Any]] = mapped_column(JSON)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)


class FileRow(Base):
    """A file of the Files API (a batch's input, output or errors): its content lies under the
    home's files folder, named by its id; only the key that made it reads it."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), index=True)  # a key's name, or "" for the local user
    filename: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BatchRow(Base):
    """A batch job of the Batches API: the batch object as it stands (its results are appended
    to files as they come, see batches/jobs.py)."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    batch: Mapped[dict[str, Any]] = mapped_column(JSON)
