"""A vector-store component's actions on its embedded Chroma index: insert, search (nearest
first, top_k, output_fields), update, delete; what Chroma cannot take is refused by name; the
index stays on disk for the next server."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.compose.vectors import VectorStoreComponent, VectorStores
from modelyard.errors import InvalidInput

pytestmark = pytest.mark.unit

STORE = VectorStoreComponent.model_validate(
    {
        "id": "notes",
        "type": "vector-store",
        "driver": "chroma",
        "actions": [
            {"id": "insert", "collection": "docs", "method": "insert", "vector": "${input.vector}",
             "metadata": {"text": "${input.text}"}},
            {"id": "search", "collection": "docs", "method": "search", "query": "${input.vector}",
             "output_fields": ["text"]},
            {"id": "update", "collection": "docs", "method": "update", "vector_id": "${input.id}",
             "vector": "${input.vector}", "metadata": {"text": "${input.text}"}},
            {"id": "delete", "collection": "docs", "method": "delete", "vector_id": "${input.id}"},
        ],
    }
)  # fmt: skip


def test_insert_search_update_delete(tmp_path: Path) -> None:
    stores = VectorStores(tmp_path)
    ids = {}
    for text, vector in [("east", [1.0, 0.0]), ("north", [0.0, 1.0]), ("north-east", [0.7, 0.7])]:
        (ids[text],) = stores.run(STORE, "insert", {"vector": vector, "text": text})["ids"]
    found = stores.run(STORE, "search", {"vector": [0.9, 0.1], "top_k": 2})
    assert [f["metadata"]["text"] for f in found] == ["east", "north-east"]
    assert found[0]["id"] == ids["east"]
    assert 0.99 < found[0]["score"] <= 1.0
    stores.run(STORE, "update", {"id": ids["north"], "vector": [1.0, 0.05], "text": "moved"})
    assert stores.run(STORE, "search", {"vector": [1.0, 0.0], "top_k": 1})[0]["metadata"] == {"text": "east"}
    stores.run(STORE, "delete", {"id": ids["east"]})
    found = VectorStores(tmp_path).run(STORE, "search", {"vector": [1.0, 0.0]})  # kept on disk
    assert [f["metadata"]["text"] for f in found] == ["moved", "north-east"]


def test_what_the_store_cannot_take_is_refused_by_name(tmp_path: Path) -> None:
    stores = VectorStores(tmp_path)
    stores.run(STORE, "insert", {"vector": [1.0, 0.0], "text": "a"})
    with pytest.raises(InvalidInput, match=r"the vector store 'notes' refused it: .*dimension"):
        stores.run(STORE, "insert", {"vector": [1.0, 0.0, 2.0], "text": "b"})
    with pytest.raises(InvalidInput, match="vector is a list of numbers"):
        stores.run(STORE, "insert", {"vector": "east", "text": "c"})
    with pytest.raises(InvalidInput, match="has no action 'upsert'"):
        stores.run(STORE, "upsert", {})
