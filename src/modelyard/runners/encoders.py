"""Encoder models: sentence-transformers embeddings, cross-encoder rerank, text classification.
Each request's texts join a dynamic batch with the other requests in flight."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

from modelyard.backends.sentence_transformers import SentenceTransformersOptions
from modelyard.backends.transformers import TransformersOptions
from modelyard.errors import InvalidRequest
from modelyard.runners.batching import Batcher
from modelyard.runners.devices import device_of, dtype_of
from modelyard.runners.requests import ClassifyBody, EmbeddingsBody, RerankBody

log = logging.getLogger(__name__)


def texts_of(value: str | list[str]) -> list[str]:
    """A string or a list of strings (these models tokenize themselves)."""
    return [value] if isinstance(value, str) else value


class Embedder:
    """A SentenceTransformer behind /v1/embeddings."""

    def __init__(self, path: str, options: SentenceTransformersOptions) -> None:
        from sentence_transformers import SentenceTransformer

        device = device_of(options.device)
        if options.trust_remote_code:
            log.warning("trust_remote_code is on: the model's own Python code runs in this process")
        self.model = SentenceTransformer(
            path,
            device=device,
            trust_remote_code=options.trust_remote_code,
            local_files_only=True,
            model_kwargs={"dtype": dtype_of(options.precision, device)},
        )
        if options.n_ctx:
            self.model.max_seq_length = options.n_ctx
        self.normalize = options.normalize
        self.batch_size = options.batch_size
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.batcher: Batcher[str, tuple[Any, int]] = Batcher(self._encode, options.batch_size)

    def _encode(self, texts: list[str]) -> list[tuple[Any, int]]:
        """Vectors (numpy float32, serialized as they are) and token counts."""
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        lengths = [len(ids) for ids in self.model.tokenizer(texts, truncation=True)["input_ids"]]
        return list(zip(vectors, lengths, strict=True))

    async def embeddings(self, body: EmbeddingsBody, name: str) -> dict[str, Any]:
        texts = texts_of(body.input)
        fmt, dims = body.encoding_format, body.dimensions
        if dims is not None and dims > self.dimension:
            raise InvalidRequest(f"'dimensions' must be between 1 and {self.dimension}", param="dimensions")
        results = await self.batcher.run(texts)
        data = []
        for i, (vector, _n) in enumerate(results):
            if dims is not None and dims < self.dimension:
                vector = _truncate(vector, dims, self.normalize)
            data.append({"object": "embedding", "index": i, "embedding": _encoded(vector, fmt)})
        tokens = sum(n for _v, n in results)
        answer: dict[str, Any] = {
            "object": "list",
            "data": data,
            "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        if body.modelyard_tokens:  # the gateway merged several requests: each input's tokens
            answer["tokens"] = [n for _v, n in results]
        return answer


def _truncate(vector: Any, dims: int, normalize: bool) -> Any:
    import numpy as np

    cut = vector[:dims]
    if not normalize:
        return cut
    return cut / (float(np.linalg.norm(cut)) or 1.0)


def _encoded(vector: Any, fmt: str) -> Any:
    import numpy as np

    if fmt == "float":
        return vector
    return base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode()


@dataclass
class _Pair:
    query: str
    document: str


class Reranker:
    """A cross-encoder behind /v1/rerank, in the shape llama-server and GPUStack use."""

    def __init__(self, path: str, options: SentenceTransformersOptions) -> None:
        from sentence_transformers import CrossEncoder

        device = device_of(options.device)
        self.model = CrossEncoder(
            path,
            device=device,
            trust_remote_code=options.trust_remote_code,
            local_files_only=True,
            max_length=options.n_ctx or None,
            model_kwargs={"dtype": dtype_of(options.precision, device)},
        )
        self.batch_size = options.batch_size
        self.batcher: Batcher[_Pair, float] = Batcher(self._score, options.batch_size)

    def _score(self, pairs: list[_Pair]) -> list[float]:
        scores = self.model.predict(
            [(p.query, p.document) for p in pairs],
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [float(s) for s in scores.reshape(len(pairs), -1)[:, -1]]

    async def rerank(self, body: RerankBody, name: str) -> dict[str, Any]:
        query, docs = body.query, body.texts()
        top_n = body.top_n or len(docs)
        scores = await self.batcher.run([_Pair(query, d) for d in docs])
        order = sorted(range(len(docs)), key=lambda i: scores[i], reverse=True)[:top_n]
        results = []
        for i in order:
            item: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
            if body.return_documents:
                item["document"] = {"text": docs[i]}
            results.append(item)
        tokens = sum(len(self.model.tokenizer(query, d)["input_ids"]) for d in docs)
        return {
            "object": "list",
            "model": name,
            "results": results,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


class Classifier:
    """A transformers sequence classifier behind /v1/classify: a label and a score per text."""

    def __init__(self, path: str, options: TransformersOptions) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device = device_of(options.device)
        if options.trust_remote_code:
            log.warning("trust_remote_code is on: the model's own Python code runs in this process")
        self.tokenizer = AutoTokenizer.from_pretrained(
            path, local_files_only=True, trust_remote_code=options.trust_remote_code
        )
        self.model = AutoModelForSequenceClassification.from_pretrained(
            path,
            local_files_only=True,
            trust_remote_code=options.trust_remote_code,
            dtype=dtype_of(options.precision, self.device),
        ).to(self.device)
        self.model.eval()
        self.max_length = options.n_ctx or None
        self.batcher: Batcher[str, tuple[str, float, int]] = Batcher(self._classify, options.batch_size)

    def _classify(self, texts: list[str]) -> list[tuple[str, float, int]]:
        import torch

        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            logits = self.model(**enc).logits
        probs = logits.softmax(-1) if logits.shape[-1] > 1 else logits.sigmoid()
        labels = self.model.config.id2label
        out = []
        for row, n in zip(probs, enc["attention_mask"].sum(dim=1).tolist(), strict=True):
            k = int(row.argmax())
            out.append((str(labels.get(k, k)), float(row[k]), int(n)))
        return out

    async def classify(self, body: ClassifyBody, name: str) -> dict[str, Any]:
        results = await self.batcher.run(texts_of(body.input))
        tokens = sum(n for *_x, n in results)
        return {
            "object": "list",
            "model": name,
            "data": [
                {"index": i, "label": label, "score": score} for i, (label, score, _n) in enumerate(results)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
