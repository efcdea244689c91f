"""Face embeddings: an insightface pack (buffalo_l and the like) on onnxruntime. Each image of
an /v1/embeddings request is searched for faces; each face found gets one vector, with the image
it is in, its box, its landmarks and its detection score."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import warnings
from typing import Any

from modelyard.backends.insightface import InsightFaceOptions
from modelyard.errors import EngineError, InvalidRequest
from modelyard.runners import compute
from modelyard.runners.media import load_image
from modelyard.runners.requests import FaceEmbeddingsBody

log = logging.getLogger(__name__)
# insightface aligns faces with a scikit-image method deprecated since 0.26: once per face, in the log
warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)
MAX_IMAGES = 64  # images one request may carry


class FaceEmbedder:
    def __init__(self, path: str, options: InsightFaceOptions) -> None:
        import onnxruntime
        from insightface.app import FaceAnalysis

        providers = ["CPUExecutionProvider"]
        if (
            options.device in ("auto", "cuda")
            and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
        ):
            providers.insert(0, "CUDAExecutionProvider")
        elif options.device == "cuda":
            raise EngineError("device 'cuda' was asked for, but onnxruntime has no CUDA provider here")
        self.app: Any = FaceAnalysis(
            name=path, providers=providers, allowed_modules=["detection", "recognition"]
        )
        if "recognition" not in self.app.models:
            raise EngineError("the pack has a face detector but no recognizer (an ArcFace model)")
        side = options.det_size - options.det_size % 32
        self.app.prepare(ctx_id=0 if providers[0].startswith("CUDA") else -1, det_size=(side, side),
                         det_thresh=options.det_thresh)  # fmt: skip
        self.max_faces = options.max_faces
        self.normalize = options.normalize
        recognizer = self.app.models["recognition"]
        self.facts = {
            "task": "face",
            "providers": providers,
            "det_size": side,
            "dimension": int(recognizer.session.get_outputs()[0].shape[-1]),
        }

    def faces(self, image: Any) -> list[Any]:
        """The faces in a PIL image (RGB), as insightface finds them."""
        import numpy as np

        bgr = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
        return list(self.app.get(bgr, max_num=self.max_faces))

    async def embeddings(self, body: FaceEmbeddingsBody, name: str) -> dict[str, Any]:
        given = body.images()
        if len(given) > MAX_IMAGES:
            raise InvalidRequest(f"at most {MAX_IMAGES} images per request", param="input")
        images = await asyncio.to_thread(lambda: [load_image(i, "input") for i in given])
        data: list[dict[str, Any]] = []
        for k, image in enumerate(images):
            for face in await compute.run(self.faces, image):
                vector = face.normed_embedding if self.normalize else face.embedding
                data.append({
                    "object": "embedding",
                    "index": len(data),
                    "embedding": _encoded(vector, body.encoding_format),
                    "image": k,
                    "bbox": [round(float(v), 2) for v in face.bbox],
                    "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in face.kps],
                    "score": round(float(face.det_score), 4),
                })  # fmt: skip
        return {
            "object": "list",
            "data": data,
            "model": name,
            "created": int(time.time()),
            "usage": {"prompt_tokens": 0, "total_tokens": 0, "images": len(images), "faces": len(data)},
        }


def _encoded(vector: Any, fmt: str) -> Any:
    """OpenAI's encodings: a list of floats, or base64 of little-endian float32."""
    import numpy as np

    values = np.asarray(vector, dtype="<f4")
    return base64.b64encode(values.tobytes()).decode() if fmt == "base64" else values.tolist()
