"""The Python backends through the gateway, as a client sees them: embeddings (the real
all-MiniLM-L6-v2), rerank, classification, transformers chat with PEFT adapters. Each answer is
checked against the same library run in-process."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from conftest import RunningServer
from modelyard.gateway.answers import ClassifyAnswer, RerankAnswer

pytestmark = pytest.mark.engine


def add(server: RunningServer, path: Path, name: str) -> dict[str, Any]:
    r = server.http.post("/api/models", json={"path": str(path), "name": name})
    assert r.status_code == 201, r.text
    model: dict[str, Any] = r.json()
    return model


def load(server: RunningServer, name: str, **body: Any) -> None:
    r = server.http.post(f"/api/models/{name}/load", json=body)
    assert r.status_code == 200, r.text


def client(server: RunningServer) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", http_client=httpx.Client(timeout=120))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_embeddings_from_the_real_minilm(server: RunningServer, minilm: Path) -> None:
    from sentence_transformers import SentenceTransformer

    assert add(server, minilm, "minilm")["category"] == "embedding"
    load(server, "minilm")
    texts = ["a cat sits on the mat", "a kitten is lying on the rug", "stock markets fell sharply today"]
    with client(server) as ai:
        got = ai.embeddings.create(model="minilm", input=texts)
        short = ai.embeddings.create(model="minilm", input="a cat", dimensions=128)
    vectors = [d.embedding for d in got.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4 for v in vectors)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    assert got.usage.prompt_tokens > 3 * 3
    local = SentenceTransformer(str(minilm), device="cpu").encode(texts, normalize_embeddings=True)
    for v, w in zip(vectors, local, strict=True):
        assert max(abs(x - y) for x, y in zip(v, w.tolist(), strict=True)) < 1e-4
    assert len(short.data[0].embedding) == 128
    raw = server.http.post(
        "/v1/embeddings", json={"model": "minilm", "input": texts[0], "encoding_format": "base64"}
    ).json()
    decoded = struct.unpack("<384f", base64.b64decode(raw["data"][0]["embedding"]))
    assert max(abs(x - y) for x, y in zip(decoded, vectors[0], strict=True)) < 1e-6
    assert server.http.post("/v1/embeddings", json={"model": "minilm", "input": [1, 2]}).status_code == 400


def test_concurrent_requests_are_batched_together(server: RunningServer, minilm: Path) -> None:
    from sentence_transformers import SentenceTransformer

    add(server, minilm, "minilm")
    load(server, "minilm")
    sentences = [
        f"sentence number {i} talks about {['cats', 'cars', 'code', 'cakes'][i % 4]}" for i in range(64)
    ]

    async def burst() -> list[list[float]]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
            answers = await asyncio.gather(
                *(http.post("/v1/embeddings", json={"model": "minilm", "input": s}) for s in sentences)
            )
        assert all(a.status_code == 200 for a in answers)
        return [a.json()["data"][0]["embedding"] for a in answers]

    vectors = asyncio.run(burst())
    local = SentenceTransformer(str(minilm), device="cpu").encode(sentences, normalize_embeddings=True)
    for v, w in zip(vectors, local, strict=True):
        assert max(abs(x - y) for x, y in zip(v, w.tolist(), strict=True)) < 1e-4  # each its own answer
    (instance,) = server.http.get("/api/instances").json()
    stats = httpx.get(instance["url"] + "/health").json()["stats"]  # health is open
    # the runner answers the gateway only: it holds a key of its own
    direct = httpx.post(instance["url"] + "/v1/embeddings", json={"model": "minilm", "input": "x"})
    assert direct.status_code == 401
    assert stats["items"] == 64
    assert stats["batches"] <= 16  # 64 requests ran in a few batches, not one by one


def test_rerank_in_llama_server_shape(server: RunningServer, torch_zoo: dict[str, Path]) -> None:
    from sentence_transformers import CrossEncoder

    assert add(server, torch_zoo["rerank"], "reranker")["category"] == "rerank"
    load(server, "reranker")
    docs = [
        "a cat sat on the mat",
        "paris is the capital of france",
        "machine learning models",
        "hello world",
    ]
    r = server.http.post(
        "/v1/rerank", json={"model": "reranker", "query": "the cat", "documents": docs, "top_n": 3}
    )
    assert r.status_code == 200, r.text
    RerankAnswer.model_validate(r.json())  # as the OpenAPI document says
    results = r.json()["results"]
    assert len(results) == 3
    scores = [x["relevance_score"] for x in results]
    assert scores == sorted(scores, reverse=True)
    local = CrossEncoder(str(torch_zoo["rerank"]), device="cpu").predict([("the cat", d) for d in docs])
    for x in results:
        assert x["document"]["text"] == docs[x["index"]]
        assert abs(x["relevance_score"] - float(local[x["index"]])) < 1e-5
    bare = server.http.post(
        "/v1/rerank",
        json={
            "model": "reranker",
            "query": "q",
            "documents": [{"text": "a"}, "b"],
            "return_documents": False,
        },
    ).json()
    assert {x["index"] for x in bare["results"]} == {0, 1}
    assert all("document" not in x for x in bare["results"])
    assert (
        server.http.post("/v1/rerank", json={"model": "reranker", "query": "q", "documents": []}).status_code
        == 400
    )
    wrong = server.http.post("/v1/embeddings", json={"model": "reranker", "input": "x"})
    assert wrong.status_code == 400  # a rerank model does not serve embeddings


def test_text_classification(server: RunningServer, torch_zoo: dict[str, Path]) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    assert add(server, torch_zoo["classify"], "sentiment")["category"] == "classification"
    load(server, "sentiment")
    texts = ["hello world", "the lazy dog"]
    answer = server.http.post("/v1/classify", json={"model": "sentiment", "input": texts}).json()
    data = ClassifyAnswer.model_validate(answer).model_dump()["data"]  # as the OpenAPI document says
    tok = AutoTokenizer.from_pretrained(torch_zoo["classify"])
    model = AutoModelForSequenceClassification.from_pretrained(torch_zoo["classify"])
    with torch.no_grad():
        probs = model(**tok(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
    for item, row in zip(data, probs, strict=True):
        assert item["label"] == ["negative", "positive"][int(row.argmax())]
        assert abs(item["score"] - float(row.max())) < 1e-5


def _greedy(folder: Path, messages: list[dict[str, str]], adapters: list[tuple[Path, float]], n: int) -> str:
    """What transformers (and peft) generate in-process, greedy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model: Any = AutoModelForCausalLM.from_pretrained(folder)
    if adapters:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapters[0][0]), adapter_name="a0")
        for i, (path, _w) in enumerate(adapters[1:], 1):
            model.load_adapter(str(path), adapter_name=f"a{i}")
        if len(adapters) > 1 or adapters[0][1] != 1.0:
            names = [f"a{i}" for i in range(len(adapters))]
            model.add_weighted_adapter(names, [w for _p, w in adapters], "mix", combination_type="cat")
            model.set_adapter("mix")
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False
        )
    decoded: str = tok.decode(out[0][ids.shape[1] :], skip_special_tokens=True)
    return decoded


def test_chat_streaming_and_peft_adapters(server: RunningServer, torch_zoo: dict[str, Path]) -> None:
    assert add(server, torch_zoo["chat"], "tiny")["category"] == "chat"
    for key in ("lora", "lora2"):
        r = server.http.post("/api/models/tiny/adapters", json={"path": str(torch_zoo[key]), "name": key})
        assert r.status_code in (200, 201), r.text
    messages = [{"role": "user", "content": "hello world"}]
    with client(server) as ai:
        _chat(server, ai, torch_zoo, messages)


def _chat(
    server: RunningServer, ai: OpenAI, torch_zoo: dict[str, Path], messages: list[dict[str, str]]
) -> None:
    load(server, "tiny")
    plain = ai.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0)  # type: ignore[arg-type]
    expected = _greedy(torch_zoo["chat"], messages, [], 12)
    assert plain.choices[0].message.content == expected
    assert plain.usage is not None
    assert plain.usage.completion_tokens == 12
    assert plain.choices[0].finish_reason == "length"
    chunks = ai.chat.completions.create(
        model="tiny",
        messages=messages,
        max_tokens=12,
        temperature=0,
        stream=True,  # type: ignore[arg-type]
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == expected
    completion = ai.completions.create(model="tiny", prompt="the cat", max_tokens=5, temperature=0)
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5
    # loaded with a LoRA, base:adapter answers as peft does
    load(server, "tiny", adapter="lora")
    with_lora = ai.chat.completions.create(model="tiny:lora", messages=messages, max_tokens=12, temperature=0)  # type: ignore[arg-type]
    assert with_lora.choices[0].message.content == _greedy(
        torch_zoo["chat"], messages, [(torch_zoo["lora"], 1.0)], 12
    )
    assert with_lora.choices[0].message.content != expected
    # model-compose's peft_adapters: two at once, each with a weight
    weighted = {
        "peft_adapters": [{"name": "lora", "weight": 0.7}, {"path": str(torch_zoo["lora2"]), "weight": 0.4}]
    }
    assert server.http.put("/api/models/tiny/settings", json={"options": weighted}).status_code == 200
    server.http.post("/api/models/tiny/unload", json={})
    load(server, "tiny")
    mixed = ai.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0)  # type: ignore[arg-type]
    want = _greedy(torch_zoo["chat"], messages, [(torch_zoo["lora"], 0.7), (torch_zoo["lora2"], 0.4)], 12)
    assert mixed.choices[0].message.content == want


def _tokens(folder: Path, prompt: str, n: int, **generate: Any) -> list[int]:
    """Greedy tokens of transformers in-process, with ``generate``'s extra arguments."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model: Any = AutoModelForCausalLM.from_pretrained(folder)
    ids = tok(prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False, **generate
        )
    return [int(t) for t in out[0][ids.shape[1] :]]


def _penalised(folder: Path, prompt: str, n: int, presence: float, frequency: float) -> list[int]:
    """Greedy tokens with OpenAI's presence and frequency penalties, step by step by hand."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model: Any = AutoModelForCausalLM.from_pretrained(folder)
    ids = tok(prompt)["input_ids"]
    out: list[int] = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids + out])).logits[0, -1]
            for token in set(out):
                logits[token] -= presence + frequency * out.count(token)
            out.append(int(logits.argmax()))
    return out


def test_every_sampling_parameter_is_honoured_or_refused(
    server: RunningServer, torch_zoo: dict[str, Path]
) -> None:
    add(server, torch_zoo["plain"], "tiny")
    load(server, "tiny")
    prompt, n = "the cat sat on the mat and the cat", 32  # long enough for greedy to repeat itself

    def text(ids: list[int]) -> str:
        from transformers import AutoTokenizer

        return str(AutoTokenizer.from_pretrained(torch_zoo["plain"]).decode(ids, skip_special_tokens=True))

    def answer(**body: Any) -> str:
        r = server.http.post(
            "/v1/completions", json={"model": "tiny", "prompt": prompt, "max_tokens": n, **body}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["choices"][0]["text"])

    greedy = answer(temperature=0)
    assert greedy == text(_tokens(torch_zoo["plain"], prompt, n))
    repeated = answer(temperature=0, repetition_penalty=1.8)
    assert repeated == text(_tokens(torch_zoo["plain"], prompt, n, repetition_penalty=1.8))
    assert repeated != greedy
    penalised = answer(temperature=0, presence_penalty=1.5, frequency_penalty=1.0)
    assert penalised == text(_penalised(torch_zoo["plain"], prompt, n, 1.5, 1.0))
    assert penalised != greedy
    # sampling at full temperature, but top_k 1 (or min_p 1) leaves only the likeliest token
    for seed in (1, 2, 3):
        assert answer(temperature=1.0, top_k=1, seed=seed) == greedy
        assert answer(temperature=1.0, min_p=1.0, seed=seed) == greedy
    refused = {
        "logit_bias": ({"5": 10}, "logit_bias is not available from this engine"),
        "logprobs": (True, "logprobs are not available from this engine"),
        "tools": ([{"type": "function", "function": {"name": "f"}}], "tools: not supported by this engine"),
        "n": (2, "n: Input should be 1"),
        "top_p": (1.5, "top_p: Input should be less than or equal to 1"),
    }
    for field, (value, message) in refused.items():
        r = server.http.post("/v1/completions", json={"model": "tiny", "prompt": prompt, field: value})
        assert r.status_code == 400, (field, r.text)
        error = r.json()["error"]
        assert message in error["message"], error
        assert (error["param"], error["code"]) == (field, "invalid_request")


def test_bad_requests_and_settings_get_clear_errors(
    server: RunningServer, torch_zoo: dict[str, Path]
) -> None:
    add(server, torch_zoo["plain"], "no-template")
    load(server, "no-template")
    r = server.http.post(
        "/v1/chat/completions", json={"model": "no-template", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert r.status_code == 400
    assert "no chat template" in r.json()["error"]["message"]
    long = server.http.post("/v1/completions", json={"model": "no-template", "prompt": "the cat " * 400})
    assert long.status_code == 400
    assert "context is 512" in long.json()["error"]["message"]
    ok = server.http.post(
        "/v1/completions", json={"model": "no-template", "prompt": "the cat", "max_tokens": 3}
    )
    assert ok.status_code == 200
    add(server, torch_zoo["chat"], "tiny")
    refused = server.http.put("/api/models/tiny/settings", json={"options": {"quantization": "int3"}})
    assert refused.status_code == 400
    assert "quantization" in refused.json()["error"]["message"]
    bad = server.http.put(
        "/api/models/tiny/settings", json={"options": {"peft_adapters": [{"name": "nope"}]}}
    )
    assert bad.status_code == 200  # a name is checked when the model loads
    assert "not an adapter of 'tiny'" in server.http.post("/api/models/tiny/load", json={}).text
    assert server.http.get("/api/health").status_code == 200


def test_a_missing_environment_fails_at_once_with_the_command(tmp_path: Path, minilm: Path) -> None:
    """Where the server installs nothing by itself (MODELYARD_AUTO_INSTALL=false)."""
    from conftest import serve

    with serve(tmp_path / "home", python_envs="managed", auto_install=False) as server:
        add(server, minilm, "minilm")
        r = server.http.post("/api/models/minilm/load", json={})
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["message"] == "the sentence-transformers environment is not installed"
        assert "`modelyard backends install sentence-transformers --variant cpu`" in err["hint"]
        assert server.http.get("/api/instances").json() == []


def test_no_engine_outlives_a_crashed_server(tmp_path: Path, minilm: Path) -> None:
    """Engines die with the server that started them, the runner too (its command line has no
    "llama" in it); what an earlier crash left behind is stopped when the server starts."""
    import os
    import signal
    import subprocess
    import sys

    import psutil

    from conftest import free_port
    from modelyard.runtime.local import OWNER_VAR
    from waiting import eventually

    home = tmp_path / "home"
    home.mkdir()
    leftover = subprocess.Popen(
        ["sleep", "300"], env={OWNER_VAR: str(home.resolve())}, start_new_session=True
    )
    port = free_port()
    env = {**os.environ, "MODELYARD_HOME": str(home), "MODELYARD_PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    cli = [sys.executable, "-m", "modelyard.cli.main", "serve"]
    with subprocess.Popen(cli, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as server:

        def up() -> bool:
            try:
                return httpx.get(url + "/api/health").status_code == 200
            except httpx.HTTPError:
                return False

        eventually(up, timeout=60)
        assert leftover.wait(timeout=10) == -signal.SIGKILL  # stopped at start, whatever it runs
        with httpx.Client(base_url=url, timeout=120) as http:
            http.post("/api/models", json={"path": str(minilm), "name": "minilm"}).raise_for_status()
            http.post("/api/models/minilm/load", json={}).raise_for_status()
            (inst,) = http.get("/api/instances").json()
        engine = psutil.Process(inst["pid"])
        assert "modelyard.runners" in engine.cmdline()
        server.kill()  # no chance to stop anything
    engine.wait(timeout=30)
    assert not engine.is_running()


@pytest.fixture
def server(tmp_path: Path) -> Any:
    from conftest import serve

    with serve(tmp_path / "home", health_timeout=120) as running:
        yield running
