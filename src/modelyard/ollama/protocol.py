"""Request bodies of Ollama's API, as its clients send them (unknown fields are ignored, as
Ollama does)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class OllamaRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    keep_alive: float | str | None = Field(None, description="how long it stays loaded: 5m, 1h, 0, -1")
    options: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: str
    content: str = ""
    images: list[str] | None = None  # base64
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None


class ChatIn(OllamaRequest):
    messages: list[Message] = Field(default_factory=list)
    stream: bool = True
    format: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None


class GenerateIn(OllamaRequest):
    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    images: list[str] | None = None
    raw: bool = False
    stream: bool = True
    format: str | dict[str, Any] | None = None


class EmbedIn(OllamaRequest):
    input: str | list[str] = Field(default_factory=list)
    truncate: bool = True
    dimensions: int | None = Field(None, ge=1)


class EmbeddingsIn(OllamaRequest):
    prompt: str = ""


class ShowIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, validation_alias="model")
    verbose: bool = False
