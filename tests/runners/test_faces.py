"""Face embeddings through the gateway: a tiny insightface pack (an SCRFD-shaped detector and an
ArcFace-shaped recognizer, ONNX) on the runner, its faces and vectors compared with insightface
run in-process, through the official openai client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest

from builders import data_url
from conftest import RunningServer, serve
from modelyard.gateway.answers import FaceAnswer
from torch_models import faces_picture, write_tiny_face_pack

PLACES = [(64, 32), (192, 128), (448, 480)]
# insightface's face alignment calls a scikit-image method deprecated since 0.26
pytestmark = [pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning"), pytest.mark.engine]


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_face_pack(tmp_path_factory.mktemp("faces") / "buffalo_tiny")


@pytest.fixture(scope="module")
def server(pack: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve(tmp_path_factory.mktemp("home")) as running:
        r = running.http.post("/api/models", json={"path": str(pack), "name": "faces"})
        assert r.status_code in (200, 201), r.text
        r = running.http.post("/api/models/faces/load", json={})
        assert r.status_code == 200, r.text
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def in_process(pack: Path, image: Any) -> list[Any]:
    """The faces insightface finds in ``image`` (a PIL image), as its own app finds them."""
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(name=str(pack), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(640, 640))
    return list(app.get(np.asarray(image)[:, :, ::-1].copy()))


def test_a_face_pack_is_detected_from_its_graphs(server: RunningServer) -> None:
    model = server.http.get("/api/models/faces").json()
    assert model["category"] == "face"
    assert model["format"] == "onnx"
    assert model["architecture"] == "insightface"
    assert model["loaders"] == ["insightface"]
    assert model["facts"]["detector"] == "det_tiny.onnx"
    assert model["facts"]["recognizer"] == "w600k_tiny.onnx"
    assert model["facts"]["dimension"] == 64


def test_each_face_gets_insightfaces_vector(client: openai.OpenAI, pack: Path) -> None:
    first, second = faces_picture(1, PLACES), faces_picture(2, [(320, 320)])
    answer = client.embeddings.create(model="faces", input=[data_url(first), data_url(second)])  # base64
    expected = in_process(pack, first) + in_process(pack, second)
    assert len(answer.data) == len(expected) == 4
    for i, (got, face) in enumerate(zip(answer.data, expected, strict=True)):
        extra = got.model_extra or {}
        assert got.index == i
        assert extra["image"] == (0 if i < 3 else 1)
        assert extra["bbox"] == pytest.approx([float(v) for v in face.bbox], abs=0.01)
        assert extra["score"] == pytest.approx(float(face.det_score), abs=1e-4)
        assert np.allclose(got.embedding, face.normed_embedding, atol=1e-5)
        assert len(extra["landmarks"]) == 5
    boxes = sorted(tuple(d.model_extra["bbox"][:2]) for d in answer.data[:3])  # type: ignore[index]
    assert boxes == sorted((float(x), float(y)) for x, y in PLACES)  # the three squares, nothing else
    FaceAnswer.model_validate(answer.model_dump())  # as the OpenAPI document says
    assert not np.allclose(answer.data[0].embedding, answer.data[1].embedding)


def test_a_picture_without_faces_and_bad_input(server: RunningServer, client: openai.OpenAI) -> None:
    empty = client.embeddings.create(
        model="faces", input=data_url(faces_picture(3, [])), encoding_format="float"
    )
    assert empty.data == []
    with pytest.raises(openai.BadRequestError, match="could not be read as an image"):
        client.embeddings.create(model="faces", input="hello, I am text")
    r = server.http.post(
        "/v1/embeddings", json={"model": "faces", "input": data_url(faces_picture(4, [])), "dimensions": 8}
    )
    assert r.status_code == 400
    assert "dimensions: not supported by this engine" in r.json()["error"]["message"]
    (inst,) = server.http.get("/api/instances").json()
    assert inst["state"] == "running"


def test_settings_cap_the_faces_per_image(server: RunningServer, client: openai.OpenAI) -> None:
    r = server.http.put("/api/models/faces/settings", json={"options": {"max_faces": 2, "det_thresh": 0.6}})
    assert r.status_code == 200, r.text
    assert server.http.post("/api/models/faces/unload").status_code == 204
    assert server.http.post("/api/models/faces/load", json={}).status_code == 200
    answer = client.embeddings.create(model="faces", input=data_url(faces_picture(1, PLACES)))
    assert len(answer.data) == 2
    r = server.http.put("/api/models/faces/settings", json={"options": {"det_size": 100}})
    assert r.status_code == 400
    assert "det_size" in r.json()["error"]["message"]
