"""The one error answerer per dialect: what each shows of an engine's failure. The end of an
engine's log names the server's files: only the management API (admins) answers with it."""

from __future__ import annotations

import orjson

from modelyard.errors import EngineError, InvalidRequest
from modelyard.http_errors import anthropic_body, error_response, ollama_error

LOG = "llama_model_load: error loading model: /srv/models/secret/qwen.gguf: bad magic"


def shown(body: bytes) -> str:
    return orjson.dumps(orjson.loads(body)).decode()


def test_an_engines_log_goes_to_admins_only() -> None:
    failed = EngineError(
        "the engine of 'qwen' exited with status 1 while starting",
        hint="`modelyard logs qwen` shows its log",
        log=LOG,
    )
    management = orjson.loads(error_response(failed, openai=False).body)["error"]
    assert management["hint"] == f"its log says:\n{LOG}"
    for body in (error_response(failed).body, ollama_error(failed).body, anthropic_body(failed)[1]):
        assert "/srv/models" not in shown(body)
        assert "modelyard logs qwen" in shown(body)


def test_bad_unicode_quoted_back_is_escaped() -> None:
    bad = InvalidRequest("no such file: /tmp/\udcff.gguf", param="path\udcff")
    for body in (error_response(bad).body, ollama_error(bad).body, anthropic_body(bad)[1]):
        assert "\\\\udcff" in shown(body)
