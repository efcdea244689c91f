"""Speech to text through the gateway against the same model in-process: a 60 s clip spoken by
espeak-ng (Debian's espeak-ng package), transcribed by transformers' speech recognition pipeline
in this process and by modelyard's runner through /v1/audio/transcriptions, alternating rounds.

The model is the tests' tiny Whisper (random weights, so it decodes up to ``--tokens`` tokens per
30 s chunk: the same work on both sides). Prints each side's seconds and real-time factor
(audio seconds per second of work), the ratio last.
Usage: python bench/transcription.py [--rounds 5] [--tokens 128]
"""

from __future__ import annotations

import argparse
import io
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from common import modelyard_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
SECONDS = 60.0
TEXT = (
    "The lighthouse keeper climbed the stairs every evening and lit the lamp for the ships at sea. "
    "Far away the fishing boats turned toward the harbour, guided by the steady beam of light. "
)


def spoken_clip(folder: Path) -> bytes:
    """Exactly SECONDS of espeak-ng's speech as a 16-bit WAV at its own rate (22,050 Hz)."""
    import numpy as np
    import soundfile

    if shutil.which("espeak-ng") is None:
        sys.exit("this benchmark speaks with espeak-ng: apt-get install espeak-ng")
    wav = folder / "speech.wav"
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(wav), TEXT * 8], check=True)
    samples, rate = soundfile.read(wav, dtype="float32")
    need = int(SECONDS * rate)
    samples = np.tile(samples, need // len(samples) + 1)[:need]
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def in_process(model: Path, tokens: int) -> Any:
    from transformers import pipeline

    pipe = pipeline("automatic-speech-recognition", model=str(model), device="cpu")

    def run(wav: bytes) -> str:
        import soundfile
        from scipy.signal import resample_poly

        samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
        g = math.gcd(rate, 16000)
        samples = resample_poly(samples, 16000 // g, rate // g).astype("float32")  # as the runner does
        found = pipe(
            {"raw": samples, "sampling_rate": 16000},
            chunk_length_s=30,
            batch_size=1,
            generate_kwargs={"max_new_tokens": tokens, "task": "transcribe", "language": "en"},
        )
        return str(found["text"]).strip()

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per 30 s chunk")
    args = parser.parse_args()
    from torch_models import write_tiny_whisper

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = write_tiny_whisper(folder / "tiny-whisper")
        wav = spoken_clip(folder)
        local = in_process(model, args.tokens)
        with modelyard_server() as url, httpx.Client(base_url=url, timeout=600) as http:
            http.post("/api/models", json={"path": str(model), "name": "whisper"}).raise_for_status()
            options = {"options": {"max_new_tokens": args.tokens}}
            http.put("/api/models/whisper/settings", json=options).raise_for_status()
            http.post("/api/models/whisper/load", json={}).raise_for_status()
            form = {"model": "whisper", "language": "en"}

            def gateway() -> str:
                r = http.post("/v1/audio/transcriptions", data=form, files={"file": ("speech.wav", wav)})
                r.raise_for_status()
                return str(r.json()["text"])

            assert gateway() == local(wav), "the gateway and the pipeline disagree"  # and warm up
            mine, theirs = [], []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                local(wav)
                theirs.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                gateway()
                mine.append(time.perf_counter() - t0)
    t_local, t_gateway = statistics.median(theirs), statistics.median(mine)
    print(f"{SECONDS:.0f} s of espeak-ng speech, tiny Whisper ({args.tokens} tokens per 30 s chunk), CPU")
    print(f"medians of {args.rounds} alternating rounds")
    print(f"in-process pipeline: {t_local:.2f} s  (real-time factor {SECONDS / t_local:.1f}x)")
    print(f"through the gateway: {t_gateway:.2f} s  (real-time factor {SECONDS / t_gateway:.1f}x)")
    print(f"ratio: {t_local / t_gateway:.2f}x (in-process time / gateway time; goal >= 0.9x)")


if __name__ == "__main__":
    main()
