"""model-compose's vector-store components: ``type: vector-store`` with its ``driver`` and its
``actions`` (each a ``method``: insert, update, search or delete on a ``collection``), kept in
an embedded index on the server's disk (driver chroma: Chroma's persistent client, from the
registry), one folder per component id under the server's home.

An action's fields are expressions of the job's input (``vector: ${input.vector}``); a field
the action leaves out is the input's own of that name (``top_k`` given by the job)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelyard.compose import expressions
from modelyard.compose.names import Id
from modelyard.errors import EngineUnavailable, InvalidInput

TOP_K = 10


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    collection: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$",
        description="3 to 512 letters, digits and . _ -, a letter or digit at each end (Chroma's rule)",
    )
    method: Literal["insert", "update", "search", "delete"]
    vector: Any = None
    vector_id: Any = None
    metadata: Any = None
    query: Any = None
    top_k: Any = None
    output_fields: list[str] | None = Field(None, description="search: the metadata fields it gives back")


class VectorStoreComponent(BaseModel):
    """``component:`` of ``type: vector-store``."""

    model_config = ConfigDict(extra="forbid")

    id: Id | None = None
    type: Literal["vector-store"]
    driver: Literal["chroma"] = Field(description="chroma: an embedded Chroma index on the server's disk")
    actions: list[Action] = Field(min_length=1)

    @model_validator(mode="after")
    def _readable(self) -> VectorStoreComponent:
        ids = [a.id for a in self.actions]
        if len(set(ids)) != len(ids):
            raise ValueError("actions: an id is given twice")
        expressions.readable({f"actions: {a.id}": a.model_dump() for a in self.actions})
        return self

    def name(self) -> str:
        return self.id or "vector-store"

    def action(self, name: str | None) -> Action:
        if name is None and len(self.actions) == 1:
            return self.actions[0]
        for a in self.actions:
            if a.id == name:
                return a
        raise InvalidInput(
            f"the vector store {self.name()!r} has no action {name!r}",
            hint=f"its actions: {', '.join(a.id for a in self.actions)}",
        )


class VectorStores:
    """Every vector-store component's index, each in its own folder under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def run(self, component: VectorStoreComponent, action_name: str | None, given: Mapping[str, Any]) -> Any:
        """One action with the input ``given`` (blocking: call it in a thread)."""
        action = self.action_fields(component.action(action_name), given)
        try:
            return self._run(component, action)
        except Exception as e:  # Chroma's word on what it cannot take (a value, a dimension)
            if isinstance(e, (ValueError, TypeError)) or type(e).__module__.startswith("chromadb"):
                raise InvalidInput(f"the vector store {component.name()!r} refused it: {e}") from None
            raise

    def _run(self, component: VectorStoreComponent, action: dict[str, Any]) -> Any:
        collection = self._collection(component, action["collection"])
        method = action["method"]
        if method == "search":
            query = _vector(action.get("query", action.get("vector")), "query")
            top_k = int(action.get("top_k") or TOP_K)
            found = collection.query(
                query_embeddings=[query], n_results=top_k, include=["metadatas", "distances"]
            )
            wanted = action.get("output_fields")
            return [
                {"id": i, "score": 1 - distance, "metadata": _fields(meta or {}, wanted)}
                for i, distance, meta in zip(
                    found["ids"][0], found["distances"][0], found["metadatas"][0], strict=True
                )
            ]
        if method == "delete":
            ids = _ids(action.get("vector_id"))
            collection.delete(ids=ids)
            return {"ids": ids}
        vector = _vector(action.get("vector"), "vector")
        metadata = action.get("metadata")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidInput("metadata is a mapping of names to values")
        record = {"embeddings": [vector], "metadatas": [dict(metadata)] if metadata else None}
        if method == "update":
            ids = _ids(action.get("vector_id"))
            collection.update(ids=ids, **record)
        else:
            given_id = action.get("vector_id")
            ids = _ids(given_id) if given_id is not None else [uuid.uuid4().hex]
            collection.add(ids=ids, **record)
        return {"ids": ids}

    @staticmethod
    def action_fields(action: Action, given: Mapping[str, Any]) -> dict[str, Any]:
        """The action's fields filled from the job's input; one it leaves out is the input's own."""
        fields: dict[str, Any] = {}
        for name, value in action.model_dump(exclude={"id"}).items():
            if value is None:
                if name in given:
                    fields[name] = given[name]
                continue
            fields[name] = expressions.render(value, {"input": dict(given)})
        return fields

    def _collection(self, component: VectorStoreComponent, name: str) -> Any:
        try:
            import chromadb
            from chromadb.config import Settings
        except ImportError:
            raise EngineUnavailable(
                "the vector store's chroma driver needs chromadb",
                hint="pip install 'modelyard[compose]' in the server's environment",
            ) from None
        key = component.name()
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                folder = self.root / key
                folder.mkdir(parents=True, exist_ok=True)
                client = chromadb.PersistentClient(
                    path=str(folder), settings=Settings(anonymized_telemetry=False)
                )
                self._clients[key] = client
        return client.get_or_create_collection(
            name, metadata={"hnsw:space": "cosine"}, embedding_function=None
        )


def _vector(value: Any, field: str) -> list[float]:
    if isinstance(value, Mapping) and "embedding" in value:  # a text-embedding's whole result
        value = value["embedding"]
    if not isinstance(value, list) or not value or not all(isinstance(x, (int, float)) for x in value):
        raise InvalidInput(
            f"{field} is a list of numbers (an embedding)", hint="give it ${jobs.ID.output...}"
        )
    return [float(x) for x in value]


def _ids(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if value is None:
        raise InvalidInput("vector_id is missing", hint="give it the id the insert answered")
    return [str(value)]


def _fields(metadata: Mapping[str, Any], wanted: list[str] | None) -> dict[str, Any]:
    return dict(metadata) if wanted is None else {k: metadata[k] for k in wanted if k in metadata}
