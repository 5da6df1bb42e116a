"""ECMA-262 regular-expression semantics for the `pattern` keyword on the full (jsonschema) path.

JSON Schema patterns are ECMA-262 expressions. Python's `re` differs in one way that matters for our
schemas: `$` also matches before a final newline, so "1.5\\n" would pass `^[0-9]+(\\.[0-9]+)?$` in
`jsonschema` while jsonschema-rs (ECMA semantics) rejects it, and the two paths would disagree. Each
unescaped `$` outside a character class is rewritten to `\\Z`, which is what ECMA's `$` means.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError


def to_python(pattern: str) -> str:
    out: list[str] = []
    in_class = escaped = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$":
            out.append(r"\Z")
            continue
        out.append(ch)
    return "".join(out)


@lru_cache(maxsize=512)
def compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(to_python(pattern))


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not compiled(patrn).search(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


# patternProperties keeps re.search: no schema here uses it.
EcmaValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})
