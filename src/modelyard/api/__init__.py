"""The management REST API under /api."""
