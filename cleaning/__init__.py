"""Cleaning steps: repair, normalisation, stripping, tokenization, filters, PII and dedup, each
counting its drops by reason."""

from cleaning.dedup import ExactDedup, NearDedup
from cleaning.filters import GopherQuality, LanguageFilter, LengthFilter, RegexDeny
from cleaning.normalize import FixUnicode, HtmlToText, NormalizeText
from cleaning.pii import RedactPII
from cleaning.strip import StripText
from cleaning.tokenize import Tokenize

__all__ = [
    "ExactDedup",
    "FixUnicode",
    "GopherQuality",
    "HtmlToText",
    "LanguageFilter",
    "LengthFilter",
    "NearDedup",
    "NormalizeText",
    "RedactPII",
    "RegexDeny",
    "StripText",
    "Tokenize",
]
