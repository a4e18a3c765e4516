"""Getting text in: Scrapy spiders for sites and importers for existing datasets."""

from crawlers import importers, source

__all__ = ["importers", "source"]
