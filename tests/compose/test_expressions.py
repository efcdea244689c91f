"""model-compose's ${...} expressions and files, read as the model-compose chapter writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from compose.chapter import TEXT_CLASSIFICATION
from modelyard.compose import expressions
from modelyard.compose.expressions import ExpressionError
from modelyard.compose.files import load
from modelyard.errors import InvalidSpec

pytestmark = pytest.mark.unit


def test_a_whole_expression_keeps_its_type_and_text_around_one_is_text() -> None:
    scope = {"input": {"prompt": "hi", "n": "3", "t": "0.5"}, "result": {"embedding": [0.1, 0.2]}}
    assert expressions.render("${result.embedding}", scope) == [0.1, 0.2]
    assert expressions.render("${input.prompt as text}", scope) == "hi"
    assert expressions.render("say ${input.prompt} ${input.n} times", scope) == "say hi 3 times"
    assert expressions.render("${input.n as number}", scope) == 3
    assert expressions.render("${input.t as number}", scope) == 0.5
    assert expressions.render({"m": [{"content": "${input.prompt}"}]}, scope) == {"m": [{"content": "hi"}]}


def test_defaults_indexes_and_each_item() -> None:
    scope = {
        "input": {},
        "response": [{"choices": [{"delta": {"content": "a"}}]}, {"choices": [{"delta": {"content": "b"}}]}],
    }
    assert expressions.render("${input.temperature as number | 0.7}", scope) == 0.7
    assert expressions.render("${response[].choices[0].delta.content}", scope) == ["a", "b"]
    assert expressions.render("${response[1].choices[0].delta.content}", scope) == "b"
    usage_too = {"response": [*scope["response"], {"choices": [], "usage": {"total_tokens": 3}}]}
    assert expressions.render("${response[].choices[0].delta.content}", usage_too) == ["a", "b", None]
    assert expressions.render(
        "${jobs.embed-query.output.query_vector}",
        {"jobs": {"embed-query": {"output": {"query_vector": [1]}}}},
    ) == [1]


def test_what_is_missing_or_wrong_is_named() -> None:
    with pytest.raises(ExpressionError) as missing:
        expressions.render("${input.text as text}", {"input": {}})
    assert missing.value.message == "${input.text as text}: nothing is there"
    assert missing.value.hint == "give it: --input text=..."
    with pytest.raises(ExpressionError, match="'inputs' is no source"):
        expressions.parse("inputs.text")
    with pytest.raises(ExpressionError, match="no type 'txt'"):
        expressions.parse("input.text as txt")
    with pytest.raises(ExpressionError, match="'many' is not number"):
        expressions.render("${input.n as number}", {"input": {"n": "many"}})


def test_the_chapters_files_read_as_written(tmp_path: Path) -> None:
    read = load(TEXT_CLASSIFICATION, "c.yaml", base=tmp_path).chosen(None)
    assert (read.task, read.model, read.name()) == (
        "text-classification",
        "distilbert-base-uncased-finetuned-sst-2-english",
        "distilbert-base-uncased-finetuned-sst-2-english",
    )
    local = """\
component:
  type: model
  task: text-generation
  driver: llamacpp
  model:
    provider: local
    path: ./models/llama-2-7b-chat.Q4_K_M.gguf
    format: gguf
"""
    read = load(local, "g.yaml", base=tmp_path).chosen(None)
    assert read.model.path == str(tmp_path / "models" / "llama-2-7b-chat.Q4_K_M.gguf")  # type: ignore[union-attr]
    assert read.name() == "llama-2-7b-chat.Q4_K_M"
    assert read.spec(read.name()).backend() == "llama.cpp"


def test_a_wrong_file_names_its_line_and_field(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec) as wrong:
        load(TEXT_CLASSIFICATION.replace("text-classification", "text-sorting"), "c.yaml", base=tmp_path)
    assert wrong.value.message.startswith(
        "c.yaml:3: component.task: 'text-sorting' is not one modelyard runs"
    )
    with pytest.raises(InvalidSpec) as wrong:
        load(TEXT_CLASSIFICATION.replace("${result.label}", "${results.label}"), "c.yaml", base=tmp_path)
    assert "c.yaml:6: component.output" in wrong.value.message
    assert "'results' is no source" in wrong.value.message
    unsloth = "component:\n  type: model\n  task: text-generation\n  driver: unsloth\n  model: unsloth/llama-2-7b-bnb-4bit\n"
    with pytest.raises(
        InvalidSpec, match=r"u\.yaml:4: component\.driver: 'unsloth' is not one modelyard has"
    ):
        load(unsloth, "u.yaml", base=tmp_path)  # the chapter's: Unsloth is a trainer's, not served here
    server = "component:\n  type: http-server\n  manage:\n    port: 8000\n"
    with pytest.raises(InvalidSpec, match=r"s\.yaml:1: component: type 'http-server' starts the file's own"):
        load(server, "s.yaml", base=tmp_path)
    with pytest.raises(InvalidSpec, match="it has no component"):
        load("components: []\n", "w.yaml", base=tmp_path)
    search = """\
components:
  - id: embedder
    type: model
    task: text-embedding
    model: ./minilm
workflow:
  title: Document Search
  jobs:
    - id: embed-query
      component: embedder
    - id: search
      component: vector-store
      action: search
"""
    with pytest.raises(InvalidSpec, match="job search runs 'vector-store', which the file does not have"):
        load(search, "w.yaml", base=tmp_path)
    looped = (
        search.replace("      action: search\n", "      depends_on: [embed-query]\n")
        .replace("      component: embedder\n", "      component: embedder\n      depends_on: [search]\n")
        .replace("component: vector-store", "component: embedder")
    )
    with pytest.raises(InvalidSpec, match="embed-query, search depend on each other"):
        load(looped, "w.yaml", base=tmp_path)
