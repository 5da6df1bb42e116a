"""API keys never reach a log line, an event or an error message whole (as the mock masks them)."""

from __future__ import annotations

import logging
import re

from infoway_mock.schemas.masking import mask_key

_KEY_IN_TEXT = re.compile(r"(?i)(apikey\s*[=:]\s*)([^&\s\"']+)")


def mask_text(text: str, key: str | None = None) -> str:
    """`text` with every `apikey=...` / `apiKey: ...` value, and `key` itself wherever it appears, masked."""
    out = _KEY_IN_TEXT.sub(lambda m: m.group(1) + mask_key(m.group(2)), text)
    if key and len(key) > 4:
        out = out.replace(key, mask_key(key))
    return out


class MaskKeys(logging.Filter):
    """For websockets' logger: it logs the request line (with the key in the query) at debug level."""

    def __init__(self, key: str | None = None) -> None:
        super().__init__()
        self.key = key

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message, self.key)
        if masked != message:
            record.msg, record.args = masked, ()
        return True
