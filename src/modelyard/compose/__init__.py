"""model-compose's files (the model-compose chapter), read as written (files.py) and run once:
a component of type model, applied to the library and asked through the gateway with its input
and output mappings (component.py); a vector store's actions on an embedded index
(vectors.py); a request to a server that already runs (http.py); workflows of jobs over them
(workflows.py); the ``${...}`` expressions they use
(expressions.py)."""
