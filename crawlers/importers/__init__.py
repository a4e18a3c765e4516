"""Dataset importers: each turns one file format into corpusmill records, streaming."""

from crawlers.importers.chat import AlpacaReader, OpenAIChatReader, ShareGPTReader
from crawlers.importers.columnar import HfDatasetReader, ParquetReader
from crawlers.importers.csv import CsvReader, TsvReader
from crawlers.importers.detect import ImportSource, detect_format
from crawlers.importers.documents import DirectoryReader, WarcReader
from crawlers.importers.jsonl import JsonlReader, JsonReader
from crawlers.importers.records import RecordsReader

__all__ = [
    "AlpacaReader",
    "CsvReader",
    "DirectoryReader",
    "HfDatasetReader",
    "ImportSource",
    "JsonReader",
    "JsonlReader",
    "OpenAIChatReader",
    "ParquetReader",
    "RecordsReader",
    "ShareGPTReader",
    "TsvReader",
    "WarcReader",
    "detect_format",
]
