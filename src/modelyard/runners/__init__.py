"""modelyard's own engine server for the Python backends (sentence-transformers, transformers,
diffusers): one process per instance, speaking the OpenAI protocol and /health like any engine.

It runs in the server's interpreter or in a managed virtualenv, so it imports only the standard
library, fastapi / uvicorn / pydantic, the backend's own packages, and modelyard.runners /
modelyard.backends option schemas."""

ENGINE_KEY = "MODELYARD_ENGINE_KEY"  # the variable the runner reads its API key from
