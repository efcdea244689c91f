"""The modelyard command line."""
