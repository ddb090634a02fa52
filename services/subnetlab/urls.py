"""Checking URLs that people type (specs, flags, settings): one set of rules and words.

Why a module of its own: specs (`miner.copyFrom`, a backend `url`), `subnetlab up
--redis-url` and the operator's settings all take URLs; each must refuse a bad one with
the same reason, before anything uses it. Pure: nothing here connects anywhere.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

HTTP_SCHEMES = ("http", "https")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def shown(url: str) -> str:
    """`url` fit for an error message: a password in it is masked."""
    return re.sub(r"//([^/@:]*):[^/@]*@", r"//\1:***@", url)


def url_problem(url: str, schemes: tuple[str, ...], example: str) -> str | None:
    """Why `url` is not a usable URL of one of `schemes` (None: it is): no spaces, a known
    scheme, a host (a socket path for `unix://`), a numeric port if any. The reason quotes
    the URL with any password masked."""
    quoted = repr(shown(url))
    if any(c.isspace() for c in url):
        return f"{quoted} has spaces in it; expected a URL such as {example}"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a port that is no number or out of range
    except ValueError as exc:
        return f"{quoted} is not a URL ({exc}); expected {example}"
    if parts.scheme not in schemes:
        return (f"{quoted} must start with {' or '.join(s + '://' for s in schemes)} "
                f"(e.g. {example})")
    if parts.scheme == "unix":
        return None if parts.path else f"{quoted} names no socket path (e.g. unix:///run/redis.sock)"
    if not parts.hostname:
        return f"{quoted} names no host (e.g. {example})"
    return None


def check_http_url(flag: str, url: str | None, example: str = "http://127.0.0.1:8000") -> None:
    """Raise ValueError naming `flag` unless `url` (when given) is an http(s) URL with a
    host: the rule specs use for the same fields, for command-line flags."""
    if url is not None and (problem := url_problem(url, HTTP_SCHEMES, example)):
        raise ValueError(f"{flag}: {problem}")
