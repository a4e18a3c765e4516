"""Repair and normalisation: markup to text, mojibake, Unicode forms, whitespace, quotes."""

from __future__ import annotations

import re
import signal
import threading
import unicodedata
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from cleaning.base import TextMapper, TextParams
from corpusmill.registry import register
from corpusmill.schema import Record

ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
SPACES = re.compile(r"[^\S\n]+")
BLANK_LINES = re.compile(r"\n\s*\n\s*(\n\s*)+")
QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
    }
)
MARKUP = re.compile(r"<(html|body|div|p|br|span|a|ul|li|table|h[1-6]|article|section)\b[^>]*>", re.I)


class NormalizeParams(TextParams):
    form: Literal["NFC", "NFKC"] = "NFC"
    """NFKC also folds compatibility characters (ligatures, full-width letters); NFC keeps them."""
    collapse_whitespace: bool = True
    """Runs of spaces become one space, three or more newlines become a paragraph break."""
    quotes: Literal["keep", "ascii"] = "keep"
    """``ascii`` turns curly and angle quotes into ' and "."""


@register("normalize")
class NormalizeText(TextMapper):
    """Unicode normalisation (NFC or NFKC), whitespace runs collapsed, optional ASCII quotes."""

    Params: ClassVar[type[BaseModel]] = NormalizeParams

    def clean_text(self, text: str, record: Record) -> str:
        params: NormalizeParams = self.params  # type: ignore[assignment]
        text = unicodedata.normalize(params.form, text)
        text = ZERO_WIDTH.sub("", text)
        text = CONTROL.sub(" ", text).replace("\r\n", "\n").replace("\r", "\n")
        if params.quotes == "ascii":
            text = text.translate(QUOTES)
        if params.collapse_whitespace:
            text = SPACES.sub(" ", text)
            text = "\n".join(line.strip() for line in text.split("\n"))
            text = BLANK_LINES.sub("\n\n", text)
        return text.strip()


@register("fix_unicode")
class FixUnicode(TextMapper):
    """ftfy: mojibake (``CafÃ©`` → ``Café``), HTML entities, and other encoding accidents.

    Quotes are left curly (``normalize`` with ``quotes: ascii`` straightens them) and the Unicode
    form is left to ``normalize``."""

    def clean_text(self, text: str, record: Record) -> str:
        import ftfy

        fixed = ftfy.fix_text(text, unescape_html="auto", normalization=None, uncurl_quotes=False)
        if fixed != text:
            record.meta["unicode_fixed"] = True
        return fixed


class HtmlParams(TextParams):
    timeout: float = Field(default=10.0, gt=0)
    """Seconds trafilatura may spend on one text before the BeautifulSoup fallback is used."""


class _Timeout(Exception):
    pass


BLOCK_TAGS = ["address", "article", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure", "form"]
BLOCK_TAGS += ["h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "main", "ol", "p", "section", "table", "td", "th"]
BLOCK_TAGS += ["tr", "ul"]
"""Elements that start a new line of text (a table cell too, so cells do not run together)."""
BLOCK_BREAK = "\x00"


@register("html_to_text")
class HtmlToText(TextMapper):
    """Main content of texts that still hold markup: trafilatura, BeautifulSoup as the fallback.

    trafilatura has no timeout; in a worker's main thread an interval timer stops it (in other
    threads, where signals are unavailable, it runs unguarded).
    """

    Params: ClassVar[type[BaseModel]] = HtmlParams

    def clean_text(self, text: str, record: Record) -> str:
        if not MARKUP.search(text):
            return text
        extracted, extractor = self._trafilatura(text), "trafilatura"
        if not extracted:
            extracted, extractor = self._soup(text), "beautifulsoup"
        record.meta["html_extractor"] = extractor
        return extracted

    def _trafilatura(self, html: str) -> str:
        import trafilatura

        guarded = threading.current_thread() is threading.main_thread()
        if guarded:
            previous = signal.signal(signal.SIGALRM, self._alarm)
            signal.setitimer(signal.ITIMER_REAL, self.params.timeout)  # type: ignore[attr-defined]
        try:
            return (trafilatura.extract(html, include_comments=False, favor_recall=True) or "").strip()
        except _Timeout:
            return ""
        finally:
            if guarded:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)

    @staticmethod
    def _alarm(signum: int, frame: object) -> None:
        raise _Timeout

    @staticmethod
    def _soup(html: str) -> str:
        """The text as a browser lays it out: a line per block element (paragraph, list item,
        heading, ``<br>``, each line of a ``<pre>``), inline elements and source line breaks
        within a block read as one space — an answer cell's ``Open <b>Deliveries</b> in the
        app`` stays one line."""
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(html, "lxml")
        for tag in soup.find_all(["script", "style", "nav", "header", "footer", "aside", "noscript"]):
            tag.decompose()
        for pre in soup.find_all("pre"):
            pre.replace_with(BLOCK_BREAK + pre.get_text().replace("\n", BLOCK_BREAK) + BLOCK_BREAK)
        for tag in soup.find_all(BLOCK_TAGS):
            tag.insert_before(BLOCK_BREAK)
            tag.insert_after(BLOCK_BREAK)
        lines = (" ".join(block.split()) for block in soup.get_text().split(BLOCK_BREAK))
        return "\n".join(line for line in lines if line)
