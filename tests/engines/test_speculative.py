"""Speculative decoding on llama.cpp as model settings: a draft model from the library (its
vocabulary checked when it is set), or n-gram drafting; greedy answers are the same tokens as
without it, and the drafts accepted show in the usage, the metrics and `ps`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import RunningServer

pytestmark = pytest.mark.engine


PROMPT = "One, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve,"


def complete(server: RunningServer) -> dict[str, Any]:
    body = {"model": "gemma", "prompt": PROMPT, "max_tokens": 24, "temperature": 0}
    r = server.http.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def load(server: RunningServer, options: dict[str, Any]) -> None:
    r = server.http.put("/api/models/gemma/settings", json={"options": options, "replace": True})
    assert r.status_code == 200, r.text
    r = server.http.post("/api/models/gemma/load", json={})
    assert r.status_code == 200, r.text


@pytest.mark.slow
def test_a_draft_model_and_ngrams_speed_nothing_up_but_the_tokens(
    server: RunningServer, gemma: Path, zoo: Path, tmp_path: Path
) -> None:
    draft = tmp_path / "gemma-draft.gguf"
    os.link(gemma, draft)  # gemma drafting for itself: a functional check, every draft accepted
    for name, path in (
        ("gemma", gemma),
        ("gemma-draft", draft),
        ("tiny", zoo / "chat" / "tiny-llama-f32.gguf"),
    ):
        assert server.http.post("/api/models", json={"path": str(path), "name": name}).status_code == 201
    base = {"n_ctx": 512, "threads": 2}
    load(server, base)
    plain = complete(server)
    assert "completion_tokens_details" not in plain["usage"]
    # a draft of another vocabulary is refused when it is set
    r = server.http.put("/api/models/gemma/settings", json={"options": {"draft_model": "tiny"}})
    assert r.status_code == 400
    assert "vocabulary" in r.json()["error"]["message"]
    load(server, {**base, "draft_model": "gemma-draft", "draft_max": 8})
    saved = server.http.get("/api/models/gemma/settings").json()["saved"]
    assert saved["draft_model"] == str(draft)  # saved as its file
    drafted = complete(server)
    assert drafted["choices"][0]["text"] == plain["choices"][0]["text"]  # greedy: the same tokens
    details = drafted["usage"]["completion_tokens_details"]
    assert details["accepted_prediction_tokens"] > 0
    # its own weights, greedy: the drafts are right (a reject or two at most, from batching)
    assert details["rejected_prediction_tokens"] < details["accepted_prediction_tokens"]
    (instance,) = server.http.get("/api/instances").json()
    assert 0 < instance["draft_acceptance"] <= 1
    assert instance["tokens_per_second"] > 0  # the engine's own decode rate
    metrics = httpx.get(server.url + "/metrics").text
    assert 'modelyard_draft_tokens_total{endpoint="completions",model="gemma",outcome="accepted"}' in metrics
    assert "modelyard_cached_prompt_tokens_total" in metrics
    assert 'modelyard_decode_seconds_total{endpoint="completions",model="gemma"}' in metrics
    estimate = server.http.get("/api/models/gemma/estimate").json()
    assert estimate["ram"]["weights"] > 2 * gemma.stat().st_size * 0.95  # the draft's weights too
    # n-gram drafting: no draft model, the same greedy tokens
    load(server, {**base, "ngram_speculation": True})
    assert complete(server)["choices"][0]["text"] == plain["choices"][0]["text"]
