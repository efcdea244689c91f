"""Offline readers of model files. They read headers and metadata, never tensor data, and never
unpickle anything."""
