"""An extraction function whose trafilatura path hangs, like a pathological page would."""

import time

from crawlers.pipelines import _extract


def extract_or_hang(body: bytes, declared: str | None, url: str, use_trafilatura: bool) -> dict:
    if use_trafilatura:
        time.sleep(600)
    return _extract(body, declared, url, use_trafilatura)
