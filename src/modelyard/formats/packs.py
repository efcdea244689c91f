"""ONNX models that come in sets: insightface face packs (buffalo_l and the like), a face
detector (SCRFD or RetinaFace: scores, boxes and landmarks per stride) beside a recognizer
(ArcFace: a square face crop in, a vector out), told apart by their graphs' inputs and outputs as
insightface itself routes them; and Piper voices, an .onnx beside its .onnx.json (the phoneme
map, the sample rate, the speakers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelyard.categories import Category
from modelyard.errors import MalformedFile, UnsupportedFormat
from modelyard.formats.hf import load_json
from modelyard.formats.inspection import MODEL, Inspection, file_info
from modelyard.formats.onnx import Graph, read_graph

LANDMARK_SIDE = 192  # insightface's 2D / 3D landmark models take 192x192 crops


def is_detector(graph: Graph) -> bool:
    return len(graph.outputs) >= 5


def is_recognizer(graph: Graph) -> bool:
    if not graph.inputs or len(graph.inputs[0][1]) != 4 or len(graph.inputs) != 1:
        return False
    _, _, h, w = graph.inputs[0][1]
    return isinstance(h, int) and h == w and h >= 112 and h % 16 == 0 and h != LANDMARK_SIDE


def piper_config(model: Path) -> dict[str, Any] | None:
    """The Piper config beside ``model`` (model.onnx.json), or None."""
    path = Path(f"{model}.json")
    if not path.is_file():
        return None
    config = load_json(path)
    return config if "phoneme_id_map" in config and isinstance(config.get("audio"), dict) else None


def inspect_piper(path: Path, model: Path, config: dict[str, Any]) -> Inspection:
    """A Piper voice: ``path`` is what was named (the .onnx, or its folder)."""
    graph = read_graph(model)
    names, speakers = _part(config, "speaker_id_map"), config.get("num_speakers", 1)
    if not isinstance(speakers, int) or not all(isinstance(i, int) for i in names.values()):
        raise MalformedFile(Path(f"{model}.json"), "num_speakers and speaker_id_map must hold numbers")
    audio = _part(config, "audio")
    return Inspection(
        path=path,
        format="onnx",
        kind=MODEL,
        category=Category.TEXT_TO_SPEECH,
        architecture="piper",
        parameters=graph.weights,
        files=[file_info(model), file_info(Path(f"{model}.json"))],
        facts={
            "sample_rate": audio.get("sample_rate"),
            "quality": audio.get("quality"),
            "language": _part(config, "language").get("code") or _part(config, "espeak").get("voice"),
            "speakers": sorted(names, key=lambda n: names[n]) if names else speakers,
        },
    )


def _part(config: dict[str, Any], key: str) -> dict[str, Any]:
    """A section of a config, {} where it is missing or not an object."""
    value = config.get(key)
    return value if isinstance(value, dict) else {}


def inspect_onnx_folder(folder: Path, files: list[Path]) -> Inspection:
    voices = [(f, c) for f in files if (c := piper_config(f)) is not None]
    if len(voices) == 1:
        return inspect_piper(folder, *voices[0])
    if voices:
        raise UnsupportedFormat(folder, f"{len(voices)} Piper voices", hint="import each voice's .onnx file")
    graphs = {f: read_graph(f) for f in files}
    detectors = sorted(f.name for f, g in graphs.items() if is_detector(g))
    recognizers = sorted(f.name for f, g in graphs.items() if is_recognizer(g))
    if not detectors or not recognizers:
        missing = "a face detector" if not detectors else "a face recognizer"
        raise UnsupportedFormat(
            folder,
            f"ONNX models without {missing}: modelyard serves ONNX folders that are face packs",
            hint="a pack such as insightface's buffalo_l holds det_10g.onnx and w600k_r50.onnx",
        )
    recognizer = graphs[folder / recognizers[0]]
    dims = recognizer.outputs[0][1] if recognizer.outputs else []
    return Inspection(
        path=folder,
        format="onnx",
        kind=MODEL,
        category=Category.FACE,
        architecture="insightface",
        parameters=sum(g.weights for g in graphs.values()),
        files=[file_info(f) for f in files],
        facts={
            "detector": detectors[0],
            "recognizer": recognizers[0],
            "dimension": dims[-1] if dims and isinstance(dims[-1], int) else None,
            "models": sorted(f.name for f in files),
        },
    )
