"""Turning one fetched HTML page into text and question/answer pairs.

Runs inside an extraction worker process (see :mod:`crawlers.pipelines`), because trafilatura has
no timeout of its own and one pathological page must not hang a crawl.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any
from urllib.parse import urljoin

import lxml.etree
import lxml.html
from bs4 import BeautifulSoup, Tag
from lxml.html import HtmlElement

from corpusmill.langid import detect_language
from corpusmill.schema import Record, Source
from crawlers.encoding import guess_encoding
from crawlers.urls import canonical_url

HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
SPACES = re.compile(r"\s+")
SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+([.,;:!?)\]])")
PILCROW = "¶"
HEADERLINKS = './/a[contains(concat(" ", normalize-space(@class), " "), " headerlink ")]'
CANONICAL = '//link[contains(concat(" ", normalize-space(@rel), " "), " canonical ")]'
FAQ_MARKUP = re.compile(r"ld\+json|<details|<dl", re.IGNORECASE)
"""Markup a FAQ pattern needs: JSON-LD, ``<details>`` or ``<dl>`` (question headings are checked apart)."""


def decode_html(body: bytes, declared: str | None) -> tuple[str, str]:
    """Decode a page whose declared charset may lie; returns (text, encoding used).

    Valid UTF-8 with non-ASCII bytes is almost never anything else, so it wins over a declared
    latin-1; a declared charset that fails to decode strictly is replaced by charset-normalizer's
    best guess.
    """
    try:
        text = body.decode("utf-8")
        return text, "utf-8"
    except UnicodeDecodeError:
        pass
    if declared:
        try:
            return body.decode(declared), declared.lower()
        except (UnicodeDecodeError, LookupError):
            pass
    encoding = guess_encoding(body)
    if encoding is None:
        return body.decode("cp1252", errors="replace"), "cp1252"
    return body.decode(encoding), encoding


def _text(node: Tag | None) -> str:
    if node is None:
        return ""
    for link in node.select("a.headerlink"):
        link.decompose()
    text = SPACES.sub(" ", node.get_text(" ").replace(PILCROW, ""))
    return SPACE_BEFORE_PUNCTUATION.sub(r"\1", text).strip()


def _block_text(nodes: list[Tag]) -> str:
    paragraphs = [_text(node) for node in nodes]
    return "\n\n".join(p for p in paragraphs if p)


FAQ_PAGE = re.compile(r"faq|question|\bhelp\b|\bq\s*&\s*a\b", re.IGNORECASE)
"""A URL or title that says the page is a list of questions or help topics."""

CHROME_TAGS = frozenset({"nav", "aside", "header", "footer", "form", "search"})
CHROME_ROLES = frozenset({"navigation", "search", "banner", "contentinfo", "complementary"})
"""Where a heading is site furniture (a sidebar's "This Page", "Quick search"), not a topic."""


def _looks_like_faq(url: str, title: str) -> bool:
    return FAQ_PAGE.search(f"{url} {title}") is not None


def _in_chrome(tag: Tag) -> bool:
    return any(parent.name in CHROME_TAGS or parent.get("role") in CHROME_ROLES for parent in tag.parents)


def _pair(question: str, answer: str, how: str) -> dict[str, str] | None:
    question, answer = question.strip(), answer.strip()
    if not question or not answer:
        return None
    return {"question": question, "answer": answer, "pattern": how}


def _jsonld_pairs(soup: BeautifulSoup) -> list[dict[str, str]]:
    pairs = []
    for script in soup.find_all("script", attrs={"type": "application/ld+json"}):
        try:
            data = json.loads(script.string or "")
        except ValueError:
            continue
        stack: list[Any] = [data]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(reversed(node))
                continue
            if not isinstance(node, dict):
                continue
            kinds = node.get("@type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if "@graph" in node:
                stack.append(node["@graph"])
            if "FAQPage" in kinds or "QAPage" in kinds:
                entities = node.get("mainEntity") or []
                for question in entities if isinstance(entities, list) else [entities]:
                    if not isinstance(question, dict):
                        continue
                    answer = question.get("acceptedAnswer") or question.get("suggestedAnswer") or {}
                    if isinstance(answer, list):
                        answer = answer[0] if answer else {}
                    answer_html = answer.get("text", "") if isinstance(answer, dict) else ""
                    answer_text = _text(BeautifulSoup(answer_html, "html.parser"))
                    pair = _pair(str(question.get("name", "")), answer_text, "jsonld")
                    if pair:
                        pairs.append(pair)
    return pairs


def _details_pairs(soup: BeautifulSoup, faq_page: bool) -> list[dict[str, str]]:
    pairs = []
    for details in soup.find_all("details"):
        summary = details.find("summary")
        if summary is None:
            continue
        question = _text(summary)
        summary.extract()
        if question.endswith("?") or faq_page:
            pair = _pair(question, _text(details), "details")
            if pair:
                pairs.append(pair)
    return pairs


def _dl_pairs(soup: BeautifulSoup, faq_page: bool) -> list[dict[str, str]]:
    pairs = []
    for dl in soup.find_all("dl"):
        for dt in dl.find_all("dt", recursive=False):
            question = _text(dt)
            if not (question.endswith("?") or faq_page):
                continue
            answers = []
            for sibling in dt.find_next_siblings():
                if sibling.name != "dd":
                    break
                answers.append(sibling)
            pair = _pair(question, _block_text(answers), "dl")
            if pair:
                pairs.append(pair)
    return pairs


def _heading_pairs(soup: BeautifulSoup, faq_page: bool) -> list[dict[str, str]]:
    """Sub-headings (h2–h6) that ask a question, answered by what follows; h1 is the page title.
    On a FAQ or help page every sub-heading is a topic, answered by the text before the next
    heading ("My shirt is the wrong size!", "Coffee"); a topic heading followed straight by
    sub-headings has no answer of its own and gives no pair. Headings in navigation, sidebars
    and footers are never topics."""
    pairs = []
    for heading in soup.find_all(HEADINGS[1:]):
        question = _text(heading)
        asks = question.endswith("?")
        if not (asks or faq_page) or _in_chrome(heading):
            continue
        level = int(heading.name[1])
        answer: list[Tag] = []
        for sibling in heading.find_next_siblings():
            if sibling.name in HEADINGS and (int(sibling.name[1]) <= level or not asks):
                break
            if sibling.name == "section" and sibling.find(HEADINGS):
                break
            answer.append(sibling)
        pair = _pair(question, _block_text(answer), "heading" if asks else "topic_heading")
        if pair:
            pairs.append(pair)
    return pairs


def faq_pairs(soup: BeautifulSoup, url: str, title: str) -> list[dict[str, str]]:
    """Question/answer pairs from JSON-LD, <details>, <dl> and question headings; first wins."""
    faq_page = _looks_like_faq(url, title)
    found = _jsonld_pairs(soup) + _details_pairs(soup, faq_page) + _dl_pairs(soup, faq_page)
    found += _heading_pairs(soup, faq_page)
    seen: set[str] = set()
    unique = []
    for pair in found:
        key = " ".join(pair["question"].casefold().split())
        if key not in seen:
            seen.add(key)
            unique.append(pair)
    return unique


def _soup_text(soup: BeautifulSoup) -> str:
    """Fallback main text: the <main>/<article> element (or body) without navigation chrome."""
    root = soup.find("main") or soup.find("article") or soup.find(attrs={"role": "main"}) or soup.body or soup
    for tag in root.find_all(["script", "style", "nav", "header", "footer", "aside", "noscript", "form"]):
        tag.decompose()
    blocks = [_text(node) for node in root.find_all(["p", "li", "pre", "td", *HEADINGS])]
    return "\n\n".join(b for b in blocks if b) or _text(root)


def parse_html(html: str) -> HtmlElement:
    """The page's root element, parsed once: by trafilatura's own loader (the tree it would build
    itself), or by lxml's lenient parser for fragments trafilatura refuses as dubious."""
    from trafilatura.utils import load_html

    tree = load_html(html)
    if tree is None:
        try:
            tree = lxml.html.document_fromstring(html)
        except lxml.etree.ParserError:  # nothing but whitespace or comments
            tree = lxml.html.document_fromstring("<html></html>")
    return tree


def _element_text(node: HtmlElement) -> str:
    """:func:`_text` for an lxml element (without Sphinx's ¶ header links); on a copy, because
    the header links are removed."""
    node = copy.deepcopy(node)
    for link in node.xpath(HEADERLINKS):
        link.drop_tree()
    text = SPACES.sub(" ", " ".join(node.itertext()).replace(PILCROW, ""))
    return SPACE_BEFORE_PUNCTUATION.sub(r"\1", text).strip()


def _may_hold_faq(html: str, headings: list[tuple[str, str]], faq_page: bool) -> bool:
    """Whether any FAQ pattern can match: JSON-LD, <details>, <dl>, or a sub-heading asking a
    question — any sub-heading on a FAQ or help page (``headings``: (tag, text) pairs). Most
    pages have none, and they are spared a BeautifulSoup parse."""
    asked = any(tag != "h1" and (faq_page or text.endswith("?")) for tag, text in headings)
    return FAQ_MARKUP.search(html) is not None or asked


def page_facts(html: str, url: str, tree: HtmlElement) -> dict[str, Any]:
    """Title, canonical URL, headings, language attribute and FAQ pairs.

    Read from the lxml tree the page is parsed into once; the BeautifulSoup tree that FAQ
    extraction walks is built only for pages that may hold a FAQ (a soup costs several times an
    lxml parse, and it was the crawl's largest CPU cost per page above a plain spider's).
    """
    title_node = tree.find(".//title")
    title = _element_text(title_node) if title_node is not None else ""
    canonical = tree.xpath(CANONICAL)
    headings = [(h.tag, _element_text(h)) for h in tree.iter(*HEADINGS)]
    may_hold = _may_hold_faq(html, headings, _looks_like_faq(url, title))
    faq = faq_pairs(BeautifulSoup(html, "lxml"), url, title) if may_hold else []
    return {
        "title": title,
        "canonical": canonical[0].get("href") if canonical else None,
        "html_lang": tree.get("lang") if tree.tag == "html" else None,
        "headings": [text for _, text in headings[:50] if text],
        "faq": faq,
    }


def extract_page(html: str, url: str, use_trafilatura: bool = True) -> dict[str, Any]:
    """Everything the crawler keeps from a page; run under a timeout.

    ``use_trafilatura=False`` is the fallback for pages where trafilatura timed out.
    """
    import trafilatura

    tree = parse_html(html)
    facts = page_facts(html, url, tree)
    text = None
    if use_trafilatura:  # trafilatura copies a tree it is handed: ``tree`` stays whole
        text = trafilatura.extract(tree, url=url, include_comments=False, include_tables=True, favor_recall=True)
    if text and text.strip():
        text, extractor = text.strip(), "trafilatura"
    else:
        text, extractor = _soup_text(BeautifulSoup(html, "lxml")), "beautifulsoup"
    lang, lang_score = detect_language(text)
    return {
        **facts,
        "text": text,
        "extractor": extractor,
        "lang": lang,
        "lang_score": lang_score,
        "content_hash": content_hash(text),
    }


def extract_from_bytes(body: bytes, declared: str | None, url: str, use_trafilatura: bool = True) -> dict[str, Any]:
    """Decode a fetched page (see :func:`decode_html`) and extract it."""
    html, encoding = decode_html(body, declared)
    return {**extract_page(html, url, use_trafilatura), "encoding": encoding}


def content_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def page_records(
    page: dict[str, Any],
    url: str,
    dataset: str,
    kind: str = "crawl",
    fetched_at: str | None = None,
    depth: int = 0,
    requested_url: str | None = None,
) -> list[Record]:
    """The page's text record and one chat record per question/answer pair (one ``group``).

    ``meta.requested_url`` is the URL as scheduled (before redirects): a resumed crawl uses it to
    know which requests already have their records written."""
    declared = page.get("canonical")
    group = canonical_url(urljoin(url, declared) if declared else url)
    source = Source(kind=kind, uri=url, dataset=dataset, fetched_at=fetched_at)  # type: ignore[arg-type]
    meta = {
        "title": page["title"],
        "lang": page["lang"],
        "lang_score": page["lang_score"],
        "headings": page["headings"],
        "canonical_url": group,
        "content_hash": page["content_hash"],
        "depth": depth,
        "requested_url": requested_url or url,
        "extractor": page["extractor"],
        "encoding": page["encoding"],
    }
    records = []
    if page["text"].strip():
        records.append(
            Record(id=page_record_id(dataset, group), text=page["text"], group=group, source=source, meta=meta)
        )
    for pair in page["faq"]:
        records.append(
            Record(
                id=page_record_id(dataset, group, pair["question"]),
                messages=[
                    {"role": "user", "content": pair["question"]},
                    {"role": "assistant", "content": pair["answer"]},
                ],
                group=group,
                source=source,
                meta={
                    "title": page["title"],
                    "lang": page["lang"],
                    "faq_pattern": pair["pattern"],
                    "canonical_url": group,
                    "requested_url": requested_url or url,
                },
            )
        )
    return records


def page_record_id(dataset: str, group: str, question: str | None = None) -> str:
    """A page record's id from its canonical URL (and, for a FAQ pair, its question): stable
    across crawls of the same site."""
    key = group if question is None else f"{group}\0{question}"
    return f"{dataset}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def rebased(record: Record, served: str, published: str) -> Record:
    """A crawled page's record as if fetched from ``published`` (``https://help.example.com``)
    rather than the copy of the site that was crawled at ``served`` (a local server on a random
    port, a staging host): URLs, group and id re-derived from the published origin, the fetch
    time dropped. So two crawls of the same copy give the same records, whatever port it had."""

    def moved(url: str | None) -> str | None:
        return published + url[len(served) :] if url and url.startswith(served) else url

    group = moved(record.group)
    meta = {
        **record.meta,
        **{key: moved(record.meta[key]) for key in ("canonical_url", "requested_url") if key in record.meta},
    }
    question = record.messages[0].content if record.messages else None
    source = record.source.model_copy(update={"uri": moved(record.source.uri), "fetched_at": None})
    new_id = page_record_id(record.source.dataset, group, question) if group else record.id
    return record.model_copy(update={"id": new_id, "group": group, "meta": meta, "source": source})
