"""Dataset importers: each turns one file format into corpusmill records, streaming."""

from crawlers.importers.csv import CsvReader
from crawlers.importers.jsonl import JsonlReader
from crawlers.importers.records import RecordsReader

__all__ = ["CsvReader", "JsonlReader", "RecordsReader"]
