"""model-compose's files (the model-compose chapter): a component of type model, read as written,
applied to the library and run with its input and output mappings (component.py); the
``${...}`` expressions they use (expressions.py); reading a file (files.py)."""
