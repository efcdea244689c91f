"""An Ollama-compatible API on its own listener (MODELYARD_OLLAMA_PORT): the library as Ollama's
models, chat, generate and embeddings translated onto the gateway's engines."""
