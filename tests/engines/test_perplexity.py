"""Logits for perplexity (the manual's logits_all): prompt logprobs through /v1/completions with
`echo` and `logprobs`, as llama.cpp computes them in-process; llama-server has no echo, so there
the option is refused with what to do."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import RunningServer, llama_server

pytestmark = pytest.mark.engine


TEXT = "The capital of France is Paris. The capital of Germany is Berlin."


@pytest.mark.slow
def test_prompt_logprobs_give_the_perplexity(server: RunningServer, gemma: Path) -> None:
    import llama_cpp

    r = server.http.post("/api/models", json={"path": str(gemma), "name": "gemma3"})
    assert r.status_code == 201, r.text
    options = {"logits_all": True, "n_ctx": 256, "threads": 2}
    saved = server.http.put("/api/models/gemma3/settings", json={"options": options})
    assert saved.json()["backend"] == "llama.cpp"
    if llama_server() is not None:  # the default engine is llama-server: it cannot, and says why
        r = server.http.post("/api/models/gemma3/load", json={})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert "llama-server has no prompt logprobs" in error["message"]
        assert "--backend llama-cpp-python" in error["hint"]
    # the settings saved for llama-cpp-python: that is the engine the load starts
    body = {"options": options, "backend": "llama-cpp-python"}
    assert server.http.put("/api/models/gemma3/settings", json=body).status_code == 200
    assert server.http.post("/api/models/gemma3/load", json={}).status_code == 200
    (deployment,) = server.http.get("/api/deployments").json()
    assert deployment["serving_backend"] == "llama-cpp-python"
    ask = {"model": "gemma3", "prompt": TEXT, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}
    r = server.http.post("/v1/completions", json=ask)
    assert r.status_code == 200, r.text
    answer = r.json()
    served = answer["choices"][0]["logprobs"]["token_logprobs"]
    assert served[0] is None  # nothing comes before the first token
    assert answer["choices"][0]["text"].startswith(TEXT)
    llm = llama_cpp.Llama(model_path=str(gemma), n_ctx=256, logits_all=True, n_threads=2, verbose=True)
    own = llm.create_completion(TEXT, echo=True, logprobs=1, max_tokens=1, temperature=0)
    expected = own["choices"][0]["logprobs"]["token_logprobs"]
    assert len(served) == len(expected) > 10
    assert served[1:] == pytest.approx([float(v) for v in expected[1:]], abs=1e-3)

    def perplexity(logprobs: list[float]) -> float:
        return math.exp(-sum(logprobs) / len(logprobs))

    n = answer["usage"]["prompt_tokens"]
    assert 1 < perplexity(served[1:n]) < 1000  # a real model on plain English
