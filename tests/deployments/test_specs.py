"""Declarative specs: loading (errors name the file, line and field), apply of local, hub and
adapter entries (idempotent), --dry-run with its diff, export -> apply round trips."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import builders as b
from conftest import RunningServer, serve
from fake_tgi import FakeTgi
from fakehub import TOKEN, FakeHub
from modelyard.catalog.records import Autoscale
from modelyard.cli.main import app
from modelyard.deployments.spec import json_schema, load
from modelyard.errors import InvalidSpec

pytestmark = pytest.mark.engine


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def actions(output: str) -> list[str]:
    """The 'name: action' lines of apply's output (the changes under them are indented)."""
    return [line for line in output.splitlines() if line[:1].isalnum()]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """The model files a spec names, beside it."""
    root = tmp_path / "spec"
    b.write_llama_gguf(root / "models" / "tiny-chat.gguf", chat_template=b.CHAT_TEMPLATE)
    b.write_lora_gguf(root / "models" / "tiny-lora.gguf")
    b.write_hf_llama(root / "models" / "tiny-hf")
    b.write_peft(root / "models" / "tiny-peft")
    return root


@pytest.fixture
def server(tmp_path: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    with serve(tmp_path / "home", hf_endpoint=hub.url, one_per_category=False, exclusive=[]) as running:
        monkeypatch.setenv("MODELYARD_URL", running.url)
        monkeypatch.setenv("COLUMNS", "200")
        yield running


SPEC = """\
# a local GGUF kept running with a LoRA bound, a hub GGUF pulled on first apply, and a
# transformers model that loads with a PEFT adapter at half weight
models:
  - name: chat
    model: ./models/tiny-chat.gguf
    task: chat-completion
    driver: llamacpp
    description: the local one
    aliases: [assistant]
    settings: {n_ctx: 256}
    adapters:
      - name: style
        model: ./models/tiny-lora.gguf
    deployment:
      replicas: 1
      args: [--metrics]
      env: {LLAMA_ARG_THREADS_HTTP: "2"}
  - name: hubby
    model:
      provider: huggingface
      repository: org/tiny-GGUF
      token: ${env.SPEC_HF_TOKEN}
    quantization: Q8_0
    adapters:
      - name: hubstyle
        model: org/tiny-lora
  - name: writer
    model: ./models/tiny-hf
    task: text-generation
    device: cpu
    precision: float32
    batch_size: 2
    peft_adapters:
      - name: tone
        model: ./models/tiny-peft
        weight: 0.5
"""


def test_errors_name_the_file_line_and_field(tmp_path: Path) -> None:
    bad = "models:\n  - name: a\n    model: /x.gguf\n    deployment:\n      replicas: 65\n"
    with pytest.raises(InvalidSpec, match=r"^m\.yaml:5: models\[0\]\.deployment\.replicas: .*less than"):
        load(bad, "m.yaml")
    scaled = (
        "models:\n  - name: a\n    model: /x.gguf\n    deployment:\n      autoscale: {least: 3, most: 2}\n"
    )
    with pytest.raises(
        InvalidSpec, match=r"^m\.yaml:5: models\[0\]\.deployment\.autoscale: .*least \(3\) is more"
    ):
        load(scaled, "m.yaml")
    good = load(scaled.replace("least: 3", "least: 0"), "m.yaml").models[0].deployment
    assert good is not None
    assert good.record_fields()["autoscale"] == Autoscale(least=0, most=2)
    with pytest.raises(InvalidSpec, match=r"^m\.yaml:3: models\[0\]\.precison: .*not permitted"):
        load("models:\n  - name: a\n    precison: fp16\n    model: /x\n", "m.yaml")
    with pytest.raises(InvalidSpec, match=r"^m\.yaml:3: models\[0\]\.task: .*text-to-speech"):
        load("models:\n  - name: a\n    task: text-to-speech\n    model: /x\n", "m.yaml")
    text = "models:\n  - name: a\n    model:\n      token: ${env.NOPE}\n      provider: huggingface\n"
    with pytest.raises(InvalidSpec, match=r"^m\.yaml:4: models\[0\]\.model\.token: .*NOPE is not set"):
        load(text, "m.yaml", environ={})
    with pytest.raises(InvalidSpec, match=r"^m\.yaml:3: .*relative"):
        load("models:\n  - name: a\n    model: ./here.gguf\n", "m.yaml")
    with pytest.raises(InvalidSpec, match=r"^m\.yaml:3: models\[0\]\.model: .*not a valid repo"):
        load("models:\n  - name: a\n    model: 'ollama:Bad Name'\n", "m.yaml")
    with pytest.raises(InvalidSpec, match=r"^m\.yaml:2: not YAML"):
        load("models:\n\t- name: a\n", "m.yaml")  # a tab
    with pytest.raises(InvalidSpec, match="named twice: a"):
        load("models:\n  - {name: a, model: /x}\n  - {name: a, model: /y}\n", "m.yaml")


def test_the_path_rule_and_the_schema(tmp_path: Path) -> None:
    text = "models:\n" + "".join(
        f"  - {{name: m{i}, model: '{m}'}}\n"
        for i, m in enumerate(["./a.gguf", "~/b", "gpt2", "org/x", "/c"])
    )
    spec = load(text, "m.yaml", base=tmp_path)
    assert [m.model for m in spec.models] == [
        str(tmp_path / "a.gguf"),
        str(Path.home() / "b"),
        "gpt2",
        "org/x",
        "/c",
    ]
    schema = json_schema()
    model = schema["$defs"]["ModelSpec"]["properties"]
    assert {"task", "driver", "device", "precision", "quantization", "batch_size", "peft_adapters"} <= set(
        model
    )
    assert set(schema["$defs"]["DeploymentSpec"]["properties"]) >= {
        "replicas",
        "backend_version",
        "args",
        "env",
    }


@pytest.mark.slow
def test_apply_twice_then_export_and_apply_elsewhere(
    server: RunningServer,
    hub: FakeHub,
    files: Path,
    ggufs: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files_of = {"tiny-F32.gguf": ggufs["f32"], "tiny-Q8_0.gguf": ggufs["q8"]}
    hub.add_hf("org/tiny-GGUF", files_of, tags=["gguf"], private=True)  # only the spec's token reaches it
    hub.add_hf("org/tiny-lora", {"tiny-lora.gguf": ggufs["lora"]})
    monkeypatch.setenv("SPEC_HF_TOKEN", TOKEN)
    spec = files / "models.yaml"
    spec.write_text(SPEC)

    dry = cli("apply", "-f", str(spec), "--dry-run")
    assert "chat: would create" in dry
    assert "hubby: would create" in dry
    assert "+ from hf:org/tiny-GGUF" in dry
    assert "adapters.hubstyle: - -> org/tiny-lora" in dry
    assert server.http.get("/api/models").json() == []  # a dry run changes nothing

    out = cli("apply", "-f", str(spec))
    assert actions(out) == ["chat: created", "hubby: created", "writer: created"]
    models = {m["name"]: m for m in server.http.get("/api/models").json()}
    assert set(models) == {"chat", "hubby", "writer"}
    assert models["hubby"]["quantization"] == "Q8_0"
    assert [a["name"] for a in models["hubby"]["adapters"]] == ["hubstyle"]  # pulled and bound
    assert models["chat"]["aliases"] == ["assistant"]
    writer = server.http.get("/api/models/writer/settings").json()["saved"]
    assert writer["peft_adapters"] == [{"name": "tone", "path": None, "weight": 0.5}]
    assert writer["device"] == "cpu"
    assert writer["batch_size"] == 2
    assert [a["name"] for a in models["writer"]["adapters"]] == ["tone"]
    dep = server.http.get("/api/deployments/chat").json()
    assert dep["args"] == ["--metrics"]
    assert len(dep["instances"]) == 1
    answer = server.http.post("/v1/completions", json={"model": "assistant", "prompt": "a", "max_tokens": 2})
    assert answer.status_code == 200, answer.text

    again = cli("apply", "-f", str(spec))
    assert again.split() == ["chat:", "unchanged", "hubby:", "unchanged", "writer:", "unchanged"]

    # a change: the dry run shows the diff; apply rolls the running deployment to it
    changed = SPEC.replace("n_ctx: 256", "n_ctx: 128")
    spec.write_text(changed.replace("replicas: 1", "replicas: 2\n      placement: binpack\n      gpus: []"))
    dry = cli("apply", "-f", str(spec), "--dry-run")
    assert "chat: would change" in dry
    assert "settings.n_ctx: 256 -> 128" in dry
    assert "deployment.replicas: 1 -> 2" in dry
    assert "deployment.placement: spread -> binpack" in dry
    out = cli("apply", "-f", str(spec))
    assert "chat: updated" in out
    dep = server.http.get("/api/deployments/chat").json()
    assert len(dep["instances"]) == 2
    assert dep["options"]["n_ctx"] == 128
    assert (dep["placement"], dep["selector"], dep["cpu_offload"]) == ("binpack", {}, True)

    exported = cli("export")
    assert exported == cli("export")
    (tmp_path / "exported.yaml").write_text(exported)
    applied = cli("apply", "-f", str(tmp_path / "exported.yaml"))
    assert applied.split() == ["chat:", "unchanged", "hubby:", "unchanged", "writer:", "unchanged"]

    # the export makes the same library on a fresh server
    with serve(tmp_path / "elsewhere", one_per_category=False, exclusive=[]) as other:
        monkeypatch.setenv("MODELYARD_URL", other.url)
        out = cli("apply", "-f", str(tmp_path / "exported.yaml"))
        assert actions(out) == ["chat: created", "hubby: created", "writer: created"]
        assert cli("export") == exported
        assert len(other.http.get("/api/deployments/chat").json()["instances"]) == 2


def test_apply_refuses_what_cannot_be_done(server: RunningServer, files: Path) -> None:
    spec = files / "bad.yaml"
    spec.write_text("models:\n  - name: chat\n    model: ./models/tiny-chat.gguf\n")
    cli("apply", "-f", str(spec))
    spec.write_text("models:\n  - name: chat\n    model: ./models/tiny-hf\n")
    out = cli("apply", "-f", str(spec), code=1)
    assert "is " in out
    assert "in the library, not" in out
    spec.write_text(
        "models:\n  - name: chat\n    model: ./models/tiny-chat.gguf\n"
        "    peft_adapters: [{name: style, model: ./models/tiny-lora.gguf}]\n"
    )
    out = cli("apply", "-f", str(spec), code=1)
    assert "applies no LoRA when it loads" in out
    spec.write_text(
        "models:\n  - name: chat\n    model: ./models/tiny-chat.gguf\n    settings: {n_ctx: -4}\n"
    )
    out = cli("apply", "-f", str(spec), code=1)
    assert "n_ctx" in out
    r = server.http.post(
        "/api/specs/apply", json={"spec": {"models": [{"name": "x", "model": "./rel.gguf"}]}}
    )
    assert r.status_code == 400, r.text
    assert "relative" in r.json()["error"]["message"]
    assert [m["name"] for m in server.http.get("/api/models").json()] == ["chat"]
    schema = server.http.get("/api/schema/spec").json()
    assert schema == json.loads(json.dumps(json_schema()))


def test_the_documented_example_is_a_valid_spec(tmp_path: Path) -> None:
    section = (Path(__file__).parents[2] / "docs" / "specs.md").read_text()
    example = section[section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml"))]
    spec = load(example, "specs.md", environ={"HF_TOKEN": "hf_x", "CLOUD_KEY": "sk-x"}, base=tmp_path)
    assert [m.name for m in spec.models] == ["qwen", "phi", "writer", "nomic", "cloud"]
    qwen, phi, writer, nomic, cloud = spec.models
    assert not isinstance(cloud.model, str)
    assert (cloud.model.provider, cloud.model.token) == ("server", "sk-x")
    ((route, targets),) = [(r.name, [(t.model, t.weight) for t in r.targets]) for r in spec.routes]
    assert (route, targets) == ("chat", [("qwen", 3), ("phi", 1), ("cloud", 0)])
    assert qwen.model == str(tmp_path / "models/qwen2.5-0.5b-instruct-q4_k_m.gguf")
    assert qwen.backend() == "llama.cpp"
    assert qwen.deployment is not None
    assert qwen.deployment.backend_version == "0.3.35"
    assert not isinstance(phi.model, str)
    assert phi.model.token == "hf_x"
    assert phi.model.ref() == "hf:microsoft/Phi-3-mini-4k-instruct-gguf@main"
    assert phi.file_quantization() == "Q4_K_M"
    assert writer.setting_fields() == {"device": "cpu", "precision": "float32", "batch_size": 4}
    assert [(a.name, a.weight) for a in writer.peft_adapters or []] == [("tone", 0.5), ("facts", 1.0)]
    assert not isinstance(nomic.model, str)
    assert nomic.model.ref() == "ollama:nomic-embed-text:latest"


def test_a_server_that_already_runs_in_a_spec(server: RunningServer, tmp_path: Path) -> None:
    tgi = FakeTgi()
    url = tgi.start()
    try:
        spec = tmp_path / "servers.yaml"
        spec.write_text(
            f"models:\n  - name: far\n    model: {{provider: server, url: '{url}'}}\n    task: text-generation\n"
        )
        assert actions(cli("apply", "-f", str(spec))) == ["far: created"]
        assert actions(cli("apply", "-f", str(spec))) == ["far: unchanged"]
        far = server.http.get("/api/models/far").json()
        assert far["format"] == "remote"
        assert far["facts"]["remote_model"] == "org/tgi-model"
        exported = load(cli("export"), "export")
        (entry,) = exported.models
        assert not isinstance(entry.model, str)
        assert (entry.model.provider, entry.model.url, entry.model.repository) == (
            "server",
            url,
            "org/tgi-model",
        )
        r = server.http.post("/v1/completions", json={"model": "far", "prompt": "x", "max_tokens": 2})
        assert r.json()["choices"][0]["text"] == "word word"
    finally:
        tgi.stop()
