"""corpusmill: one reproducible path from a website or dataset to a versioned training release."""

__version__ = "0.1.0"
