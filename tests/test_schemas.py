"""The contract itself: schema files, their examples, fast/full agreement, semantics, AsyncAPI, the CLI."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from infoway_mock.mockserver.catalogue import BUSINESSES
from infoway_mock.schemas import (
    CLIENT_SCHEMAS,
    SCHEMA_DIR,
    SERVER_SCHEMAS,
    ContractError,
    Violation,
    load,
    names,
    schema_violations,
    server_frame_checker,
    validate_client_frame,
    validate_server_frame,
)
from infoway_mock.schemas.check import BANNER, check_lines
from infoway_mock.schemas.codes import MESSAGES
from infoway_mock.schemas.ecma import to_python
from infoway_mock.schemas.registry import registry, uri
from infoway_mock.schemas.semantic import check_depth, check_ohlc
from infoway_mock.schemas.validate import fast_validator

ROOT = Path(__file__).resolve().parents[1]
CLIENT_NAMES = sorted(set(CLIENT_SCHEMAS.values()))
SERVER_NAMES = sorted(set(SERVER_SCHEMAS.values()))
FRAME_NAMES = [(n, "client") for n in CLIENT_NAMES] + [(n, "server") for n in SERVER_NAMES]
# Frames only the /news socket carries: not in the /ws dispatch tables, validated by schema name.
NEWS_NAMES = sorted({(m.schema, m.direction) for m in MESSAGES if "ws" not in m.sockets})
PUSHES = {f"server/{n}.json" for n in ("trade-push", "legacy-trade-push", "depth-push", "kline-push")}
DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def validate(kind: str, obj: Any, fast: bool) -> None:
    if kind == "client":
        validate_client_frame(obj, fast=fast)
    else:
        validate_server_frame(obj, fast=fast)


def outcome(kind: str, obj: Any, fast: bool) -> ContractError | None:
    try:
        validate(kind, obj, fast)
    except ContractError as err:
        return err
    return None


# -- (a) meta-schema, (b) examples -----------------------------------------------------------------------


@pytest.mark.parametrize("name", names())
def test_schema_is_valid_against_its_meta_schema(name: str) -> None:
    Draft202012Validator.check_schema(load(name))


def _examples() -> list[tuple[str, str, Any]]:
    """(schema name, JSON pointer of the subschema, example) for top-level and $defs examples."""
    out = []
    for name in names():
        schema = load(name)
        out += [(name, "", ex) for ex in schema.get("examples", [])]
        for key, sub in schema.get("$defs", {}).items():
            out += [(name, f"/$defs/{key}", ex) for ex in sub.get("examples", [])]
    return out


@pytest.mark.parametrize(("name", "pointer", "example"), _examples())
def test_every_example_is_valid(name: str, pointer: str, example: Any) -> None:
    if pointer:
        validator = Draft202012Validator({"$ref": uri(name) + "#" + pointer}, registry=registry())
        assert [e.message for e in validator.iter_errors(example)] == []
    else:
        assert schema_violations(example, name) == []


@pytest.mark.parametrize(("name", "kind"), FRAME_NAMES)
def test_frame_examples_pass_both_validators(name: str, kind: str) -> None:
    examples = load(name)["examples"]
    assert examples, f"{name} has no examples"
    for ex in examples:
        for fast in (True, False):
            validate(kind, ex, fast)


# -- (c) invalid variants, (d) fast/full agreement -------------------------------------------------------


def _first_decimal(node: Any, path: str) -> tuple[list[Any], str] | None:
    """(container-and-key chain end, JSON path) of the first decimal string under node, skipping `t`."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, value in items:
        sub = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"
        if isinstance(value, str) and key != "t" and DECIMAL.match(value):
            return [node, key], sub
        found = _first_decimal(value, sub)
        if found:
            return found
    return None


def variants(name: str, kind: str) -> list[tuple[str, dict[str, Any], str]]:
    """(label, frame, expected JSON path) for broken copies of the schema's first example."""
    base = load(name)["examples"][0]
    schema = load(name)
    out = []
    for field in schema["required"]:
        bad = copy.deepcopy(base)
        del bad[field]
        out.append((f"missing {field}", bad, f"$.{field}"))
    data_required = schema["properties"].get("data", {}).get("required", [])
    if data_required and "data" in base:
        bad = copy.deepcopy(base)
        del bad["data"][data_required[0]]
        out.append((f"missing data.{data_required[0]}", bad, f"$.data.{data_required[0]}"))
    key = next(k for k in base if k != "code")
    bad = copy.deepcopy(base)
    bad[key] = "x" if not isinstance(base[key], str) else 12345
    out.append((f"wrong type {key}", bad, f"$.{key}"))
    if isinstance(base.get("data"), dict):
        inner = next(iter(base["data"]))
        bad = copy.deepcopy(base)
        bad["data"][inner] = 12345 if not isinstance(base["data"][inner], int) else "x"
        out.append((f"wrong type data.{inner}", bad, f"$.data.{inner}"))
    if name in PUSHES:
        bad = copy.deepcopy(base)
        found = _first_decimal(bad["data"], "$.data")
        assert found, name
        (container, k), path = found
        container[k] = float(container[k]) + 0.5
        out.append(("decimal as number", bad, path))
        # ECMA's `$` is the end of the string; Python's also matches before a final newline.
        bad = copy.deepcopy(base)
        found = _first_decimal(bad["data"], "$.data")
        assert found, name
        (container, k), path = found
        container[k] += "\n"
        out.append(("decimal with a trailing newline", bad, path))
    other = 10001 if kind == "client" else 10003  # a code only the other direction uses
    assert (other in SERVER_SCHEMAS) != (other in CLIENT_SCHEMAS)
    out.append(("other direction's code", {**base, "code": other}, "$.code"))
    out.append(("unknown code", {**base, "code": 99999}, "$.code"))
    return out


VARIANTS = [(n, k, *v) for n, k in FRAME_NAMES for v in variants(n, k)]


@pytest.mark.parametrize(
    ("name", "kind", "label", "frame", "path"), VARIANTS, ids=[f"{v[0]}-{v[2]}" for v in VARIANTS]
)
def test_variant_rejected_by_both_paths(name: str, kind: str, label: str, frame: Any, path: str) -> None:
    for fast in (True, False):
        with pytest.raises(ContractError) as info:
            validate(kind, frame, fast)
        err = info.value
        assert err.path == path, f"{label} (fast={fast}): {err}"
        assert path in str(err)
        assert all(isinstance(v, Violation) for v in err.violations)


@pytest.mark.parametrize(
    ("ecma", "python"),
    [
        (r"^a$", r"^a\Z"),
        (r"^[$]x$", r"^[$]x\Z"),  # a `$` in a class is a character
        (r"^\$$", r"^\$\Z"),  # so is an escaped one
        (r"^a\\$", r"^a\\\Z"),  # an escaped backslash does not escape the anchor
        (r"^[\]$]$", r"^[\]$]\Z"),  # an escaped `]` does not end the class
    ],
)
def test_ecma_end_anchor_translation(ecma: str, python: str) -> None:
    assert to_python(ecma) == python


def test_number_for_decimal_string_variants() -> None:
    paths = {v[0]: v[4] for v in VARIANTS if v[2] == "decimal as number"}
    assert paths == {
        "server/trade-push.json": "$.data.p",
        "server/legacy-trade-push.json": "$.data.p",
        "server/depth-push.json": "$.data.a[0][0]",
        "server/kline-push.json": "$.data.o",
    }


def _all_frames() -> list[tuple[str, Any]]:
    out = [(k, ex) for n, k in FRAME_NAMES for ex in load(n)["examples"]]
    out += [(k, frame) for _, k, _, frame, _ in VARIANTS]
    out += [("server", f) for f in (BAD_DEPTH_FRAMES + BAD_KLINE_FRAMES)]
    out += [("server", 42), ("client", [1]), ("server", {"traceId": "t"}), ("client", {"code": True})]
    return out


def test_fast_and_full_paths_agree() -> None:
    for kind, frame in _all_frames():
        fast, full = outcome(kind, frame, True), outcome(kind, frame, False)
        assert (fast is None) == (full is None), (kind, frame, fast, full)
        if fast is not None and full is not None:
            assert fast.path == full.path, (kind, frame)


# -- (e) semantic rules ----------------------------------------------------------------------------------


def depth(a: list[list[str]], b: list[list[str]]) -> dict[str, Any]:
    return {"code": 10005, "data": {"s": "BTCUSDT", "t": 1786775732341, "a": a, "b": b}}


def kline(**ohlc: str) -> dict[str, Any]:
    bar = {"s": "BTCUSDT", "ty": 1, "t": "1786775220", "o": "10", "h": "12", "l": "9", "c": "11"}
    return {"code": 10008, "data": {**bar, "v": "1", "vw": "10", "pca": "1", "pfr": "0.1%", **ohlc}}


DEPTH_CASES = [
    ("book-not-crossed", depth([["100", "101"], ["1", "1"]], [["100"], ["1"]]), "$.data.b[0][0]"),
    ("book-not-crossed", depth([["100"], ["1"]], [["100.5", "99"], ["1", "1"]]), "$.data.b[0][0]"),
    ("asks-ascending", depth([["101", "100"], ["1", "1"]], [["99"], ["1"]]), "$.data.a[0][1]"),
    ("asks-ascending", depth([["101", "101"], ["1", "1"]], [["99"], ["1"]]), "$.data.a[0][1]"),
    ("bids-descending", depth([["101"], ["1"]], [["99", "99.5"], ["1", "1"]]), "$.data.b[0][1]"),
    ("levels-equal-length", depth([["101", "102"], ["1"]], [["99"], ["1"]]), "$.data.a"),
    ("levels-equal-length", depth([["101"], ["1"]], [["99"], ["1", "2"]]), "$.data.b"),
]
KLINE_CASES = [
    ("ohlc-consistent", kline(l="10.5"), "$.data"),  # l > o
    ("ohlc-consistent", kline(h="10.9"), "$.data"),  # h < c
    ("ohlc-consistent", kline(h="8", l="9"), "$.data"),
]
BAD_DEPTH_FRAMES = [frame for _, frame, _ in DEPTH_CASES]
BAD_KLINE_FRAMES = [frame for _, frame, _ in KLINE_CASES]


@pytest.mark.parametrize(("rule", "frame", "path"), DEPTH_CASES + KLINE_CASES)
def test_semantic_rule(rule: str, frame: dict[str, Any], path: str) -> None:
    found = (check_depth if frame["code"] == 10005 else check_ohlc)(frame["data"])
    assert rule in [v.rule for v in found]
    v = next(v for v in found if v.rule == rule)
    assert isinstance(v, Violation) and v.path == path and v.message
    assert schema_violations(frame, SERVER_SCHEMAS[frame["code"]]) == []  # only semantics are wrong
    for fast in (True, False):
        with pytest.raises(ContractError) as info:
            validate_server_frame(frame, fast=fast)
        assert rule in [v.rule for v in info.value.violations]
        validate_server_frame(frame, fast=fast, semantic=False)
    with pytest.raises(ContractError):  # strict mode's per-code checker too
        server_frame_checker(frame["code"])(frame)


def test_sound_frames_have_no_semantic_violations() -> None:
    sound = [depth([["101", "102"], ["1", "2"]], [["100", "99"], ["3", "4"]]), kline()]
    assert check_depth(sound[0]["data"]) == [] and check_ohlc(sound[1]["data"]) == []
    for frame in sound:
        validate_server_frame(frame)
        server_frame_checker(frame["code"])(frame)


# -- (f) AsyncAPI ----------------------------------------------------------------------------------------

ASYNCAPI = SCHEMA_DIR.parent / "asyncapi.yaml"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _pointer(doc: Any, pointer: str) -> Any:
    for part in pointer.lstrip("/").split("/"):
        doc = doc[part.replace("~1", "/").replace("~0", "~")]
    return doc


def test_asyncapi_document() -> None:
    doc = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    assert doc["asyncapi"] == "3.0.0"
    assert doc["channels"]["ws"]["address"] == "/ws"
    assert {op["action"] for op in doc["operations"].values()} == {"send", "receive"}
    files = set()
    for ref in _refs(doc):
        target, _, fragment = ref.partition("#")
        if not target:
            _pointer(doc, fragment)  # internal references resolve
            continue
        path = (ASYNCAPI.parent / target).resolve()
        assert path.is_file(), ref
        rel = path.relative_to(SCHEMA_DIR.resolve()).as_posix()
        assert rel in names(), ref
        json.loads(path.read_text(encoding="utf-8"))
        files.add(rel)
    missing = set(CLIENT_NAMES + SERVER_NAMES + [n for n, _ in NEWS_NAMES]) - files
    assert not missing, f"frame schemas not referenced by asyncapi.yaml: {sorted(missing)}"
    assert doc["channels"]["news"]["address"] == "/news"
    business = doc["channels"]["ws"]["bindings"]["ws"]["query"]["properties"]["business"]["enum"]
    assert business == list(BUSINESSES)


# -- (g) python -m infoway_mock.schemas check ---------------------------------------------------------------

TRADE = load("server/trade-push.json")["examples"][0]
SUBSCRIBE = load("client/subscribe-trades.json")["examples"][0]
WELCOME = load("server/welcome.json")["examples"][0]


def cli(tmp_path: Path, lines: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
    f = tmp_path / "stream.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "infoway_mock.schemas", "check", str(f), *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_cli_clean_stream(tmp_path: Path) -> None:
    raw = json.dumps({"_dir": "send", "_raw": json.dumps({"code": 10010, "trace": "hb"})})
    res = cli(tmp_path, [json.dumps(f) for f in (WELCOME, SUBSCRIBE, TRADE, TRADE)] + ["", BANNER, raw])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 violations" in res.stdout and "send 2, recv 4" in res.stdout
    assert re.search(r"recv\s+10002\s+2", res.stdout) and re.search(r"send\s+10010\s+1", res.stdout)


def test_cli_bad_stream_names_lines(tmp_path: Path) -> None:
    bad = copy.deepcopy(TRADE)
    bad["data"]["p"] = 63039.0
    res = cli(tmp_path, [json.dumps(WELCOME), "not json at all", json.dumps(TRADE), json.dumps(bad)])
    assert res.returncode == 1, res.stdout
    assert "line 2: $: json" in res.stdout
    assert "line 4: $.data.p: type (63039.0)" in res.stdout
    assert "line 1:" not in res.stdout and "line 3:" not in res.stdout


def test_cli_semantic_switch(tmp_path: Path) -> None:
    lines = [json.dumps(BAD_DEPTH_FRAMES[0])]
    assert cli(tmp_path, lines).returncode == 1
    assert cli(tmp_path, lines, "--no-semantic").returncode == 0


def test_cli_unreadable_file(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "infoway_mock.schemas", "check", str(tmp_path / "absent.jsonl")]
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=60).returncode == 2


def test_raw_dir_records() -> None:
    rec = [
        {"_dir": "recv", "_raw": BANNER, "t": 1},
        {"_dir": "recv", "_raw": json.dumps(WELCOME)},
        {"_dir": "send", "_raw": json.dumps(SUBSCRIBE)},
        {"_dir": "recv", "_raw": json.dumps(SUBSCRIBE)},  # a subscribe received: not a server frame
        {"_dir": "send", "_raw": "{broken"},
        {"_dir": "sideways", "_raw": "{}"},
        {"_dir": "send", "_raw": BANNER},  # the banner is only allowed from the server
    ]
    report = check_lines([json.dumps(r) for r in rec])
    assert report.counts[("send", "10000")] == 1 and report.counts[("recv", "200")] == 1
    assert report.counts[("recv", "text")] == 1
    assert report.bad_lines() == [4, 5, 6, 7]
    assert dict(report.violations)[5].path == "$._raw"
    assert dict(report.violations)[6].path == "$._dir"


def test_bare_frame_direction() -> None:
    legacy = load("server/legacy-trade-push.json")["examples"][0]
    error = load("server/error.json")["examples"][0]
    ack = load("server/ack.json")["examples"][0]
    report = check_lines([json.dumps(f) for f in (SUBSCRIBE, legacy, error, ack, {"code": 10010})])
    assert report.ok, report.format()
    assert report.by_direction == {"send": 2, "recv": 3}


# -- (h) the /news socket's frames -----------------------------------------------------------------------


def validate_named(name: str, obj: Any, fast: bool) -> None:
    """Validate against one schema by name, as the news socket does (no dispatch table by code)."""
    if fast and fast_validator(name).is_valid(obj):
        return
    found = schema_violations(obj, name)
    if found:
        raise ContractError(found, name)


def test_news_schemas_exist_for_every_news_code() -> None:
    assert {n for n, _ in NEWS_NAMES} == {
        "client/subscribe-news.json",
        "client/unsubscribe-news.json",
        "server/news-push.json",
        "server/ack.json",  # 10021, the news subscribe ack
    }
    assert all(n in names() for n, _ in NEWS_NAMES)


@pytest.mark.parametrize(("name", "kind"), NEWS_NAMES)
def test_news_examples_pass_both_paths(name: str, kind: str) -> None:
    for ex in load(name)["examples"]:
        for fast in (True, False):
            validate_named(name, ex, fast)


NEWS_VARIANTS = [(n, k, *v) for n, k in NEWS_NAMES for v in variants(n, k)]


@pytest.mark.parametrize(
    ("name", "kind", "label", "frame", "path"), NEWS_VARIANTS, ids=[f"{v[0]}-{v[2]}" for v in NEWS_VARIANTS]
)
def test_news_variant_rejected_by_both_paths(name: str, kind: str, label: str, frame: Any, path: str) -> None:
    for fast in (True, False):
        with pytest.raises(ContractError) as info:
            validate_named(name, frame, fast)
        assert info.value.path == path, f"{label} (fast={fast}): {info.value}"


@pytest.mark.parametrize(
    ("name", "frame", "path"),
    [
        ("client/subscribe-news.json", {"code": 10020, "data": {"lang": "xx"}}, "$.data.lang"),
        ("client/subscribe-news.json", {"code": 10020, "data": {}}, "$.data.lang"),
        (
            "server/news-push.json",
            {"code": 10022, "data": {"dk": "a", "title": "t", "published": "1"}},
            "$.data.published",
        ),
        (
            "server/news-push.json",
            {"code": 10022, "data": {"dk": "a", "title": "t", "published": 1, "symbols": "AAPL.US"}},
            "$.data.symbols",
        ),
    ],
)
def test_news_frames_rejected(name: str, frame: Any, path: str) -> None:
    for fast in (True, False):
        with pytest.raises(ContractError) as info:
            validate_named(name, frame, fast)
        assert info.value.path == path


def test_news_ack_code() -> None:
    validate_server_frame({"code": 11010, "trace": "n", "msg": "ok"})
    assert schema_violations({"code": 10021, "trace": "n", "msg": "ok"}, "server/ack.json") == []


# -- (i) what the live API sends: the schemas accept it even where the mock never sends it --------------

KLINE = load("server/kline-push.json")["examples"][0]


def with_data(frame: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {**frame, "data": {**frame["data"], **data}}


@pytest.mark.parametrize(
    ("kind", "frame"),
    [
        ("server", with_data(KLINE, t=1786775220)),  # the docs' Long
        ("server", with_data(KLINE, t="1786775220")),  # the live string
        ("server", with_data(TRADE, s="AAPL.US", ty="1")),  # includeTy on an equity channel
        ("server", with_data(TRADE, s=".DJI.US")),
        ("server", with_data(KLINE, s=".IXIC.US")),
        ("client", {"code": 10000, "data": {"codes": ".DJI.US,.IXIC.US"}}),  # no trace: still accepted
        ("client", {"code": 10003, "trace": "d", "data": {"codes": " .DJI.US , AAPL.US "}}),
        ("client", {"code": 10006, "data": {"arr": [{"type": 1, "codes": ".DJI.US"}]}}),
        ("client", {"code": 10010}),
    ],
)
def test_live_shapes_accepted(kind: str, frame: dict[str, Any]) -> None:
    for fast in (True, False):
        validate(kind, frame, fast)


@pytest.mark.parametrize(
    ("kind", "frame", "path"),
    [
        ("server", with_data(KLINE, t=1786775220.5), "$.data.t"),
        ("server", with_data(KLINE, t=-1), "$.data.t"),
        ("server", with_data(KLINE, t="17867752x0"), "$.data.t"),
        ("server", with_data(TRADE, ty=1), "$.data.ty"),  # a string on the live API
        ("server", with_data(TRADE, s="..DJI.US"), "$.data.s"),
        ("server", with_data(TRADE, s="."), "$.data.s"),
        ("client", {"code": 10000, "data": {"codes": ".DJI.US,,AAPL.US"}}, "$.data.codes"),
    ],
)
def test_live_shape_lookalikes_rejected(kind: str, frame: dict[str, Any], path: str) -> None:
    for fast in (True, False):
        with pytest.raises(ContractError) as info:
            validate(kind, frame, fast)
        assert info.value.path == path


BAR = load("rest/kline-row.json")["examples"][0]["respList"][0]
REST_OK = [
    ("rest/depth-row.json", {"s": "TSLA.US", "t": 1786775732341, "a": None, "b": None}),
    (
        "rest/kline-row.json",
        {
            "s": ".DJI.US",
            "respList": [{**load("rest/kline-row.json")["examples"][0]["respList"][0], "t": 1786775220}],
        },
    ),
    (
        "rest/symbol-row.json",
        {"symbol": "7203.JP", "name_cn": "丰田汽车", "name_hk": None, "name_en": "Toyota", "index": "12"},
    ),
    (
        "rest/problem.json",
        {
            "type": "about:blank",
            "title": "Bad Request",
            "status": 400,
            "detail": "x",
            "instance": "/common/basic/symbols",
        },
    ),
    ("rest/rate-limited.json", {"detail": "Rate limit exceeded"}),
    ("rest/batch-kline-request.json", {"klineType": 12, "klineNum": 1, "codes": ".DJI.US"}),
    ("rest/envelope.json", {"ret": 508, "msg": "All product not exists", "traceId": "x", "data": None}),
]
REST_BAD = [
    ("rest/depth-row.json", {"s": "TSLA.US", "t": 1786775732341, "a": None}, "$.b"),
    ("rest/depth-row.json", {"s": "TSLA.US", "t": 1786775732341, "a": [["1"]], "b": None}, "$.a"),
    (
        "rest/symbol-row.json",
        {"symbol": "BTCUSDT", "name": "Bitcoin", "type": "CRYPTO", "business": "crypto"},
        "$.name_cn",
    ),
    ("rest/kline-row.json", {"s": "BTCUSDT", "respList": [{**BAR, "t": 1.5}]}, "$.respList[0].t"),
    ("rest/problem.json", {"title": "Bad Request", "status": "400"}, "$.status"),
    ("rest/rate-limited.json", {"message": "Rate limit exceeded"}, "$.detail"),
    ("rest/batch-kline-request.json", {"klineNum": 10, "codes": "AAPL.US"}, "$.klineType"),
    ("rest/batch-kline-request.json", {"klineType": 13, "klineNum": 10, "codes": "AAPL.US"}, "$.klineType"),
    ("rest/batch-kline-request.json", {"klineType": 1, "klineNum": 0, "codes": "AAPL.US"}, "$.klineNum"),
    ("rest/batch-kline-request.json", {"klineType": 1, "klineNum": 10, "codes": ""}, "$.codes"),
    (
        "rest/batch-kline-request.json",
        {"klineType": 1, "klineNum": 10, "codes": "A.US", "timestamp": "1758553860"},
        "$.timestamp",
    ),
]


@pytest.mark.parametrize(("name", "doc"), REST_OK)
def test_rest_live_shapes_accepted(name: str, doc: Any) -> None:
    for fast in (True, False):
        validate_named(name, doc, fast)


@pytest.mark.parametrize(("name", "doc", "path"), REST_BAD)
def test_rest_lookalikes_rejected(name: str, doc: Any, path: str) -> None:
    for fast in (True, False):
        with pytest.raises(ContractError) as info:
            validate_named(name, doc, fast)
        assert info.value.path == path


def test_rest_depth_row_holds_ten_levels() -> None:
    ten = next(ex for ex in load("rest/depth-row.json")["examples"] if ex["s"] == "00285.HK")
    assert len(ten["a"][0]) == len(ten["b"][1]) == 10
    assert check_depth(ten) == []
