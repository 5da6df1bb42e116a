"""Frame validation: pick the schema by `code`, report violations in one shape.

Two paths agree on every frame: the full path (`jsonschema`) gives the readable report, the fast path
(`jsonschema-rs`, compiled) answers valid/invalid in about a microsecond and only on failure hands
over to the full path for the report.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from . import semantic
from .ecma import EcmaValidator
from .errors import ContractError, Violation
from .registry import SERVER_SCHEMAS, TABLES, load, registry, resources, uri


@cache
def full_validator(name: str) -> Draft202012Validator:
    return EcmaValidator(load(name), registry=registry())


@cache
def _rs_registry() -> jsonschema_rs.Registry:
    return jsonschema_rs.Registry(resources())


@cache
def fast_validator(name: str) -> Any:
    return jsonschema_rs.validator_for(load(name), registry=_rs_registry(), base_uri=uri(name), offline=True)


def _json_path(parts: Any) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _to_violation(err: ValidationError) -> Violation:
    path = _json_path(err.absolute_path)
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = next((m for m in err.validator_value if m not in err.instance), None)
        if missing is not None:
            return Violation(f"{path}.{missing}", None, "required", f"'{missing}' is required")
    return Violation(path, err.instance, str(err.validator), err.message)


def _depth(err: ValidationError) -> int:
    return len(err.absolute_path)


def schema_violations(obj: Any, name: str) -> list[Violation]:
    """Every violation of schema `name`, the most specific first (the one a human should fix first)."""
    errors = list(full_validator(name).iter_errors(obj))
    if not errors:
        return []
    best = best_match(errors)
    rest = sorted((e for e in errors if e is not best), key=_depth, reverse=True)
    return [_to_violation(e) for e in [best, *rest]]


def _frame_schema(obj: Any, table: dict[int, str], kind: str) -> tuple[str | None, Violation | None]:
    if not isinstance(obj, dict):
        return None, Violation("$", obj, "type", f"a {kind} frame is a JSON object")
    if kind == "server" and "traceId" in obj:
        return "server/error.json", None
    if "code" not in obj:
        return None, Violation("$.code", None, "required", "'code' is required")
    code = obj["code"]
    if not isinstance(code, int) or isinstance(code, bool):
        return None, Violation("$.code", code, "type", f"code must be an integer, not {type(code).__name__}")
    name = table.get(code)
    if name is None:
        return None, Violation("$.code", code, "unknown-code", f"{code} is not a known {kind} frame code")
    return name, None


def _validate(obj: Any, table: dict[int, str], kind: str, fast: bool, semantic_checks: bool) -> None:
    if fast and isinstance(obj, dict):
        code = obj.get("code") if "traceId" not in obj or kind == "client" else 500
        name = table.get(code) if type(code) is int else None
        if name is not None and fast_validator(name).is_valid(obj):
            if semantic_checks:
                found = semantic.check(obj)
                if found:
                    raise ContractError(found, name)
            return
    name, bad = _frame_schema(obj, table, kind)
    if bad is not None:
        raise ContractError([bad])
    assert name is not None
    found = schema_violations(obj, name)
    if found:
        raise ContractError(found, name)
    if semantic_checks:
        found = semantic.check(obj)
        if found:
            raise ContractError(found, name)


def validate_client_frame(obj: Any, *, fast: bool = False, socket: str = "ws") -> None:
    """Raise ContractError unless obj is a valid client -> server frame (picked by its `code`) of the
    socket (`ws` market data, or `news`)."""
    _validate(obj, TABLES[(socket, "client")], "client", fast, False)


def validate_server_frame(obj: Any, *, fast: bool = False, semantic: bool = True, socket: str = "ws") -> None:
    """Raise ContractError unless obj is a valid server -> client frame; semantic rules included."""
    _validate(obj, TABLES[(socket, "server")], "server", fast, semantic)


def server_frame_checker(code: int) -> Callable[[dict[str, Any]], None]:
    """A checker for frames of one server code, for the hottest loops: the compiled validator and the
    code's semantic rules with no dispatch; on failure the full path builds the report."""
    socket = "ws" if code in SERVER_SCHEMAS else "news"
    validator = fast_validator(TABLES[(socket, "server")][code])
    rules = semantic.RULES.get(code)

    def check(frame: dict[str, Any]) -> None:
        if validator.is_valid(frame) and (rules is None or not rules(frame["data"])):
            return
        validate_server_frame(frame, socket=socket)

    return check


def is_valid_server_frame(obj: Any) -> bool:
    try:
        validate_server_frame(obj, fast=True)
    except ContractError:
        return False
    return True


def instance_violations(obj: Any, schema: dict[str, Any], *, at: str = "$") -> list[Violation]:
    """Every violation of an in-memory schema (one generated at run time, e.g. the fault registry's),
    most specific first, with paths prefixed by `at` (where the instance sits in a larger document)."""
    errors = list(EcmaValidator(schema, registry=registry()).iter_errors(obj))
    if not errors:
        return []
    best = best_match(errors)
    rest = sorted((e for e in errors if e is not best), key=_depth, reverse=True)
    out = []
    for e in [best, *rest]:
        v = _to_violation(e)
        out.append(Violation(at + v.path[1:], v.value, v.rule, v.message))
    return out


def validate_document(obj: Any, name: str, *, source: str | None = None) -> None:
    """Validate a whole document (a REST body row, a config or scenario file) against schema `name`."""
    found = schema_violations(obj, name)
    if found:
        raise ContractError(found, f"{name}" + (f", in {source}" if source else ""))
