"""The catalog tests run twice: on SQLite (a file) and on PostgreSQL (a database of its own on a
server the tests start: tests/postgres.py)."""

from postgres import catalog_url, postgres, store

__all__ = ["catalog_url", "postgres", "store"]
