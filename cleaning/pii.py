"""PII redaction: each match is checked (Luhn, IBAN mod-97, a real IP address, a dialable phone
number) before it becomes a typed placeholder, so version numbers, dates and order ids survive."""

from __future__ import annotations

import ipaddress
import re
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from cleaning.base import TextMapper, TextParams
from corpusmill.registry import register
from corpusmill.schema import Record

PiiType = Literal["email", "phone", "ip", "credit_card", "iban"]

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
VERSION_BEFORE = re.compile(r"\b(?:v|version|ver\.?|release)\s*$", re.I)
CARD_PREFIXES = (
    "4",
    "51",
    "52",
    "53",
    "54",
    "55",
    "34",
    "37",
    "6011",
    "65",
    "35",
    "36",
    "300",
    "301",
    "302",
    "303",
    "304",
    "305",
    "38",
    "2221",
    "2720",
    "222",
    "223",
    "224",
    "225",
    "226",
    "227",
    "228",
    "229",
    "23",
    "24",
    "25",
    "26",
    "270",
    "271",
    "62",
)
IBAN_LENGTHS = {
    "AT": 20,
    "BE": 16,
    "CH": 21,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "ES": 24,
    "FI": 18,
    "FR": 27,
    "GB": 22,
    "IE": 22,
    "IT": 27,
    "LU": 20,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "SE": 24,
}


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


class PiiParams(TextParams):
    types: list[PiiType] = Field(default_factory=lambda: ["email", "phone", "ip", "credit_card", "iban"])
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "DE", "FR"])
    """Regions whose national phone formats are recognised; international (+…) numbers always are."""


@register("pii")
class RedactPII(TextMapper):
    """Replaces PII with ``<EMAIL>``, ``<PHONE>``, ``<IP>``, ``<CREDIT_CARD>``, ``<IBAN>``;
    counts per type go to the step's stats (``redacted.<type>``) and ``meta.pii``."""

    Params: ClassVar[type[BaseModel]] = PiiParams

    def clean_text(self, text: str, record: Record) -> str:
        types = set(self.params.types)  # type: ignore[attr-defined]
        found: dict[str, int] = {}
        spans: list[tuple[int, int, str]] = []
        if "email" in types:
            spans += [(m.start(), m.end(), "email") for m in EMAIL.finditer(text)]
        if "iban" in types:
            spans += [(m.start(), m.end(), "iban") for m in IBAN.finditer(text) if iban_valid(m.group())]
        if "credit_card" in types:
            for m in CARD.finditer(text):
                digits = re.sub(r"\D", "", m.group())
                if 13 <= len(digits) <= 19 and digits.startswith(CARD_PREFIXES) and luhn_valid(digits):
                    spans.append((m.start(), m.end(), "credit_card"))
        if "ip" in types:
            spans += [
                (m.start(), m.end(), "ip")
                for m in IPV4.finditer(text)
                if _is_ip(m.group()) and not VERSION_BEFORE.search(text[: m.start()])
            ]
            spans += [
                (m.start(), m.end(), "ip")
                for m in IPV6.finditer(text)
                if m.group().count(":") >= 2 and _is_ip(m.group())
            ]
        if "phone" in types:
            spans += self._phones(text)
        out, cursor = [], 0
        for start, end, kind in sorted(spans):
            if start < cursor:
                continue  # overlaps an earlier, longer-lived match (an e-mail holding digits, say)
            out += [text[cursor:start], f"<{kind.upper()}>"]
            cursor = end
            found[kind] = found.get(kind, 0) + 1
        if not found:
            return text
        for kind, count in found.items():
            self.stats.metrics[f"redacted.{kind}"] += count
            record.meta.setdefault("pii", {})
            record.meta["pii"][kind] = record.meta["pii"].get(kind, 0) + count
        return "".join([*out, text[cursor:]])

    def _phones(self, text: str) -> list[tuple[int, int, str]]:
        import phonenumbers

        spans = {}
        for region in self.params.phone_regions:  # type: ignore[attr-defined]
            for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
                before = text[match.start - 1] if match.start else " "
                if before.isalnum() or before in "-#/":
                    continue  # part of an order id or reference, not a number on its own
                spans[(match.start, match.end)] = "phone"
        return [(start, end, kind) for (start, end), kind in spans.items()]


def _is_ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True
