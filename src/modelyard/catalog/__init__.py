"""The catalog: the library's records in a SQL database (SQLite in WAL mode by default)."""
