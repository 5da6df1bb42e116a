"""Loads the schema files once and resolves every `$ref` locally: nothing is ever fetched."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .codes import MESSAGES

SCHEMA_DIR = Path(__file__).with_name("json")
BASE_URI = "https://infoway-mock.dev/schemas/"

# Which schema describes which frame, by socket and `code` (from the one code table, codes.py).
CLIENT_SCHEMAS: dict[int, str] = {
    m.code: m.schema for m in MESSAGES if m.direction == "client" and "ws" in m.sockets
}
SERVER_SCHEMAS: dict[int, str] = {
    m.code: m.schema for m in MESSAGES if m.direction == "server" and "ws" in m.sockets
}
NEWS_CLIENT_SCHEMAS: dict[int, str] = {
    m.code: m.schema for m in MESSAGES if m.direction == "client" and "news" in m.sockets
}
NEWS_SERVER_SCHEMAS: dict[int, str] = {
    m.code: m.schema for m in MESSAGES if m.direction == "server" and "news" in m.sockets
}
TABLES = {
    ("ws", "client"): CLIENT_SCHEMAS,
    ("ws", "server"): SERVER_SCHEMAS,
    ("news", "client"): NEWS_CLIENT_SCHEMAS,
    ("news", "server"): NEWS_SERVER_SCHEMAS,
}


def names() -> list[str]:
    """Every schema file, as a path relative to SCHEMA_DIR."""
    return sorted(p.relative_to(SCHEMA_DIR).as_posix() for p in SCHEMA_DIR.rglob("*.json"))


@cache
def load(name: str) -> dict[str, Any]:
    """A schema by its path relative to schemas/json (e.g. "server/trade-push.json")."""
    path = SCHEMA_DIR / name
    if not path.is_file():
        raise KeyError(f"no schema {name!r} under {SCHEMA_DIR}")
    return json.loads(path.read_text(encoding="utf-8"))


def uri(name: str) -> str:
    return BASE_URI + name


@cache
def registry() -> Registry:
    resources = [
        (uri(n), Resource.from_contents(load(n), default_specification=DRAFT202012)) for n in names()
    ]
    return Registry().with_resources(resources)


def resources() -> list[tuple[str, dict[str, Any]]]:
    return [(uri(n), load(n)) for n in names()]
