"""The API documents, self-contained: OpenAPI 3.1 for REST, AsyncAPI 3.0 for the WebSockets.

`schemas/openapi.yaml` and `schemas/asyncapi.yaml` `$ref` the JSON Schema files by relative path, so the
documents and this package's validators share one source. Tools (Swagger UI, Prism, Postman, client
generators, Schemathesis) want one file they can fetch by URL, and the schema files carry `$id`s under a
domain nobody serves, against which a compliant resolver would resolve their relative refs. `bundle()`
therefore makes one file: each referenced schema file, and each of its `$defs`, becomes a component under
`components/schemas` (without `$id`), every `$ref` is rewritten to point there, and the generated response
examples are inlined. This is what the mock serves and what `infoway-mock spec` prints.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

import yaml

from .registry import SCHEMA_DIR

DOC_DIR = Path(__file__).parent
DOCUMENTS = {"openapi": DOC_DIR / "openapi.yaml", "asyncapi": DOC_DIR / "asyncapi.yaml"}
# AsyncAPI reads a bare component as its own schema dialect; ours are draft 2020-12, so each one says so.
_LOCAL = ("http://127.0.0.1", "http://localhost")
_SCHEMA_FORMAT = {"asyncapi": "application/schema+json;version=draft-2020-12"}


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter when PyYAML has it (7x faster); multi-line text as literal blocks, as written."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|" if "\n" in text else None)


_Dumper.add_representer(str, _str)


class BundleError(ValueError):
    """A document cannot be bundled: a reference that does not resolve, or two schemas with one name."""


def load(name: str) -> dict[str, Any]:
    """A document as written (relative `$ref`s), by name: "openapi" or "asyncapi"."""
    path = _path(name)
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def bundle(name: str, server_url: str | None = None) -> dict[str, Any]:
    """The document with every external reference resolved into it.

    `server_url` (e.g. "http://127.0.0.1:8765") names the mock that serves the copy: first in OpenAPI's
    `servers`, and as the host of AsyncAPI's `mock` server, so a tool pointed at the copy talks to it.
    """
    doc = copy.deepcopy(_bundled(name))
    if server_url is not None:
        parts = urlsplit(server_url)
        if name == "openapi":
            # The serving mock replaces the document's placeholder for a local one.
            own = {"url": server_url, "description": "The mock that serves this copy."}
            others = [s for s in doc.get("servers", []) if not s.get("url", "").startswith(_LOCAL)]
            doc["servers"] = [own, *others]
        else:
            for server in doc.get("servers", {}).values():
                if server.get("protocol") in ("ws", "http"):
                    server["host"] = parts.netloc
    return doc


def render(name: str, server_url: str | None = None, fmt: str = "yaml") -> str:
    """`bundle()` as text: "yaml" (block style, UTF-8 kept) or "json"."""
    doc = bundle(name, server_url)
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if fmt != "yaml":
        raise ValueError(f"format must be yaml or json, not {fmt!r}")
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def _path(name: str) -> Path:
    try:
        return DOCUMENTS[name]
    except KeyError:
        raise KeyError(f"no document {name!r}: one of {', '.join(DOCUMENTS)}") from None


@cache
def _bundled(name: str) -> dict[str, Any]:
    path = _path(name)
    return _Bundler(path, _SCHEMA_FORMAT.get(name)).run(load(name))


def _camel(stem: str) -> str:
    parts = re.split(r"[-_.]", stem)
    return "".join(p[:1].upper() + p[1:] for p in parts if p)


def _pointer(doc: Any, pointer: str, where: str) -> Any:
    node = doc
    for raw in pointer.split("/")[1:] if pointer else []:
        key = raw.replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(key)] if isinstance(node, list) else node[key]
        except (KeyError, IndexError, ValueError, TypeError):
            raise BundleError(f"{where}: no {pointer!r}") from None
    return node


class _Bundler:
    def __init__(self, doc_path: Path, schema_format: str | None) -> None:
        self.doc_path = doc_path
        self.schema_format = schema_format
        self.components: dict[str, Any] = {}
        self.sources: dict[str, str] = {}  # component name -> "file#/$defs/x", to refuse two under one name
        self.files: dict[Path, Any] = {}

    def run(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = self.walk(doc, self.doc_path, main=True)
        schemas = out.setdefault("components", {}).setdefault("schemas", {})
        clash = sorted(set(schemas) & set(self.components))
        if clash:
            raise BundleError(f"{self.doc_path.name}: components named like schema files: {clash}")
        for key in sorted(self.components):
            schemas[key] = self.components[key]
        return out

    def walk(self, node: Any, file: Path, *, main: bool = False) -> Any:
        if isinstance(node, list):
            return [self.walk(v, file, main=main) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            target, inline = self.ref(ref, file, main)
            if inline is not None:
                return inline
            node = {**node, "$ref": target}
        return {k: (v if k == "$ref" else self.walk(v, file, main=main)) for k, v in node.items()}

    def ref(self, ref: str, file: Path, main: bool) -> tuple[str, Any]:
        """(rewritten reference, None), or (ref, the object to put in its place) for a non-schema file."""
        url, fragment = urldefrag(ref)
        if not url:
            if main:
                return ref, None
            return self.component(file, fragment), None
        target = (file.parent / url).resolve()
        if not target.is_file():
            raise BundleError(f"{file.name}: {ref!r} names no file")
        if target.suffix == ".json" and target.is_relative_to(SCHEMA_DIR.resolve()):
            return self.component(target, fragment), None
        # Not a schema (the generated examples): its object goes where the reference was.
        obj = _pointer(self.read(target), fragment, f"{file.name}: {ref!r}")
        return ref, self.walk(copy.deepcopy(obj), target)

    def read(self, path: Path) -> Any:
        if path not in self.files:
            text = path.read_text(encoding="utf-8")
            self.files[path] = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        return self.files[path]

    def component(self, file: Path, pointer: str) -> str:
        """The component holding file#pointer (registered on first use) and the pointer into it."""
        parts = pointer.split("/")
        if len(parts) >= 3 and parts[1] == "$defs":
            at, rest = f"/$defs/{parts[2]}", "/".join(["", *parts[3:]]) if len(parts) > 3 else ""
            name, source = _camel(parts[2]), f"{file.name}#{at}"
        else:
            at, rest = "", pointer
            name, source = _camel(file.stem), file.name
        known = self.sources.get(name)
        if known is None:
            self.sources[name] = source
            self.components[name] = None  # placeholder while its own references are walked
            body = _pointer(self.read(file), at, file.name)
            schema = {k: v for k, v in body.items() if k not in ("$id", "$schema", "$defs")}
            schema = self.walk(copy.deepcopy(schema), file)
            if self.schema_format:
                schema = {"schemaFormat": self.schema_format, "schema": schema}
            self.components[name] = schema
        elif known != source:
            raise BundleError(f"two schemas would be the component {name!r}: {known} and {source}")
        prefix = "/schema" if self.schema_format else ""
        return f"#/components/schemas/{name}{prefix}{rest}"
