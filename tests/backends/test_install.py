from __future__ import annotations

from pathlib import Path

import pytest

from modelyard.backends.install import install_llama_server
from modelyard.errors import EngineError


def test_missing_build_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(EngineError, match="building llama-server needs cmake") as e:
        install_llama_server(tmp_path / "bin")
    assert e.value.hint is not None
    assert "install cmake" in e.value.hint
    assert not (tmp_path / "bin" / "llama-server").exists()
