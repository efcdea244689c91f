"""Backends turn a Model and its Settings into an engine: each declares its options schema;
llama_cpp.py and python.py build the command lines."""

from __future__ import annotations

from pydantic import BaseModel

from modelyard.backends.diffusers import DiffusersOptions
from modelyard.backends.llama_cpp import LlamaCppOptions
from modelyard.backends.sentence_transformers import SentenceTransformersOptions
from modelyard.backends.transformers import TransformersOptions
from modelyard.catalog.records import Model

OPTIONS: dict[str, type[BaseModel]] = {
    "llama.cpp": LlamaCppOptions,
    "transformers": TransformersOptions,
    "sentence-transformers": SentenceTransformersOptions,
    "diffusers": DiffusersOptions,
}


def endpoints_for(model: Model) -> frozenset[str]:
    """The OpenAI endpoints a model serves, by its backend and category."""
    from modelyard.backends import llama_cpp, python

    backend = backend_for(model.loaders)
    if backend in python.PYTHON_BACKENDS:
        return python.TASKS.get(model.category, ("", frozenset[str]()))[1]
    return llama_cpp.endpoints_for(model)


def backend_for(loaders: list[str]) -> str | None:
    """The first of a model's compatible loaders that modelyard has a backend for."""
    return next((name for name in loaders if name in OPTIONS), None)
