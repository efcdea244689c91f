"""vLLM for real, on the CPU: a tiny Llama built from a config with a trained tokenizer and a
chat template, deployed on the vllm backend (its managed environment, which scripts/test
installs once per machine) and answered through the gateway with the official openai client.
One modelyard server and one vLLM engine for the module: vLLM takes about 30 s to start."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import torch_models as tm
from conftest import RunningServer, serve
from otlp import Receiver
from waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.engine]

ENVS = Path(os.environ.get("MODELYARD_TEST_ENVS", Path.home() / ".modelyard" / "envs"))
SETTINGS = {"n_ctx": 512, "precision": "float32", "enforce_eager": True, "kv_cache_memory_bytes": 64 << 20}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """Where the module's server and its vLLM engine send their spans."""
    found = Receiver()
    found.url = found.start()
    yield found
    found.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[RunningServer]:
    assert (ENVS / "vllm-cpu-1" / "modelyard-env.json").is_file(), (
        f"scripts/test installs vLLM into {ENVS}: `modelyard backends install vllm --variant cpu`"
    )
    root = tmp_path_factory.mktemp("vllm")
    model = tm.write_chat_model(root / "tiny-llama", hidden=128)  # head dim 32: vLLM's CPU kernels take it
    home = root / "home"
    home.mkdir()
    (home / "envs").symlink_to(ENVS)
    with serve(home, one_per_category=False, exclusive=[], otel_endpoint=receiver.url) as server:
        r = server.http.post(
            "/api/deployments",
            json={"path": str(model), "name": "tiny", "backend": "vllm", "settings": SETTINGS},
            timeout=300,
        )
        assert r.status_code == 201, r.text
        yield server


def direct(server: RunningServer, name: str = "tiny") -> tuple[str, dict[str, str]]:
    """The vLLM engine's own URL and the key requests to it carry (only the gateway knows it)."""
    (slot,) = server.app.state.runtime.queue(name).slots.values()
    return slot.url, dict(slot.headers)


def test_a_deployment_on_vllm_answers_through_the_gateway(served: RunningServer) -> None:
    dep = served.http.get("/api/deployments/tiny").json()
    assert dep["serving_backend"] == "vllm"
    (inst,) = dep["instances"]
    cmdline = Path(f"/proc/{inst['pid']}/cmdline").read_bytes().decode().split("\0")
    assert "vllm.entrypoints.openai.api_server" in cmdline
    assert cmdline[cmdline.index("--max-model-len") + 1] == "512"
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["tiny"]
    chat = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello world"}], max_tokens=5, temperature=0
    )
    assert chat.choices[0].message.content
    assert chat.usage is not None
    assert chat.usage.completion_tokens == 5
    chunks = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "the quick brown fox"}],
        max_tokens=6,
        temperature=0,
        stream=True,
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    again = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "the quick brown fox"}],
        max_tokens=6,
        temperature=0,
    )
    assert streamed == again.choices[0].message.content  # greedy: the same either way
    # the Responses API, translated onto vLLM's chat completions
    answer = client.responses.create(
        model="tiny", input="the quick brown fox", max_output_tokens=6, temperature=0
    )
    assert answer.output_text == streamed
    assert answer.usage is not None
    assert answer.usage.output_tokens == 6
    counted = client.responses.input_tokens.count(model="tiny", input="the quick brown fox")
    assert counted.input_tokens == answer.usage.input_tokens  # vLLM's own /tokenize


def test_greedy_tokens_equal_vllm_called_directly(served: RunningServer) -> None:
    url, headers = direct(served)
    body: dict[str, Any] = {
        "model": "tiny",
        "prompt": "paris is the capital of",
        "max_tokens": 12,
        "temperature": 0,
        "logprobs": 1,
        "top_k": 1,  # vLLM's own sampling field: the gateway passes it through
        "min_tokens": 12,
    }
    through = httpx.post(served.url + "/v1/completions", json=body, timeout=120)
    straight = httpx.post(url + "/v1/completions", json=body, headers=headers, timeout=120)
    assert through.status_code == 200, through.text
    assert straight.status_code == 200, straight.text
    tokens = through.json()["choices"][0]["logprobs"]["tokens"]
    assert len(tokens) == 12
    assert tokens == straight.json()["choices"][0]["logprobs"]["tokens"]
    # the engine's port is no way around the gateway
    assert httpx.post(url + "/v1/completions", json=body, timeout=60).status_code == 401


def test_gptq_and_awq_go_to_vllm(served: RunningServer, tmp_path: Path) -> None:
    """GPTQ and AWQ checkpoints (a tiny Llama quantized by gptqmodel here) deploy on vLLM, the
    first of their loaders where it is installed, and answer through the gateway with vLLM's own
    greedy tokens. vLLM runs these at 16-bit only."""
    base = tm.write_chat_model(tmp_path / "base", hidden=128)
    for method in ("gptq", "awq"):
        folder = tm.write_quantized(tmp_path / method, base, method)
        settings = {**SETTINGS, "precision": "bfloat16"}
        r = served.http.post(
            "/api/deployments", json={"path": str(folder), "name": method, "settings": settings}, timeout=300
        )
        assert r.status_code == 201, r.text
        assert served.http.get(f"/api/deployments/{method}").json()["serving_backend"] == "vllm"
        url, headers = direct(served, method)
        body = {"model": method, "prompt": "hello world", "max_tokens": 8, "temperature": 0, "logprobs": 1,
                "min_tokens": 8}  # fmt: skip
        through = httpx.post(served.url + "/v1/completions", json=body, timeout=120)
        straight = httpx.post(url + "/v1/completions", json=body, headers=headers, timeout=120)
        assert through.status_code == 200, through.text
        tokens = through.json()["choices"][0]["logprobs"]["tokens"]
        assert len(tokens) == 8
        assert tokens == straight.json()["choices"][0]["logprobs"]["tokens"]
        assert served.http.delete(f"/api/deployments/{method}").status_code in (200, 204)


def test_vllm_arguments_settings_and_estimate(served: RunningServer) -> None:
    r = served.http.patch("/api/deployments/tiny", json={"args": ["--no-such-vllm-flag"]})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == "vllm has no flag --no-such-vllm-flag"
    estimate = served.http.get("/api/models/tiny/estimate").json()
    assert estimate["runtime"] == "vllm"
    assert estimate["ram"]["kv_cache"] == 64 << 20
    r = served.http.put("/api/models/tiny/settings", json={"options": {"gpu_memory_utilization": 2}})
    assert r.status_code == 400
    assert "gpu_memory_utilization" in r.json()["error"]["message"]


def test_agents_on_vllm(served: RunningServer) -> None:
    """The agents conformance requests on vLLM, whose own guided decoding forces the calls."""
    import json

    import jsonschema

    from agent_requests import ASK, PERSON, TOOLS, valid_calls

    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    named = client.chat.completions.create(
        model="tiny", messages=ASK, tools=TOOLS, max_tokens=460, temperature=0,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )  # fmt: skip
    assert [name for name, _ in valid_calls(named.choices[0].message.tool_calls)] == ["get_weather"]
    required = client.chat.completions.create(
        model="tiny",
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        max_tokens=300,
        temperature=0,  # type: ignore[arg-type]
    )
    assert valid_calls(required.choices[0].message.tool_calls)
    schema_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "strict": True},
    }
    answer = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Describe a person."}],
        response_format=schema_format, max_tokens=200, temperature=0,
    )  # fmt: skip
    assert answer.choices[0].finish_reason == "stop"
    # strict=False: vLLM's xgrammar 0.2 lets raw control characters into a string with a
    # maxLength (the gateway's forced calls take them and write them out escaped; the runner
    # masks them); the schema holds
    jsonschema.validate(json.loads(answer.choices[0].message.content or "", strict=False), PERSON)


def test_chat_fields_on_vllm(served: RunningServer) -> None:
    """The table in docs/api.md, vLLM's column: what it honours and what it refuses by name."""
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    ask: Any = [{"role": "user", "content": "count from one to twenty"}]

    def create(**fields: Any) -> Any:
        return client.chat.completions.create(model="tiny", messages=ask, **fields)

    capped = create(max_completion_tokens=3, temperature=0, extra_body={"ignore_eos": True})
    assert capped.usage.completion_tokens == 3
    scored = create(max_tokens=2, logprobs=True, top_logprobs=3, extra_body={"ignore_eos": True})
    assert [len(t.top_logprobs) for t in scored.choices[0].logprobs.content] == [3, 3]
    assert len(create(max_tokens=2, n=2, temperature=1).choices) == 2
    seeded = [create(max_tokens=6, temperature=1.5, seed=11).choices[0].message.content for _ in range(2)]
    assert seeded[0] == seeded[1]
    chunks = list(
        create(
            max_tokens=2, stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True}
        )
    )
    assert chunks[-1].usage.completion_tokens == 2
    kept = create(
        max_tokens=2, user="u1", metadata={"run": "1"}, prompt_cache_key="c1", reasoning_effort="none"
    )
    assert kept.choices
    with pytest.raises(openai.BadRequestError, match="before a suffix"):
        client.completions.create(
            model="tiny", prompt="def add(a, b):", suffix="\nprint(add(1, 2))", max_tokens=4
        )


def test_vllm_adds_its_spans_under_the_gateways(served: RunningServer, receiver: Receiver) -> None:
    """The gateway's trace of a request goes on into vLLM: its own span of the request (sent to
    the same OTLP/HTTP receiver) is a child of the gateway's."""
    trace = "5bf92f3577b34da6a3ce929d0e0e4737"
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="none", max_retries=0)
    answer = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=4,
        extra_headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
    )
    assert answer.choices[0].message.content is not None

    def spans() -> dict[str, tuple[str, str, str, str, str]] | None:
        mine = {(s[0], s[1]): s for s in receiver.traced if s[2] == trace}
        return mine if len({service for service, _ in mine}) == 2 else None

    found = eventually(spans, timeout=30, what="spans of the gateway and of vLLM")
    gateway = found["modelyard", "POST /v1/chat/completions"]
    (engine,) = [s for (service, _), s in found.items() if service == "vllm"]
    assert engine[4] == gateway[3]  # its parent: the gateway's span of the request
