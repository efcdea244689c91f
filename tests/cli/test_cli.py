"""The CLI against a real server, as a user types it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import cli_run as run
from conftest import free_port
from modelyard.cli.main import app

pytestmark = pytest.mark.engine


def test_import_ls_show_edit_rm(cli: CliRunner, zoo: Path) -> None:
    out = run(cli, "import", str(zoo / "chat/tiny-llama-q8.gguf"), "-d", "a tiny llama")
    assert "imported tiny-llama-q8: chat, gguf Q8_0, llama" in out
    run(cli, "import", str(zoo / "hf/tiny-minilm"))
    table = run(cli, "ls")
    assert "tiny-llama-q8" in table
    assert "Q8_0" in table
    assert "tiny-minilm" in table
    listed = json.loads(run(cli, "ls", "--json", "-c", "embedding"))
    assert [m["name"] for m in listed] == ["tiny-minilm"]
    detail = run(cli, "show", "tiny-llama-q8")
    assert "a tiny llama" in detail
    assert "llama.cpp" in detail
    assert "512" in detail
    shown = json.loads(run(cli, "show", "tiny-llama-q8", "--json"))
    assert shown["facts"]["head_count_kv"] == 2
    run(cli, "edit", "tiny-llama-q8", "--name", "tl", "-d", "renamed")
    assert json.loads(run(cli, "show", "tl", "--json"))["description"] == "renamed"
    run(cli, "rm", "tl", input="n\n", code=1)  # declined: still there
    run(cli, "show", "tl")
    assert "files kept" in run(cli, "rm", "tl", "-y")
    err = run(cli, "show", "tl", code=1)
    assert "no model named 'tl'" in err
    assert "modelyard ls" in err


def test_settings_lora_component(cli: CliRunner, zoo: Path) -> None:
    run(cli, "import", str(zoo / "chat-lora/tiny-base.gguf"))
    out = run(cli, "settings", "tiny-base", "--set", "n_ctx=256", "--set", "flash_attn=on")
    assert "* n_ctx            256" in out
    saved = json.loads(run(cli, "settings", "tiny-base", "--unset", "flash_attn", "--json"))["saved"]
    assert saved == {"n_ctx": 256}
    assert "n_ctx: Input should be greater" in run(cli, "settings", "tiny-base", "--set", "n_ctx=-5", code=1)
    assert "added tiny-base:style" in run(
        cli, "lora", "add", "tiny-base", str(zoo / "chat-lora/tiny-lora.gguf"), "-n", "style"
    )
    assert "style" in run(cli, "lora", "ls", "tiny-base")
    run(cli, "lora", "rm", "tiny-base", "style")
    run(cli, "component", "set", "tiny-base", "mmproj", str(zoo / "vision/mmproj-tiny-vl-f16.gguf"))
    assert json.loads(run(cli, "show", "tiny-base", "--json"))["category"] == "multimodal"


def test_scan_and_inspect(cli: CliRunner, zoo: Path) -> None:
    out = run(cli, "scan", str(zoo))
    assert "19 imported, 0 already in the library, 0 skipped, 0 failed" in out
    assert "0 imported" in run(cli, "scan", str(zoo))
    out = run(cli, "inspect", str(zoo / "hf/tiny-6.5bpw-exl2"))
    assert "EXL2 6.5bpw" in out
    assert "exllamav2" in out


def test_bad_input_messages(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    err = run(cli, "import", str(bad), code=1)
    assert "error:" in err
    assert "broken.gguf" in err
    assert "no such file" in run(cli, "import", str(tmp_path / "nope.gguf"), code=1)


def test_server_not_running(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MODELYARD_URL", url)
    result = CliRunner().invoke(app, ["ls"])
    assert result.exit_code == 1
    assert f"the modelyard server is not running at {url}" in result.output
    assert "modelyard serve" in result.output


def test_inspect_works_without_server(monkeypatch: pytest.MonkeyPatch, gemma: Path) -> None:
    monkeypatch.setenv("MODELYARD_URL", f"http://127.0.0.1:{free_port()}")
    out = json.loads(CliRunner().invoke(app, ["inspect", str(gemma), "--json"]).output)
    assert (out["architecture"], out["quantization"], out["context_length"]) == ("gemma3", "Q4_K_M", 32768)


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        ("http://127.0.0.1:1", "cannot connect to 127.0.0.1:1"),
        ("http://no-such-hub.invalid", "cannot resolve"),
    ],
)
def test_an_unreachable_hub_is_said_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoint: str, said: str
) -> None:
    """No network, or a wrong endpoint: the hub's own client would retry for minutes."""
    import time

    from conftest import serve

    with serve(tmp_path / "home", hf_endpoint=endpoint) as server:
        monkeypatch.setenv("MODELYARD_URL", server.url)
        for args in (["search", "qwen3", "--gguf"], ["files", "org/model"], ["pull", "org/model", "-d"]):
            start = time.monotonic()
            out = run(CliRunner(), *args, code=1)
            assert time.monotonic() - start < 5, args
            assert said in out
            assert "check the network" in out


def test_ps_fits_the_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 80 columns the least useful columns go, a long name wraps, and no state, id or pid is
    cut short; --json keeps everything."""
    import builders as b
    from conftest import serve

    name = "a-rather-long-model-name-for-an-eighty-column-terminal"
    (path,) = b.write_llama_gguf(tmp_path / f"{name}.gguf", chat_template=b.CHAT_TEMPLATE)
    with serve(tmp_path / "home") as server:
        server.http.post("/api/models", json={"path": str(path)}).raise_for_status()
        server.http.post(f"/api/models/{name}/load", json={}).raise_for_status()
        (inst,) = server.http.get("/api/instances").json()
        monkeypatch.setenv("MODELYARD_URL", server.url)
        for columns in ("80", "60"):
            monkeypatch.setenv("COLUMNS", columns)
            table = run(CliRunner(), "ps")
            lines = table.splitlines()
            assert all(len(line) <= int(columns) for line in lines), table
            assert "…" not in table
            cells = lines[1].split()
            for value in (str(inst["id"]), "running", str(inst["pid"]), "0"):
                assert value in cells, (value, table)
        monkeypatch.setenv("COLUMNS", "80")
        (listed,) = json.loads(run(CliRunner(), "ps", "--json"))
        assert listed["url"] == inst["url"]
        assert listed["model"] == name
