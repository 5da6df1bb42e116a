"""Schemathesis against a real mock: property-based requests generated from the OpenAPI document the mock
serves, and every response checked against that document.

A bounded, reproducible run: a fixed seed, at most EXAMPLES test cases per operation in the fuzzing phase
(plus the examples and coverage phases, which are bounded by the document), no example database. It fails on
a server error, an undocumented status, content type or header, a body that breaks its schema, a method the
document does not list that is not a 405 with `Allow`, or an operation that answers without a key.

Not checked, by design: `negative_data_rejection` and `positive_data_acceptance`. The vendor answers a
schema-breaking request with HTTP 200 and `ret` set in the envelope (a business error), and some schema-valid
requests are refused on rules a schema cannot state (an end day before the begin day); both are documented.
`INFOWAY_SCHEMATHESIS_EXAMPLES=1000 make test` searches longer.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest

EXAMPLES = int(os.environ.get("INFOWAY_SCHEMATHESIS_EXAMPLES", "25"))
SEED = 20261202
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "ignored_auth",
)


@pytest.mark.timeout(600)
async def test_schemathesis_finds_nothing(make_server: Any, tmp_path: Any) -> None:
    # A key with no REST quota to speak of, so the run is the same however fast the machine is.
    srv = await make_server(keys={"demo": "load"})
    url = srv.http_url
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/openapi.yaml",
        "--url",
        url,
        "--header",
        "apiKey: demo",
        "--phases",
        "examples,coverage,fuzzing",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--no-color",
    ]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=540)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "15 selected / 15 total" in text, text  # every operation of the document
    summary = [line for line in text.splitlines() if "generated" in line and "passed" in line]
    assert summary and "failed" not in summary[-1], text
    print(summary[-1].strip())
