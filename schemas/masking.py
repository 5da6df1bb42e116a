"""API keys in what the project writes (logs, captures, reports, events): enough to tell keys apart, never
enough to use one. The mock, the proxy and the reference client all mask with these (they may not import
each other; all of them import schemas)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit

_KEY_NAMES = frozenset({"apikey", "api_key", "token"})
_KEY_IN_TEXT = re.compile(r"(?i)((?:apikey|api_key|token)\s*[=:]\s*)([^&\s\"']+)")


def mask_key(key: str | None) -> str:
    """Enough of a key to tell keys apart, never enough to use it."""
    if not key:
        return "<none>"
    if len(key) <= 4:
        return "*" * len(key)
    return key[:2] + "*" * (len(key) - 4) + key[-2:]


def mask_query(query: Mapping[str, str]) -> dict[str, str]:
    return {k: (mask_key(v) if k.lower() in _KEY_NAMES else v) for k, v in query.items()}


def mask_target(target: str) -> str:
    """A request target (path?query) with every key in its query masked."""
    url = urlsplit(target)
    if not url.query:
        return target
    pairs = [(k, mask_key(v) if k.lower() in _KEY_NAMES else v) for k, v in parse_qsl(url.query, True)]
    return url._replace(query=urlencode(pairs, safe="*")).geturl()


def mask_text(text: str) -> str:
    """Free text (a URL, an error message) with every `apikey=...` value masked."""
    return _KEY_IN_TEXT.sub(lambda m: m.group(1) + mask_key(m.group(2)), text)
