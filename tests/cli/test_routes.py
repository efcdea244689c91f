"""Model routes from the CLI and from a spec: a spec makes two servers that already run (one with
its key, as a remote provider is registered) and a route over them; apply is idempotent, its dry
run says what would change, export writes the route back; `modelyard routes` lists, shows,
changes and deletes it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import RunningServer, serve
from fake_engine import FakeEngine
from modelyard.cli.main import app
from modelyard.deployments.spec import load


def cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunningServer, str, str]]:
    near, far = FakeEngine(), FakeEngine()
    try:
        urls = near.start(), far.start()
        with serve(tmp_path / "home") as server:
            monkeypatch.setenv("MODELYARD_URL", server.url)
            monkeypatch.setenv("COLUMNS", "200")
            monkeypatch.setenv("FAR_KEY", "sk-far")
            yield server, *urls
    finally:
        near.stop()
        far.stop()


def test_routes_from_a_spec_and_the_cli(fleet: tuple[RunningServer, str, str], tmp_path: Path) -> None:
    server, near_url, far_url = fleet
    spec = tmp_path / "routes.yaml"
    text = f"""\
models:
  - name: near
    model: {{provider: server, url: "{near_url}"}}
  - name: far
    model: {{provider: server, url: "{far_url}", token: "${{env.FAR_KEY}}"}}
routes:
  - name: team
    description: near first, far when near cannot
    targets:
      - model: near
        weight: 3
      - model: far
        weight: 0
"""
    spec.write_text(text)
    out = cli("apply", "-f", str(spec))
    assert "route team: created" in out
    assert "targets: near=3, far=0" in out
    assert "route team: unchanged" in cli("apply", "-f", str(spec))
    spec.write_text(text.replace("weight: 0", "weight: 1"))
    out = cli("apply", "-f", str(spec), "--dry-run")
    assert "route team: would change" in out
    assert "targets: near=3, far=0 -> near=3, far=1" in out
    assert "route team: unchanged" not in cli("apply", "-f", str(spec))

    exported = load(cli("export"), "export")
    ((name, targets),) = [(r.name, [(t.model, t.weight) for t in r.targets]) for r in exported.routes]
    assert (name, targets) == ("team", [("near", 3), ("far", 1)])

    out = cli("routes", "edit", "team", "-t", "far=2", "-t", "near=0")
    assert "near first, far when near cannot" in out  # the description is kept
    assert [t["model"] for t in server.http.get("/api/routes/team").json()["targets"]] == ["far", "near"]
    body = {"model": "team", "messages": [{"role": "user", "content": "hi"}]}
    assert server.http.post("/v1/chat/completions", json=body).status_code == 200
    lines = [line.split() for line in cli("routes", "ls").splitlines()]
    assert lines == [
        ["ROUTE", "TARGET", "WEIGHT", "LOADED", "SERVED", "PASSED", "OVER"],
        ["team", "far", "2", "yes", "1", "-"],
        ["near", "0", "no", "0", "-"],
    ]
    assert "team: near first, far when near cannot" in cli("routes", "show", "team")

    assert "MODEL or MODEL=WEIGHT" in cli("routes", "create", "x", "-t", "far=lots", code=2)
    assert "no model named 'nowhere'" in cli("routes", "create", "x", "-t", "nowhere", code=1)
    assert "deleted the route team" in cli("routes", "rm", "team")
    assert "no route" in cli("routes", "ls")
    assert "no route named 'team'" in cli("routes", "rm", "team", code=1)
