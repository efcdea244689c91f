"""Backends turn a Model and its Settings into an engine. For now each declares its options
schema; commands, health checks and capabilities arrive with serving."""

from __future__ import annotations

from pydantic import BaseModel

from modelyard.backends.diffusers import DiffusersOptions
from modelyard.backends.llama_cpp import LlamaCppOptions
from modelyard.backends.sentence_transformers import SentenceTransformersOptions
from modelyard.backends.transformers import TransformersOptions

OPTIONS: dict[str, type[BaseModel]] = {
    "llama.cpp": LlamaCppOptions,
    "transformers": TransformersOptions,
    "sentence-transformers": SentenceTransformersOptions,
    "diffusers": DiffusersOptions,
}


def backend_for(loaders: list[str]) -> str | None:
    """The first of a model's compatible loaders that modelyard has a backend for."""
    return next((name for name in loaders if name in OPTIONS), None)
