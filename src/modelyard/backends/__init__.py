"""Backends turn a Model and its typed options into an engine (base.py: the contract;
registry.py: the backends and which one serves a model): llama.cpp (llama_cpp.py),
llama-cpp-python (llama_cpp_python.py) and modelyard's runner for sentence-transformers,
transformers and diffusers (runner.py; their options schemas in their own modules, which the
runner imports)."""
