"""An extraction function whose trafilatura path hangs, like a pathological page would."""

import time

from crawlers.extract import extract_from_bytes


def extract_or_hang(body: bytes, declared: str | None, url: str, use_trafilatura: bool) -> dict:
    if use_trafilatura:
        time.sleep(600)
    return extract_from_bytes(body, declared, url, use_trafilatura)
