"""The Create model drawer in Chromium: a preset, the fields with their live preview, an error
on the field it concerns, a tokenizer trained from a corpus, the export's progress, and the new
model highlighted in the library."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from browser import Shots, browsing_with_shots
from conftest import RunningServer, serve
from modelyard.create.design import Design, parameters
from modelyard.create.presets import presets

pytestmark = pytest.mark.browser


def test_create_a_small_model_end_to_end(
    page: Page, shots: Shots, server: RunningServer, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "".join(f"line {i} of a small corpus about tokenizers and models\n" for i in range(500))
    )
    page.goto("/")
    page.get_by_role("toolbar").get_by_role("button", name="Create model").click()
    drawer = page.get_by_role("dialog", name="Create a model")
    expect(drawer).to_contain_text("random weights")
    small = parameters(presets()["small"].design).total
    expect(drawer.get_by_test_id("parameters")).to_contain_text(f"{small:,}")  # the Small preset's count
    shots("small-preset")
    # no model in the library has a tokenizer: training one is chosen
    expect(drawer.get_by_label("Train a tokenizer")).to_be_checked()

    drawer.get_by_label("Output folder").fill(str(tmp_path / "ui-model"))
    drawer.get_by_label("Vocabulary size", exact=True).fill("10000")
    drawer.get_by_label("Hidden size", exact=True).fill("128")
    drawer.locator("summary", has_text="Advanced").click()
    drawer.get_by_label("Layers", exact=True).fill("2")
    drawer.get_by_label("FFN size", exact=True).fill("256")
    drawer.get_by_label("Attention heads", exact=True).fill("3")
    heads_field = drawer.locator("label", has=page.get_by_label("Attention heads", exact=True))
    expect(heads_field.get_by_role("alert")).to_have_text("must divide the hidden size 128")
    expect(drawer.get_by_role("button", name="Create model")).to_be_disabled()
    shots("heads-error")
    drawer.get_by_label("Attention heads", exact=True).fill("4")
    expect(heads_field.get_by_role("alert")).to_have_count(0)
    design = presets()["small"].design.with_values(
        {"vocab_size": 10_000, "hidden_size": 128, "layers": 2, "heads": 4, "ffn_size": 256}
    )
    assert isinstance(design, Design)
    expect(drawer.get_by_test_id("parameters")).to_contain_text(f"{parameters(design).total:,}")

    drawer.get_by_label("Corpus").fill(str(tmp_path / "missing.txt"))
    expect(drawer).to_contain_text("no such file")
    drawer.get_by_label("Corpus").fill(str(corpus))
    drawer.get_by_label("Tokenizer type").select_option("bpe")
    drawer.get_by_label("Tokenizer vocabulary").fill("8000")
    drawer.get_by_label("GGUF").select_option("F16")
    create = drawer.get_by_role("button", name="Create model")
    expect(create).to_be_enabled()
    shots("ready")
    create.click()
    export = drawer.get_by_label("Export")
    expect(export).to_contain_text("Created ui-model, ui-model-gguf", timeout=120_000)
    shots("created")
    drawer.get_by_role("button", name="Close", exact=True).last.click()
    row = page.locator("tr[data-model='ui-model']")
    expect(row).to_have_class(re.compile(r"\bfresh\b"))
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    shots("highlighted")
    assert (tmp_path / "ui-model" / "ui-model.F16.gguf").is_file()
    names = [m["name"] for m in server.http.get("/api/models").json()]
    assert sorted(names) == ["ui-model", "ui-model-gguf"]


def test_a_creation_whose_environment_is_missing_leads_to_settings(browser: Browser, tmp_path: Path) -> None:
    """On a server that installs nothing by itself, a creation whose transformers environment is
    missing says so, as a load does, with the way to Settings."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i} of a small corpus\n" for i in range(200)))
    with serve(tmp_path / "home", python_envs="managed", auto_install=False) as server:
        with browsing_with_shots(browser, server.url, "create-environment-missing") as (page, shots):
            page.goto("/")
            page.get_by_role("toolbar").get_by_role("button", name="Create model").click()
            drawer = page.get_by_role("dialog", name="Create a model")
            drawer.get_by_label("Output folder").fill(str(tmp_path / "new"))
            drawer.get_by_label("Corpus").fill(str(corpus))
            drawer.get_by_label("Tokenizer type").select_option("bpe")
            drawer.get_by_label("Tokenizer vocabulary").fill("8000")
            drawer.get_by_role("button", name="Create model").click()
            missing = page.get_by_role("dialog", name="An engine is missing")
            expect(missing).to_contain_text("Creating a model needs an engine that is not installed")
            expect(missing).to_contain_text("the transformers environment is not installed")
            shots("environment-missing")
            missing.get_by_role("button", name="Open Settings").click()
            expect(page.locator("tr[data-backend='transformers']")).to_contain_text("not installed")
        assert not (tmp_path / "new").exists()
