"""What agents ask of every engine, asked the same way of each with the official clients: forced
tool calls (a named function, "required" with parallel calls), streamed tool-call deltas, JSON
schema and JSON object answers, a conversation that carries tool results, and Anthropic's forced
tool use. The models are tiny or random: only constrained decoding makes their answers valid,
which is the point."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import anthropic
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from agent_requests import ASK, PERSON, TOOLS, WEATHER, valid_calls
from conftest import RunningServer, serve
from torch_models import CHATML, write_chat_model

pytestmark = pytest.mark.engine


ENGINES = ["transformers", "llama.cpp"]
# a template that thinks (as Qwen 3's): the generation prompt opens a thought, unless
# enable_thinking is false; earlier thoughts are written back as they were
THINKING = (
    "{%- for m in messages -%}"
    "{%- if m.role == 'assistant' -%}<|im_start|>assistant\n"
    "{% if m.reasoning_content %}<think>\n{{ m.reasoning_content }}\n</think>\n\n{% endif %}"
    "{{ m.content }}<|im_end|>\n"
    "{%- else -%}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{%- endif -%}"
)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, torch_zoo: dict[str, Path], gemma: Path
) -> Iterator[RunningServer]:
    """One server with a model on each engine: the tiny random transformers chat model, and
    Gemma 3 270M (a base model: a ChatML template from its settings) on llama.cpp."""
    root = tmp_path_factory.mktemp("agents")
    thinking = write_chat_model(root / "tiny-thinking", chat_template=THINKING)
    gemma_thinking = root / "gemma-thinking.gguf"
    os.link(gemma, gemma_thinking)  # the same file, once more in the library
    with serve(root / "home", one_per_category=False, exclusive=[]) as running:
        for name, path in (("transformers", torch_zoo["chat"]), ("llama.cpp", gemma),
                           ("transformers-thinking", thinking), ("llama.cpp-thinking", gemma_thinking)):  # fmt: skip
            r = running.http.post("/api/models", json={"path": str(path), "name": name})
            assert r.status_code == 201, r.text
        for name, template in (("llama.cpp", CHATML), ("llama.cpp-thinking", THINKING)):
            options = {"chat_template": template, "n_ctx": 2048, "threads": 2}
            r = running.http.put(f"/api/models/{name}/settings", json={"options": options})
            assert r.status_code == 200, r.text
        for name in [*ENGINES, *(f"{e}-thinking" for e in ENGINES)]:
            r = running.http.post(f"/api/models/{name}/load", json={})
            assert r.status_code == 200, r.text
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_a_named_function_is_always_called(client: openai.OpenAI, engine: str) -> None:
    choice = {"type": "function", "function": {"name": "get_weather"}}
    answer = client.chat.completions.create(
        model=engine,
        messages=ASK,
        tools=TOOLS,
        tool_choice=choice,
        max_tokens=200,
        temperature=0,  # type: ignore[arg-type]
    )
    message = answer.choices[0].message
    assert answer.choices[0].finish_reason == "tool_calls"
    assert message.content is None  # a call never leaks into the content
    assert [name for name, _ in valid_calls(message.tool_calls)] == ["get_weather"]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_required_gives_one_or_more_valid_calls(client: openai.OpenAI, engine: str) -> None:
    answer = client.chat.completions.create(
        model=engine,
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        max_tokens=600,
        temperature=0,  # type: ignore[arg-type]
    )
    calls = valid_calls(answer.choices[0].message.tool_calls)
    assert {name for name, _ in calls} <= {"get_weather", "get_time"}
    single = client.chat.completions.create(
        model=engine, messages=ASK, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,  # type: ignore[arg-type]
        max_tokens=200, temperature=0,
    )  # fmt: skip
    assert len(valid_calls(single.choices[0].message.tool_calls)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_streamed_tool_call_deltas_add_up_to_valid_calls(client: openai.OpenAI, engine: str) -> None:
    stream = client.chat.completions.create(
        model=engine, messages=ASK, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}},  # type: ignore[arg-type]
        max_tokens=200, temperature=0, stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    reasons, usage, content = [], None, ""
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasons.append(choice.finish_reason)
            for delta in choice.delta.tool_calls or []:
                if delta.function and delta.function.name:
                    names[delta.index] = delta.function.name
                arguments[delta.index] = arguments.get(delta.index, "") + (
                    delta.function.arguments or "" if delta.function else ""
                )
    assert content == ""
    assert names == {0: "get_weather"}
    jsonschema.validate(json.loads(arguments[0]), WEATHER)
    assert reasons[-1] == "tool_calls"
    assert usage is not None
    assert usage.completion_tokens > 0


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_json_schema_and_json_object_answers_always_parse(client: openai.OpenAI, engine: str) -> None:
    schema_format = {
        "type": "json_schema",
        "json_schema": {"name": "person", "schema": PERSON, "strict": True},
    }
    for temperature in (0.0, 1.0):
        answer = client.chat.completions.create(
            model=engine, messages=[{"role": "user", "content": "Describe a person."}],
            response_format=schema_format, max_tokens=120, temperature=temperature, seed=7,  # type: ignore[arg-type]
        )  # fmt: skip
        assert answer.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(answer.choices[0].message.content or ""), PERSON)
    obj = client.chat.completions.create(
        model=engine, messages=[{"role": "user", "content": "Any JSON object."}],
        response_format={"type": "json_object"}, max_tokens=60, temperature=0,
    )  # fmt: skip
    text = obj.choices[0].message.content or ""
    if obj.choices[0].finish_reason == "stop":  # a random model may run out of tokens mid-object
        assert isinstance(json.loads(text), dict)
    assert text.startswith("{")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_a_conversation_with_tool_results_goes_on(client: openai.OpenAI, engine: str) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    messages: list[Any] = [
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
    ]
    answer = client.chat.completions.create(
        model=engine,
        messages=messages,
        tools=TOOLS,
        max_tokens=8,
        temperature=0,  # type: ignore[arg-type]
    )
    assert answer.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_anthropic_forced_tool_use(server: RunningServer, engine: str) -> None:
    claude = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    tools: list[Any] = [{"name": "get_weather", "description": "the forecast", "input_schema": WEATHER}]
    message = claude.messages.create(
        model=engine,
        max_tokens=600,  # llama.cpp's JSON grammar lets a tiny random model put whitespace between fields
        messages=ASK,
        tools=tools,
        tool_choice={"type": "tool", "name": "get_weather"},  # type: ignore[arg-type]
    )
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use"
    assert block.name == "get_weather"
    jsonschema.validate(block.input, WEATHER)
    with claude.messages.stream(
        model=engine,
        max_tokens=600,
        messages=ASK,
        tools=tools,
        tool_choice={"type": "any"},  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert uses
    assert final.stop_reason == "tool_use"


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_thoughts_come_apart_from_the_answer(client: openai.OpenAI, engine: str) -> None:
    """A template that thinks: the thought is reasoning_content, the rest content; a budget ends
    the thought after so many tokens; enable_thinking false skips it; streamed the same."""
    model, ask = f"{engine}-thinking", [{"role": "user", "content": "Is the sky blue?"}]
    budget = {"thinking_budget_tokens": 6}
    answer = client.chat.completions.create(
        model=model, messages=ask, max_tokens=30, temperature=0, extra_body=budget
    )  # type: ignore[arg-type]
    message = answer.choices[0].message
    thought = (message.model_extra or {}).get("reasoning_content")
    assert thought
    assert message.content  # the budget ended the thought: there is an answer after it
    stream = client.chat.completions.create(
        model=model,
        messages=ask,
        max_tokens=30,
        temperature=0,
        extra_body=budget,
        stream=True,  # type: ignore[arg-type]
    )
    thoughts, content = "", ""
    for chunk in stream:
        for choice in chunk.choices:
            thoughts += (choice.delta.model_extra or {}).get("reasoning_content") or ""
            content += choice.delta.content or ""
    assert thoughts.strip() == thought.strip()
    assert content.strip() == (message.content or "").strip()
    off = client.chat.completions.create(
        model=model, messages=ask, max_tokens=10, temperature=0,  # type: ignore[arg-type]
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )  # fmt: skip
    assert not (off.choices[0].message.model_extra or {}).get("reasoning_content")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_anthropic_thinking_blocks(server: RunningServer, engine: str) -> None:
    claude = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    message = claude.messages.create(
        model=f"{engine}-thinking", max_tokens=30, messages=[{"role": "user", "content": "Hi"}],
        extra_body={"temperature": 0},
        thinking={"type": "enabled", "budget_tokens": 6},
    )  # fmt: skip
    kinds = [block.type for block in message.content]
    assert kinds[0] == "thinking"
    assert message.content[0].thinking  # type: ignore[union-attr]


class Forecast(BaseModel):
    summary: Annotated[str, Field(max_length=24)]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_openai_agents_loop_calls_a_local_tool(server: RunningServer, engine: str) -> None:
    """An agent of the `openai-agents` SDK on modelyard's Responses API: the model must call the
    tool (the gateway forces it), the SDK runs it, and the next turn, with the tool's output,
    ends in the agent's output type (a JSON schema the engine's constrained decoding keeps)."""
    # the SDK takes a second to import: only here
    from agents import (
        Agent,
        ModelSettings,
        OpenAIResponsesModel,
        Runner,
        RunResult,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    called: list[tuple[str, int]] = []

    @function_tool
    def get_weather(
        city: Annotated[str, Field(max_length=20)], days: Annotated[int, Field(ge=1, le=7)]
    ) -> str:
        """The forecast for a city."""
        called.append((city, days))
        return f"sunny in {city} for {days} days"

    async def run() -> RunResult:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0) as client:
            agent = Agent(
                name="forecaster",
                instructions="Give the forecast.",
                tools=[get_weather],
                output_type=Forecast,
                model=OpenAIResponsesModel(model=engine, openai_client=client),
                model_settings=ModelSettings(tool_choice="get_weather", max_tokens=200, temperature=0),
            )
            return await Runner.run(agent, "The weather in Paris for two days?", max_turns=3)

    result = asyncio.run(run())
    assert len(called) == 1  # once: the SDK lets the model choose after the call (reset_tool_choice)
    outputs = [item for item in result.new_items if item.type == "tool_call_output_item"]
    assert [item.output for item in outputs] == [f"sunny in {called[0][0]} for {called[0][1]} days"]
    assert isinstance(result.final_output, Forecast)
    stored = server.http.get(f"/v1/responses/{result.last_response_id}").json()
    assert stored["output"][-1]["type"] == "message"  # the last turn answered in text


@pytest.mark.parametrize("engine", ENGINES)
def test_input_tokens_are_counted_as_the_model_reads_them(client: openai.OpenAI, engine: str) -> None:
    """/v1/responses/input_tokens counts with the model's template and tokenizer: as many as
    the response's usage says its input had, tools and a conversation's chain included."""
    tools: Any = [
        {"type": "function", "name": "get_weather", "description": "the weather", "parameters": WEATHER}
    ]
    first = client.responses.create(model=engine, input="my name is Ann", max_output_tokens=2)
    asked: dict[str, Any] = {"instructions": "be brief", "input": "what is my name?", "tools": tools,
                             "previous_response_id": first.id}  # fmt: skip
    counted = client.responses.input_tokens.count(model=engine, **asked)
    answer = client.responses.create(model=engine, max_output_tokens=1, **asked)
    assert answer.usage is not None
    assert counted.input_tokens == answer.usage.input_tokens
    alone = client.responses.input_tokens.count(model=engine, input="what is my name?")
    assert 0 < alone.input_tokens < counted.input_tokens


@pytest.mark.parametrize("engine", ENGINES)
def test_chat_fields_are_honoured_or_refused_by_name(client: openai.OpenAI, engine: str) -> None:
    """The table in docs/api.md of what each engine honours, asked of each with the official client."""
    ask: Any = [{"role": "user", "content": "Count from one to twenty"}]

    def create(**fields: Any) -> Any:
        return client.chat.completions.create(model=engine, messages=ask, **fields)

    capped = create(max_completion_tokens=3, temperature=0)
    assert (capped.usage.completion_tokens, capped.choices[0].finish_reason) == (3, "length")
    chunks = list(create(max_tokens=2, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 2
    seeded = [create(max_tokens=8, temperature=1.5, seed=11).choices[0].message.content for _ in range(2)]
    assert seeded[0] == seeded[1]
    kept = create(
        max_tokens=2, user="u1", safety_identifier="s1", metadata={"run": "1"}, prompt_cache_key="c1"
    )
    assert kept.choices[0].finish_reason == "length"
    with pytest.raises(openai.BadRequestError, match="chat completions are not stored here"):
        create(max_tokens=2, store=True)
    with pytest.raises(openai.BadRequestError, match="before a suffix"):
        client.completions.create(
            model=engine, prompt="def add(a, b):", suffix="\nprint(add(1, 2))", max_tokens=4
        )
    if engine == "llama.cpp":
        scored = create(max_tokens=2, logprobs=True, top_logprobs=3)
        assert [len(t.top_logprobs) for t in scored.choices[0].logprobs.content] == [3, 3]
        with pytest.raises(openai.BadRequestError, match="'n'"):  # up to its parallel slots: 1 here
            create(max_tokens=2, n=2)
    else:  # the runner says which field it does not take
        with pytest.raises(openai.BadRequestError, match="logprobs"):
            create(max_tokens=2, logprobs=True)
        with pytest.raises(openai.BadRequestError, match=r"\bn\b"):
            create(max_tokens=2, n=2)

    allowed: Any = {"type": "allowed_tools", "allowed_tools": {"mode": "required",
                    "tools": [{"type": "function", "function": {"name": "get_time"}}]}}  # fmt: skip
    called = create(tools=TOOLS, tool_choice=allowed, max_tokens=200, parallel_tool_calls=False)
    calls = called.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_time"]  # one call, of the one allowed
    with pytest.raises(openai.BadRequestError, match="tool_choice allows tools the request does not give"):
        create(tools=TOOLS[:1], tool_choice=allowed)

    thinking = f"{engine}-thinking"
    off = client.chat.completions.create(
        model=thinking, messages=ask, max_tokens=10, temperature=0, reasoning_effort="none"
    )
    assert not (off.choices[0].message.model_extra or {}).get("reasoning_content")
    on = client.chat.completions.create(
        model=thinking, messages=ask, max_tokens=10, temperature=0, reasoning_effort="high"
    )
    assert (on.choices[0].message.model_extra or {}).get("reasoning_content")
