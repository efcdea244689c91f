"""The library: import, scan, manage. Works on the catalog; knows nothing of HTTP."""

from modelyard.library.library import Library
from modelyard.library.requests import ImportRequest, ScanReport

__all__ = ["ImportRequest", "Library", "ScanReport"]
