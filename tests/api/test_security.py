"""Safe on a network: API keys and their scopes on every route, refusing to listen on the network
without a key, Host and Origin checks, JSON bodies under a size limit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

import builders as b
from conftest import RunningServer, free_port, serve
from modelyard.access.keys import Keys
from modelyard.catalog.store import Store
from runtime.conftest import add, load
from waiting import eventually

pytestmark = pytest.mark.engine


CLI = [sys.executable, "-m", "modelyard.cli.main"]


def make_keys(home: Path, *specs: tuple[str, str, list[str]]) -> dict[str, str]:
    """Keys made in the catalog, as `modelyard keys create` does: name -> secret."""
    home.mkdir(parents=True, exist_ok=True)
    store = Store(f"sqlite:///{home / 'catalog.db'}")
    try:
        keys = Keys(store)
        return {name: keys.create(name, scope, models)[1] for name, scope, models in specs}
    finally:
        store.close()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_network_address_needs_a_key(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    home = tmp_path / "home"
    port = free_port()
    models = tiny_models["tiny-chat"].parent
    env = {
        **os.environ,
        "MODELYARD_HOME": str(home),
        "MODELYARD_PORT": str(port),
        "MODELYARD_ALLOWED_DIRS": f'["{models}"]',  # a server that needs keys reads only these
        "COLUMNS": "200",
    }
    env.pop("MODELYARD_API_KEY", None)

    def cli(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
        with_key = {**env, "MODELYARD_API_KEY": key} if key else env
        return subprocess.run([*CLI, *args], env=with_key, capture_output=True, text=True, timeout=120)

    refused = cli("serve", "--host", "0.0.0.0")
    assert refused.returncode == 1
    assert "will not listen on 0.0.0.0 without an API key" in refused.stderr
    assert "`modelyard keys create admin --scope admin`" in refused.stderr
    made = cli("keys", "create", "admin", "--scope", "admin")
    assert made.returncode == 0, made.stderr
    admin = made.stdout.strip()
    assert admin.startswith("my-")
    assert "shown this once" in made.stderr
    app = cli("keys", "create", "app", "--models", "tiny-*", "--priority", "flex").stdout.strip()
    listed = cli("keys", "ls").stdout
    assert admin not in listed  # never shown again
    assert admin[:10] in listed
    assert re.search(r"app .* flex ", listed)
    assert cli("keys", "edit", "app", "--priority", "priority").stdout.strip() == "app: priority priority"
    assert re.search(r"app .* priority ", cli("keys", "ls").stdout)
    llama = os.environ.get("MODELYARD_LLAMA_SERVER")
    server_env = {**env, "MODELYARD_LLAMA_SERVER": llama} if llama else env
    with subprocess.Popen(
        [*CLI, "serve", "--host", "0.0.0.0"],
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as server:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(url + "/api/health").status_code == 200  # open: for health checks
            except httpx.HTTPError:
                return False

        eventually(up, timeout=60)
        try:
            # the CLI: refused without a key, served with the admin key
            elsewhere = cli("import", str(tiny_models["tiny-embed"]), key=admin)
            assert "is outside the folders this server may use" in elsewhere.stderr
            bare = cli("ls")
            assert bare.returncode == 1
            assert "this server needs an API key" in bare.stderr
            assert "MODELYARD_API_KEY" in bare.stderr
            imported = cli("import", str(tiny_models["tiny-chat"]), key=admin)
            assert imported.returncode == 0, imported.stderr
            assert cli("load", "tiny-chat", key=admin).returncode == 0
            assert "tiny-chat" in cli("ls", key=admin).stdout
            # the inference key: /v1 for its models, nothing of /api
            assert cli("ls", key=app).returncode == 1
            assert "reaches /v1 only" in cli("ls", key=app).stderr
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(base_url=url + "/v1", api_key="my-wrong", max_retries=0).models.list()
            client = openai.OpenAI(base_url=url + "/v1", api_key=app, max_retries=0)
            assert [m.id for m in client.models.list().data] == ["tiny-chat"]
            chat = client.chat.completions.create(
                model="tiny-chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4
            )
            assert chat.choices[0].message.content is not None
            run = cli("run", "tiny-chat", "hi", "--max-tokens", "3", key=app)  # the CLI on /v1 only
            assert run.returncode == 0, run.stderr
        finally:
            server.terminate()


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[RunningServer, dict[str, str]]]:
    """A server on a network address (as the guard sees it) with an admin and an inference key."""
    home = tmp_path / "home"
    secrets = make_keys(home, ("admin", "admin", []), ("app", "inference", []))
    with serve(home, host="0.0.0.0") as server:
        yield server, secrets


def test_every_route_wants_a_key_of_its_scope(keyed: tuple[RunningServer, dict[str, str]]) -> None:
    server, secrets = keyed
    routes = sorted(
        (method.upper(), path)
        for path, operations in server.app.openapi()["paths"].items()
        if path.startswith(("/api", "/v1")) or path == "/metrics"
        for method in operations
    )
    assert len(routes) > 40
    with httpx.Client(base_url=server.url, timeout=60) as http:

        def status(method: str, path: str, headers: dict[str, str]) -> int:
            body = {} if method in ("POST", "PUT", "PATCH") else None
            with http.stream(method, path, json=body, headers=headers) as r:  # streams stop here
                return r.status_code

        for method, template in routes:
            path = re.sub(r"\{[^}]+\}", "1", template)
            if path == "/api/health":
                assert status(method, path, {}) == 200
                continue
            assert status(method, path, {}) == 401, (method, path)
            assert status(method, path, bearer("my-not-a-key")) == 401, (method, path)
            app = status(method, path, bearer(secrets["app"]))
            if path.startswith(("/api", "/metrics")):
                assert app == 403, (method, path)
            else:
                assert app not in (401, 403), (method, path)
            assert status(method, path, bearer(secrets["admin"])) not in (401, 403), (method, path)
        r = http.get("/api/models")
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthenticated"
        assert "modelyard keys create" in r.json()["error"]["hint"]
        scoped = http.get("/api/models", headers=bearer(secrets["app"])).json()["error"]
        assert (scoped["code"], scoped["type"]) == ("scope_denied", "permission_error")
        # the web UI's files and the API docs stay open: the page asks for a key itself
        assert http.get("/").status_code in (200, 503)
        assert http.get("/openapi.json").status_code == 200


def test_keys_through_the_api(keyed: tuple[RunningServer, dict[str, str]]) -> None:
    server, secrets = keyed
    admin = bearer(secrets["admin"])
    with httpx.Client(base_url=server.url, headers=admin, timeout=60) as http:
        made = http.post("/api/keys", json={"name": "ci", "scope": "inference", "expires": "30d"})
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        assert "secret" not in http.get("/api/keys").json()[0]
        assert http.get("/v1/models", headers=bearer(secret)).status_code == 200
        assert http.delete("/api/keys/ci").status_code == 204
        # a removed key stops working within seconds (other processes' changes too)
        eventually(lambda: http.get("/v1/models", headers=bearer(secret)).status_code == 401, timeout=10)
        local = http.post("/api/keys", json={"name": "local"})
        assert local.status_code == 400
        assert "names the local user" in local.json()["error"]["message"]
        past = http.post("/api/keys", json={"name": "old", "expires": "2020-01-01"})
        assert past.status_code == 400
        assert "already past" in past.json()["error"]["message"]
        # a key's priority: its requests' tier, which a request may lower, never raise
        made = http.post("/api/keys", json={"name": "bulk", "priority": "flex"})
        assert made.json()["priority"] == "flex"
        assert http.patch("/api/keys/bulk", json={"priority": "priority"}).json()["priority"] == "priority"
        assert http.patch("/api/keys/bulk", json={"priority": "urgent"}).status_code == 400
        assert http.patch("/api/keys/nokey", json={"priority": "flex"}).status_code == 404
        bulk = bearer(made.json()["secret"])
        assert http.get("/v1/models", headers={**bulk, "X-Priority": "flex"}).status_code == 200
        wrong = http.get("/v1/models", headers={**bulk, "X-Priority": "urgent"})
        assert wrong.status_code == 400
        assert "unknown priority 'urgent'" in wrong.json()["error"]["message"]


def test_an_inference_key_reaches_only_its_models(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    home = tmp_path / "home"
    secrets = make_keys(home, ("admin", "admin", []), ("b-only", "inference", ["tiny-chat-b"]))
    folders = [tiny_models["tiny-chat"].parent, tiny_models["tiny-chat-b"].parent]
    with serve(home, allowed_dirs=folders) as server:
        admin = bearer(secrets["admin"])
        for name in ("tiny-chat", "tiny-chat-b"):
            r = server.http.post("/api/models", json={"path": str(tiny_models[name])}, headers=admin)
            assert r.status_code == 201
        assert server.http.post("/api/models/tiny-chat/load", json={}, headers=admin).status_code == 200
        limited = openai.OpenAI(base_url=server.url + "/v1", api_key=secrets["b-only"], max_retries=0)
        assert [m.id for m in limited.models.list().data] == ["tiny-chat-b"]
        with pytest.raises(openai.PermissionDeniedError, match="may not use 'tiny-chat'"):
            limited.completions.create(model="tiny-chat", prompt="x", max_tokens=2)


def test_host_and_origin_checks(server: RunningServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    http = server.http
    for host in ("evil.example", f"evil.example:{port}", "192.168.1.20"):
        r = http.get("/api/models", headers={"Host": host})
        assert r.status_code == 403, host
        assert r.json()["error"]["code"] == "request_refused"
        assert "is not this server" in r.json()["error"]["message"]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        assert http.get("/api/models", headers={"Host": host}).status_code == 200, host
    # a web page elsewhere cannot change anything here
    evil = http.post("/api/scan", json={"path": "/"}, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    assert "web page at http://evil.example" in evil.json()["error"]["message"]
    own = http.post("/api/scan", json={"path": "/nowhere"}, headers={"Origin": server.url})
    assert own.status_code == 404  # it reached the route
    # no CORS unless configured: a browser elsewhere cannot read answers either
    assert (
        "access-control-allow-origin" not in http.get("/api/models", headers={"Origin": "http://x"}).headers
    )


def test_a_reverse_proxys_name_can_be_allowed(tmp_path: Path) -> None:
    with serve(tmp_path / "home", allowed_hosts=["models.example.com"]) as server:
        assert server.http.get("/api/models", headers={"Host": "models.example.com"}).status_code == 200
        assert server.http.get("/api/models", headers={"Host": "other.example.com"}).status_code == 403


def test_cors_when_configured(tmp_path: Path) -> None:
    with serve(tmp_path / "home", cors_origins=["http://app.example"]) as server:
        preflight = server.http.options(
            "/v1/chat/completions",
            headers={
                "Origin": "http://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"
        r = server.http.post("/api/scan", json={"path": "/nowhere"}, headers={"Origin": "http://app.example"})
        assert r.status_code == 404
        assert r.headers["access-control-allow-origin"] == "http://app.example"
        other = server.http.post(
            "/api/scan", json={"path": "/nowhere"}, headers={"Origin": "http://evil.example"}
        )
        assert other.status_code == 403


def test_bodies_are_json_and_bounded(tmp_path: Path) -> None:
    with serve(tmp_path / "home", max_body=4096) as server:
        http = server.http
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            r = http.post("/api/models", content=b'{"path": "/x"}', headers={"Content-Type": kind})
            assert r.status_code == 415, kind
            assert r.json()["error"]["code"] == "unsupported_media_type"
        no_type = http.post("/api/models", content=b'{"path": "/x"}', headers={"Content-Type": ""})
        assert no_type.status_code == 415
        form = http.post("/v1/images/edits", files={"image": ("a.png", b"x")}, data={"prompt": "p"})
        assert form.status_code == 400  # multipart is taken here: the form lacks its model
        big = http.post("/v1/chat/completions", json={"model": "m", "messages": [{"content": "x" * 8000}]})
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "request_too_large"
        assert "MODELYARD_MAX_BODY" in big.json()["error"]["hint"]

        def chunks() -> Iterator[bytes]:
            yield b'{"model": "m", "prompt": "'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"}'

        chunked = http.post("/v1/completions", content=chunks(), headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413
        assert http.post("/api/models/nope/unload").status_code == 404  # no body: no type needed
        assert http.get("/api/health").status_code == 200


def test_a_prompt_far_past_the_context_is_refused_before_it_queues(tmp_path: Path, gemma: Path) -> None:
    import asyncio

    from runtime.conftest import generating

    with serve(tmp_path / "home", queue_size=1) as server:
        add(server, gemma, name="gemma3")
        server.http.put("/api/models/gemma3/settings", json={"options": {"n_ctx": 1024, "threads": 2}})
        load(server, "gemma3")
        queue = server.runtime.queues["gemma3"]

        async def scenario() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as http:
                body = {"model": "gemma3", "prompt": "One, two,", "max_tokens": 400, "stream": True}
                async with generating(http, body):  # the only slot is taken for a while
                    long = await http.post(
                        "/v1/completions", json={"model": "gemma3", "prompt": "word " * 80_000}
                    )
                    assert (queue.in_flight, queue.waiting) == (1, 0)  # it never waited
                    assert long.status_code == 413
                    error = long.json()["error"]
                    assert "the prompt has at least 1562 tokens; 'gemma3' takes 1024" in error["message"]

        asyncio.run(scenario())
        huge = server.http.post(
            "/v1/completions", content=b"x" * (50 << 20), headers={"Content-Type": "application/json"}
        )
        assert huge.status_code == 413  # over the body limit (32 MiB): refused as it arrives


def test_an_engine_port_is_no_way_around_the_gateway(
    server: RunningServer, tiny_models: dict[str, Path]
) -> None:
    add(server, tiny_models["tiny-chat"])
    (inst,) = load(server, "tiny-chat")["instances"]  # type: ignore[misc]
    assert inst["url"].startswith("http://127.0.0.1:")  # loopback only
    body = {"model": "tiny-chat", "prompt": "x", "max_tokens": 2}
    direct = httpx.post(inst["url"] + "/v1/completions", json=body)
    assert direct.status_code == 401  # it has a key of its own, which only the gateway knows
    guessed = httpx.post(inst["url"] + "/v1/completions", json=body, headers=bearer("my-guess"))
    assert guessed.status_code == 401
    assert server.http.post("/v1/completions", json=body).status_code == 200
    (slot,) = server.runtime.queues["tiny-chat"].slots.values()
    key = slot.headers["Authorization"].removeprefix("Bearer ")
    log = server.http.get(f"/api/instances/{inst['id']}/logs", params={"lines": 100000}).text
    assert key not in log  # in the engine's environment: not in its command line, not in `ps`


def test_usage_and_quotas_per_key(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    home = tmp_path / "home"
    secrets = make_keys(home, ("admin", "admin", []), ("app", "inference", []))
    folders = [tiny_models["tiny-chat"].parent, tiny_models["tiny-embed"].parent]
    with serve(home, allowed_dirs=folders) as server:
        admin = bearer(secrets["admin"])
        for name in ("tiny-chat", "tiny-embed"):
            r = server.http.post("/api/models", json={"path": str(tiny_models[name])}, headers=admin)
            assert r.status_code == 201
        assert (
            server.http.patch("/api/models/tiny-embed", json={"autoload": True}, headers=admin).status_code
            == 200
        )
        assert server.http.post("/api/models/tiny-chat/load", json={}, headers=admin).status_code == 200
        app = openai.OpenAI(base_url=server.url + "/v1", api_key=secrets["app"], max_retries=0)
        answer = app.completions.create(model="tiny-chat", prompt="hello", max_tokens=3)
        assert answer.usage is not None
        # the app's quota: no loads of embedding models; the admin's (the "*" one): one
        assert server.http.put("/api/quotas/app", json={"loads": 0}, headers=admin).status_code == 200
        assert server.http.put("/api/quotas/*", json={"loads": 1}, headers=admin).status_code == 200
        with pytest.raises(openai.RateLimitError, match="the key 'app' has used 0 of 0 loads"):
            app.embeddings.create(model="tiny-embed", input="x")  # its autoload counts against app's
        assert not server.runtime.is_loaded("tiny-embed")
        assert server.http.post("/api/models/tiny-embed/load", json={}, headers=admin).status_code == 200
        vectors = app.embeddings.create(model="tiny-embed", input="x")  # loaded: no new load
        by_key = {t["name"]: t for t in server.http.get("/api/usage?by=key", headers=admin).json()["totals"]}
        assert by_key["app"]["tokens_out"] == answer.usage.completion_tokens
        assert by_key["app"]["tokens_in"] == answer.usage.prompt_tokens + vectors.usage.prompt_tokens
        assert by_key["admin"]["loads"] == 1
        standings = {s["key"]: s for s in server.http.get("/api/quotas", headers=admin).json()["standings"]}
        assert (standings["admin"]["quota"], standings["admin"]["left"]) == ("*", 0)
        assert (standings["app"]["quota"], standings["app"]["left"]) == ("app", 0)
        assert server.http.get("/metrics", headers=bearer(secrets["app"])).status_code == 403
        assert "modelyard_requests_total" in server.http.get("/metrics", headers=admin).text


def test_a_draft_model_file_is_held_to_the_allowed_folders(
    keyed: tuple[RunningServer, dict[str, str]], tmp_path: Path
) -> None:
    server, secrets = keyed
    admin = bearer(secrets["admin"])
    models = tmp_path / "home" / "models"  # allowed: the server's own models folder
    (main,) = b.write_llama_gguf(models / "main.gguf")
    (outside,) = b.write_llama_gguf(tmp_path / "elsewhere" / "draft.gguf")
    assert server.http.post("/api/models", json={"path": str(main)}, headers=admin).status_code == 201
    r = server.http.put(
        "/api/models/main/settings", json={"options": {"draft_model": str(outside)}}, headers=admin
    )
    assert r.status_code == 403, r.text
    assert "outside the folders this server may use" in r.json()["error"]["message"]
    (inside,) = b.write_llama_gguf(models / "draft.gguf")
    r = server.http.put(
        "/api/models/main/settings", json={"options": {"draft_model": str(inside)}}, headers=admin
    )
    assert r.status_code == 200, r.text
