"""The /v1 answers that are not OpenAI's own: rerank (llama-server's and GPUStack's shape),
classification, captions, faces (and OpenAI's embeddings beside a face model's). The gateway
documents them in the OpenAPI schema, from which the web UI's types are generated; the routes
relay the engines' bytes as they come, so these describe what the runner writes. Plain
pydantic: the runner, in a managed environment, may import this module."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Tokens(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RankedDocument(BaseModel):
    text: str


class Ranked(BaseModel):
    index: int = Field(description="the document's place in the request")
    relevance_score: float
    document: RankedDocument | None = Field(None, description="with return_documents")


class RerankAnswer(BaseModel):
    """Documents by relevance to the query, best first (``top_n`` of them)."""

    object: Literal["list"] = "list"
    model: str
    results: list[Ranked]
    usage: Tokens


class Labelled(BaseModel):
    index: int = Field(description="the input's place in the request")
    label: str
    score: float = Field(description="the label's probability")


class ClassifyAnswer(BaseModel):
    object: Literal["list"] = "list"
    model: str
    data: list[Labelled]
    usage: Tokens


class CaptionTokens(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Caption(BaseModel):
    index: int = Field(description="the image's place in the request")
    caption: str


class CaptionAnswer(BaseModel):
    object: Literal["list"] = "list"
    created: int
    model: str
    data: list[Caption]
    usage: CaptionTokens


class Face(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")
    image: int = Field(description="the image it was found in, by its place in the request")
    bbox: list[float] = Field(description="x1, y1, x2, y2 in pixels")
    landmarks: list[list[float]] = Field(description="the five key points (eyes, nose, mouth corners)")
    score: float = Field(description="the detector's confidence")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="floats, or base64 of little-endian float32")


class EmbeddingsAnswer(BaseModel):
    """OpenAI's embeddings answer (an embedding model's)."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Tokens


class FaceTokens(BaseModel):
    prompt_tokens: int
    total_tokens: int
    images: int
    faces: int


class FaceAnswer(BaseModel):
    """A face model's /v1/embeddings: one embedding per face found, with where it is."""

    object: Literal["list"] = "list"
    data: list[Face]
    model: str
    created: int
    usage: FaceTokens
