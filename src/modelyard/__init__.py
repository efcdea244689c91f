"""modelyard: a library of local AI models that runs them and serves them."""

__version__ = "0.1.0"
