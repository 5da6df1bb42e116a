"""The OpenAPI document of the REST side: valid, built on the schema files, its examples the mock's own
output, served by the mock (with the AsyncAPI one) and printed by `infoway-mock spec`."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.readers import read_from_filename
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from infoway_mock.mockserver.cli import main as cli_main
from infoway_mock.schemas import documents
from infoway_mock.schemas.documents import BundleError
from infoway_mock.schemas.registry import SCHEMA_DIR
from tests.openapi_examples import generate

OPENAPI = documents.DOCUMENTS["openapi"]
EXAMPLES_REF = "./openapi-examples.yaml#/"


def _esc(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _walk(node: Any, at: str = "") -> Iterator[tuple[str, Any]]:
    """(JSON pointer, node) for every node."""
    yield at, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{at}/{_esc(str(k))}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{at}/{i}")


def _refs(node: Any) -> list[str]:
    return [n["$ref"] for _, n in _walk(node) if isinstance(n, dict) and isinstance(n.get("$ref"), str)]


def _at(doc: Any, pointer: str) -> Any:
    for token in pointer.split("/")[1:]:
        key = token.replace("~1", "/").replace("~0", "~")
        doc = doc[int(key)] if isinstance(doc, list) else doc[key]
    return doc


class _Checker:
    """Validates values against schemas inside a bundled document, as JSON Schema 2020-12 (OpenAPI 3.1)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource("urn:doc", resource)

    def errors(self, value: Any, schema_pointer: str) -> list[str]:
        v = Draft202012Validator({"$ref": f"urn:doc#{schema_pointer}"}, registry=self.registry)
        return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(value)]


def _media_examples(raw: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Generated example name -> (pointer of the media type object that cites it, HTTP status or '')."""
    out: dict[str, tuple[str, str]] = {}
    for pointer, node in _walk(raw):
        if isinstance(node, dict) and str(node.get("$ref", "")).startswith(EXAMPLES_REF):
            name = node["$ref"][len(EXAMPLES_REF) :]
            media = pointer.rsplit("/examples/", 1)[0]
            parts = media.split("/")
            status = parts[parts.index("responses") + 1] if parts[1] == "paths" else ""
            assert name not in out, f"{name} cited twice"
            out[name] = (media, status)
    return out


# -- the document ---------------------------------------------------------------------------------------


def test_openapi_yaml_is_valid_as_written_and_bundled() -> None:
    spec, base = read_from_filename(str(OPENAPI))
    assert spec["openapi"].startswith("3.1.")
    validate_openapi(spec, base_uri=base)  # follows the relative refs into the schema files
    validate_openapi(documents.bundle("openapi", server_url="http://127.0.0.1:9"))


def test_openapi_references_every_rest_schema_file_and_copies_none() -> None:
    raw = documents.load("openapi")
    cited = {r.split("#")[0] for r in _refs(raw) if r.startswith("./json/")}
    rest_files = {
        f"./json/{p.relative_to(SCHEMA_DIR).as_posix()}" for p in (SCHEMA_DIR / "rest").glob("*.json")
    }
    assert rest_files <= cited, f"REST schemas the document does not use: {sorted(rest_files - cited)}"
    # Rows are described by the files only: no inline object schema names a row's fields.
    for pointer, node in _walk(raw.get("components", {}).get("schemas", {})):
        if isinstance(node, dict) and "properties" in node:
            assert set(node["properties"]) <= {"data", "code", "message"}, pointer


def test_every_operation_documents_its_errors() -> None:
    raw = documents.load("openapi")
    for path, item in raw["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            if op.get("security") == []:
                continue  # the mock's own endpoints: no key, no quota
            assert {"200", "401", "429", "431"} <= codes, (method, path)
            if path.startswith("/{business}/"):
                assert "404" in codes, (method, path)  # an unknown business
            if path.startswith("/common/basic/") and op.get("parameters"):
                assert "400" in codes, (method, path)  # RFC 7807
            if "requestBody" in op:
                assert "413" in codes, (method, path)


@pytest.mark.parametrize("name", sorted(documents.DOCUMENTS))
def test_bundle_is_self_contained(name: str) -> None:
    doc = documents.bundle(name)
    refs = _refs(doc)
    assert refs and all(r.startswith("#/") for r in refs), [r for r in refs if not r.startswith("#/")]
    for r in set(refs):
        _at(doc, r[1:])  # every reference resolves inside the document
    assert not any(isinstance(n, dict) and "$id" in n for _, n in _walk(doc["components"]["schemas"]))


def test_bundle_refuses_a_missing_file_and_two_schemas_under_one_name(tmp_path: Path) -> None:
    to_json = os.path.relpath(SCHEMA_DIR, tmp_path)
    doc = tmp_path / "doc.yaml"
    doc.write_text(yaml.safe_dump({"x": {"$ref": "./nope.json"}}))
    with pytest.raises(BundleError, match=r"nope\.json"):
        documents._Bundler(doc, None).run(yaml.safe_load(doc.read_text()))
    clash = {"components": {"schemas": {"TradeRow": {}}}, "x": {"$ref": f"{to_json}/rest/trade-row.json"}}
    with pytest.raises(BundleError, match="TradeRow"):
        documents._Bundler(doc, None).run(clash)


# -- the examples ---------------------------------------------------------------------------------------


def test_every_example_in_the_document_validates() -> None:
    doc = documents.bundle("openapi")
    check = _Checker(doc)
    seen = 0
    for pointer, node in _walk(doc):
        if not (isinstance(node, dict) and "schema" in node and ("examples" in node or "example" in node)):
            continue
        values = [e["value"] for e in node.get("examples", {}).values()]
        values += [node["example"]] if "example" in node else []
        for value in values:
            if isinstance(value, str) and "application/yaml" in pointer:
                value = yaml.safe_load(value)
            assert check.errors(value, f"{pointer}/schema") == [], (pointer, value)
            seen += 1
    assert seen >= 30


def test_fresh_examples_from_the_mock_validate_and_sit_under_their_status() -> None:
    """What the mock answers now, for the seeded requests, still fits the document (catches the mock
    drifting from it); and each example is filed under the status the mock answered with."""
    raw = documents.load("openapi")
    cited = _media_examples(raw)
    fresh = generate()
    assert set(fresh) == set(cited), "examples generated but not cited, or cited but not generated"
    check = _Checker(documents.bundle("openapi"))
    used = {r for r in _refs(raw) if r.startswith("#/components/responses/")}
    for name, (status, example) in fresh.items():
        media, filed = cited[name]
        assert check.errors(example["value"], f"{media}/schema") == [], (name, example["value"])
        if filed:
            assert str(status) == filed, (name, status, filed)
        else:  # a shared response: filed under the statuses that use it
            component = media.split("/")[3]
            if f"#/components/responses/{component}" in used:
                statuses = {
                    p.split("/")[-1]
                    for p, n in _walk(raw["paths"])
                    if isinstance(n, dict) and n.get("$ref") == f"#/components/responses/{component}"
                }
                assert statuses == {str(status)}, (name, status, statuses)


def test_checked_in_examples_match_a_fresh_generation_in_shape() -> None:
    checked_in = yaml.safe_load((OPENAPI.parent / "openapi-examples.yaml").read_text(encoding="utf-8"))
    fresh = generate()
    assert set(checked_in) == set(fresh)
    for name, (_, example) in fresh.items():
        old = checked_in[name]
        assert old["summary"] == example["summary"] and old["description"] == example["description"], name
        if isinstance(example["value"], dict):
            assert set(old["value"]) == set(example["value"]), (
                f"{name}: rerun python tests/openapi_examples.py"
            )


# -- served by the mock, printed by the CLI ------------------------------------------------------------


def _request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, path, headers=headers or {})
        resp = c.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        c.close()


async def test_the_mock_serves_both_documents_naming_itself(server: Any) -> None:
    for name in documents.DOCUMENTS:
        status, headers, body = await asyncio.to_thread(_request, server.port, "GET", f"/{name}.yaml")
        assert status == 200 and headers["Content-Type"].startswith("application/yaml")
        assert headers["Access-Control-Allow-Origin"] == "*"
        own = f"http://127.0.0.1:{server.port}"
        assert yaml.safe_load(body) == documents.bundle(name, server_url=own)
        if name == "openapi":
            assert yaml.safe_load(body)["servers"][0]["url"] == own
        else:
            assert yaml.safe_load(body)["servers"]["mock"]["host"] == f"127.0.0.1:{server.port}"
        # A client that reached the mock under another name gets that name back.
        _, _, body = await asyncio.to_thread(
            _request, server.port, "GET", f"/{name}.yaml", {"Host": "localhost:9999"}
        )
        servers = yaml.safe_load(body)["servers"]
        assert "localhost:9999" in json.dumps(servers)
        status, headers, body = await asyncio.to_thread(_request, server.port, "HEAD", f"/{name}.yaml")
        assert status == 200 and body == b""
        status, headers, body = await asyncio.to_thread(_request, server.port, "POST", f"/{name}.yaml")
        assert status == 405 and headers["Allow"] == "GET, HEAD"


async def test_a_host_header_that_is_no_address_is_not_written_into_the_document(server: Any) -> None:
    _, _, body = await asyncio.to_thread(
        _request, server.port, "GET", "/openapi.yaml", {"Host": "evil.example/<script>"}
    )
    assert yaml.safe_load(body)["servers"][0]["url"] == f"http://127.0.0.1:{server.port}"


async def test_healthz_and_metrics_answer_other_methods_with_405(server: Any) -> None:
    """Regression (found by Schemathesis): they answered TRACE and POST with 200, unlike every REST path."""
    for path in ("/healthz", "/metrics"):
        for method in ("POST", "DELETE", "TRACE"):
            status, headers, body = await asyncio.to_thread(_request, server.port, method, path)
            assert status == 405, (method, path, status)
            assert headers["Allow"] == "GET, HEAD"
            assert orjson.loads(body) == {"code": 405, "message": "Use GET, HEAD"}
        status, _, _ = await asyncio.to_thread(_request, server.port, "GET", path)
        assert status == 200


async def test_percent_encoded_codes_are_decoded(server: Any) -> None:
    """Regression: Swagger UI and generated clients encode the list's commas (`%2C`) in the path; the mock
    took `BTCUSDT%2CETHUSDT` for one unknown symbol and answered ret 508."""
    key = {"apiKey": "demo"}
    for path in (
        "/crypto/batch_trade/BTCUSDT%2CETHUSDT",
        "/crypto/batch_depth/BTCUSDT%2cETHUSDT",
        "/crypto/batch_kline/%31/2/BTCUSDT%2CETHUSDT",
    ):
        status, _, body = await asyncio.to_thread(_request, server.port, "GET", path, key)
        answer = orjson.loads(body)
        assert status == 200 and answer["ret"] == 200, (path, answer)
        assert [row["s"] for row in answer["data"]] == ["BTCUSDT", "ETHUSDT"], path
    # An encoded slash stays inside its segment: a symbol, not a path.
    status, _, body = await asyncio.to_thread(
        _request, server.port, "GET", "/crypto/batch_trade/BTC%2FUSDT", key
    )
    assert status == 200 and orjson.loads(body)["ret"] == 508


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_spec_command_prints_the_bundled_document(fmt: str) -> None:
    for name in documents.DOCUMENTS:
        out = io.StringIO()
        with redirect_stdout(out):
            assert cli_main(["spec", name, "--format", fmt, "--server-url", "http://127.0.0.1:9000"]) == 0
        text = out.getvalue()
        printed = json.loads(text) if fmt == "json" else yaml.safe_load(text)
        assert printed == documents.bundle(name, server_url="http://127.0.0.1:9000")


def test_spec_command_refuses_an_unknown_document(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli_main(["spec", "swagger"])
    assert info.value.code == 2
    assert "invalid choice: 'swagger'" in capsys.readouterr().err
