"""The one error answerer per dialect: what each shows of an engine's failure. The end of an
engine's log names the server's files: only the management API (admins) answers with it."""

from __future__ import annotations

import orjson

from modelyard.errors import EngineError, InvalidRequest
from modelyard.http_errors import ANTHROPIC, MANAGEMENT, OLLAMA, OPENAI

LOG = "llama_model_load: error loading model: /srv/models/secret/qwen.gguf: bad magic"


def shown(body: bytes) -> str:
    return orjson.dumps(orjson.loads(body)).decode()


def test_an_engines_log_goes_to_admins_only() -> None:
    failed = EngineError(
        "the engine of 'qwen' exited with status 1 while starting",
        hint="`modelyard logs qwen` shows its log",
        log=LOG,
    )
    management = orjson.loads(MANAGEMENT.answer(failed).body)["error"]
    assert management["hint"] == f"its log says:\n{LOG}"
    for dialect in (OPENAI, OLLAMA, ANTHROPIC):
        for body in (bytes(dialect.answer(failed).body), dialect.piece(failed)):
            assert "/srv/models" not in body.decode()
            assert "modelyard logs qwen" in body.decode()


def test_bad_unicode_quoted_back_is_escaped() -> None:
    bad = InvalidRequest("no such file: /tmp/\udcff.gguf", param="path\udcff")
    for dialect in (OPENAI, OLLAMA, ANTHROPIC):
        assert "\\\\udcff" in shown(bytes(dialect.answer(bad).body))
