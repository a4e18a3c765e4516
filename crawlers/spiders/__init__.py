"""Scrapy spiders: decide what to fetch and yield pages; item pipelines do the rest."""

from crawlers.spiders.site import SiteSpider

__all__ = ["SiteSpider"]
