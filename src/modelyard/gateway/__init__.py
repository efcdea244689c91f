"""The OpenAI-compatible gateway under /v1. It never imports an engine: it resolves the model,
admits the request into the model's queue and streams the engine's answer through."""
