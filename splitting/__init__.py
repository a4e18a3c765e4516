"""Splitters: assign every record to train/validation/test (or any named splits)."""

from splitting.random_split import RandomSplitter
from splitting.stratified import StratifiedSplitter

__all__ = ["RandomSplitter", "StratifiedSplitter"]
