"""How a shared crawl stores requests in Redis: plain JSON, never pickle.

scrapy-redis pickles requests by default, so anyone who can write to the Redis a worker reads
runs code in that worker. This module is the ``SCHEDULER_SERIALIZER`` (scrapy-redis imports it
and calls :func:`dumps` / :func:`loads`): a request is its URL, method, callback and errback
names, meta, priority and ``dont_filter``, and :func:`loads` refuses anything else. A poisoned
Redis can then at worst inject URLs, which still meet the origin guard before any fetch.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_BYTES = 1 << 20
"""A request bigger than this is refused (its meta is the only part that can grow)."""
METHODS = frozenset({"GET", "HEAD"})
CALLBACK = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""A public method name of the spider; ``request_from_dict`` looks it up on the spider."""


class BadRequestData(ValueError):
    """Bytes in the queue that are not a request this codec wrote."""


def dumps(request: dict[str, Any]) -> bytes:
    """``request_to_dict``'s output as JSON; meta values JSON cannot hold are left out."""
    meta = {key: value for key, value in request.get("meta", {}).items() if _json_safe(value)}
    data = {
        "url": request["url"],
        "method": request.get("method", "GET"),
        "callback": request.get("callback"),
        "errback": request.get("errback"),
        "meta": meta,
        "priority": request.get("priority", 0),
        "dont_filter": request.get("dont_filter", False),
    }
    return json.dumps(data, separators=(",", ":")).encode()


def loads(data: bytes | str) -> dict[str, Any]:
    """A request dict for ``request_from_dict``; :class:`BadRequestData` for anything else."""
    if len(data) > MAX_BYTES:
        raise BadRequestData(f"request data over {MAX_BYTES} bytes")
    try:
        request = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestData(f"not a JSON request: {exc}") from None
    if not isinstance(request, dict) or set(request) != {
        "url",
        "method",
        "callback",
        "errback",
        "meta",
        "priority",
        "dont_filter",
    }:
        raise BadRequestData("not a request object")
    url, method = request["url"], request["method"]
    if not isinstance(url, str) or not re.match(r"^https?://", url):
        raise BadRequestData(f"not an http(s) URL: {str(url)[:100]!r}")
    if method not in METHODS:
        raise BadRequestData(f"method {str(method)[:20]!r} is not fetched")
    for name in ("callback", "errback"):
        value = request[name]
        if value is not None and not (isinstance(value, str) and CALLBACK.match(value)):
            raise BadRequestData(f"{name} {str(value)[:80]!r} is not a spider method name")
    if not isinstance(request["meta"], dict):
        raise BadRequestData("meta is not an object")
    if type(request["priority"]) is not int or type(request["dont_filter"]) is not bool:
        raise BadRequestData("priority or dont_filter has the wrong type")
    return request


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
