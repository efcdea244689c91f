"""``python -m modelyard.runners --task TASK --model PATH --name NAME --port PORT --options JSON``

Loads the model first (a failure goes to stderr, which is the instance's log, and exits 1), then
serves it. The controller polls /health until it answers."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import Any

from modelyard.address import IDLE_CONNECTION_S
from modelyard.errors import ModelyardError
from modelyard.runners import ENGINE_KEY
from modelyard.runners.tasks import TASKS
from modelyard.tracing import ENDPOINT_VAR, RUNNER_SERVICE, Tracing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modelyard.runners")
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--model", required=True, help="the model's file or folder")
    parser.add_argument("--name", required=True, help="the name clients use")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--options", default="{}", help="the backend's options, JSON")
    parser.add_argument("--adapters", default="[]", help="[{name, path, weight}], JSON")
    parser.add_argument("--components", default="{}", help="{role: path}, JSON (image models)")
    parser.add_argument("--template", default="sd_official", help="image models: sd_official, flux, video")
    parser.add_argument("--capabilities", default='["text-to-image"]', help="image models: JSON list")
    parser.add_argument("--outputs", default="outputs", help="image models: where url answers write files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("modelyard.runner")
    log.info("loading %s (%s) from %s", args.name, args.task, args.model)
    _quiet()
    try:
        routes, info, stats = TASKS[args.task](args, json.loads(args.options))
    except ModelyardError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except Exception as e:
        log.exception("the model could not be loaded")
        print(f"error: the model could not be loaded: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    log.info("ready: %s", json.dumps(info))

    from modelyard.runners.app import build_app

    tracing = _tracing(log)
    app = build_app(args.name, routes, info, stats, key=os.environ.pop(ENGINE_KEY, None), tracing=tracing)
    code = _serve(app, args.host, args.port)
    if tracing is not None:
        tracing.close()  # what is left goes out before the process ends
    # Nothing is left to write once the server has stopped; the interpreter's own finalization
    # (torch's, mostly) would take another second of every unload, so the process ends at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _tracing(log: logging.Logger) -> Tracing | None:
    """Spans of the requests the gateway traced, where its backend said to send them."""
    endpoint = os.environ.get(ENDPOINT_VAR)
    if not endpoint:
        return None
    try:  # roots are never sampled here: a span only under the gateway's
        return Tracing(endpoint, 0.0, service=RUNNER_SERVICE)
    except ImportError as e:  # an environment made before the runner traced
        log.warning("no traces: %s (install this environment again)", e)
        return None


def _serve(app: Any, host: str, port: int) -> int:
    """The HTTP server on a thread of its own; the model's work on this, the main thread
    (compute.py), until the server stops (SIGTERM, SIGINT). The exit status."""
    import uvicorn

    from modelyard.runners.compute import MAIN

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, timeout_keep_alive=IDLE_CONNECTION_S
    )
    server = uvicorn.Server(config)

    def http() -> None:
        try:
            server.run()
        finally:
            MAIN.shutdown()

    def stop(_signal: int, _frame: Any) -> None:
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    thread = threading.Thread(target=http, name="http", daemon=True)
    thread.start()
    MAIN.serve()
    thread.join(30)
    return 0 if server.started else 1


def _quiet() -> None:
    """No progress bars in the instance's log."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    off: Any = hf_logging.disable_progress_bar
    off()
