"""Cleaning steps: normalisation, filters and deduplication, each counting its drops by reason."""

from cleaning.dedup import ExactDedup
from cleaning.filters import LengthFilter
from cleaning.normalize import NormalizeText

__all__ = ["ExactDedup", "LengthFilter", "NormalizeText"]
