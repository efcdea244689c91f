"""load, ps, logs, run and unload from the CLI, against a real server and engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import RunningServer
from conftest import cli_run as run
from runtime.conftest import add

pytestmark = pytest.mark.engine


def test_load_ps_logs_run_unload(cli: CliRunner, server: RunningServer, gemma: Path) -> None:
    add(server, gemma, name="gemma3")
    run(cli, "settings", "gemma3", "--set", "n_ctx=1024", "--set", "threads=2")
    # a check before deploying: where it would run, and why not (nothing starts)
    checked = run(cli, "deploy", "gemma3", "-r", "2", "--selector", "zone=a", "--dry-run", code=1)
    assert "gemma3 on llama.cpp: 0 of 2 would be placed" in checked
    assert "its labels do not match the selector zone=a" in checked
    assert "gemma3 on llama.cpp: 1 instance would be placed" in run(cli, "deploy", "gemma3", "--dry-run")
    assert "'nope' is not in the library" in run(cli, "deploy", "nope", "--dry-run", code=1)
    # a backend that does not run its architecture: refused for every worker, with those that do
    refused = run(cli, "deploy", "gemma3", "--backend", "vllm", "--dry-run", code=1)
    assert "the vllm backend does not run 'gemma3'" in refused
    assert "backends that do: llama.cpp, llama-cpp-python" in refused
    assert json.loads(run(cli, "ps", "--json")) == []
    # where it may go: this machine has no labels and no GPU 0 of a worker w1
    refused = run(cli, "load", "gemma3", "-r", "3", "--placement", "spread", "--selector", "zone=a", code=1)
    assert "1 node left out by the selector zone=a" in refused
    refused = run(cli, "load", "gemma3", "--gpus", "w1:0,w1:1", code=1)
    assert "the chosen GPUs' worker w1 is not in the cluster" in refused
    assert "is not a GPU" in run(cli, "load", "gemma3", "--gpus", "w1:x", code=1)
    assert "gemma3 serving (instance" in run(cli, "load", "gemma3", "--placement", "binpack")
    (inst,) = json.loads(run(cli, "ps", "--json"))
    assert inst["state"] == "running"
    assert inst["memory"] > 0
    table = run(cli, "ps")
    assert "gemma3" in table
    assert "running" in table
    assert "local" in table  # its worker: this machine
    # a drain with no other worker: the instance stays, and the drain says why
    drained = run(cli, "workers", "drain", "local", code=1)
    assert f"gemma3: instance {inst['id']} stays: " in drained
    assert "local drained: 0 instances moved, 1 stayed" in drained
    assert "local (drained)" in run(cli, "workers")
    assert "takes new instances again" in run(cli, "workers", "undrain", "local")
    assert "--ctx-size 1024" in run(cli, "logs", "gemma3", "-n", "100000") or "--n_ctx 1024" in run(
        cli, "logs", str(inst["id"]), "-n", "100000"
    )
    out = run(
        cli,
        "run",
        "gemma3",
        "The capital of France is Paris. The capital of Germany is",
        "--raw",
        "--max-tokens",
        "6",
        "--temperature",
        "0",
    )
    assert "Berlin" in out
    # chat on a base model: the clear error, from the CLI too
    err = run(cli, "run", "gemma3", "hi", code=1)
    assert "has no chat template" in err
    assert "placement: binpack" in run(cli, "deployments", "show", "gemma3")
    assert "unloaded gemma3" in run(cli, "unload", "gemma3")
    assert "no model is loaded" in run(cli, "ps")
    assert "is not loaded" in run(cli, "unload", "gemma3", code=1)


def test_estimate(cli: CliRunner, server: RunningServer, gemma: Path) -> None:
    add(server, gemma, name="gemma3")
    out = run(cli, "estimate", "gemma3", "--n-ctx", "8192")
    assert "gemma3 at n_ctx 8192" in out
    assert "kv cache" in out
    assert "prompt cache" in out  # its own line: a ceiling, filled as prompts are cached
    assert "at most, as prompts are cached" in out
    assert "fits" in out
    e = json.loads(run(cli, "estimate", "gemma3", "--n-ctx", "2048", "--cache-type-k", "q8_0", "--json"))
    assert e["n_ctx"] == 2048
    assert e["fits"] is True
    assert e["max_ctx"] == 32768  # the model's own context fits this machine
    assert "cache_type_k" in run(cli, "estimate", "gemma3", "--cache-type-k", "q3", code=1)
