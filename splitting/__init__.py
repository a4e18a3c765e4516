"""Splitters: assign every record to train/validation/test (or any named splits)."""

from splitting.random_split import RandomSplitter

__all__ = ["RandomSplitter"]
