"""pytest plugin (entry point `pytest11`): a mock Infoway exchange per test.

    def test_my_client_survives_a_reset(infoway_server, infoway_url):
        client = MyClient(infoway_url)               # ws://127.0.0.1:<port>/ws?business=crypto&apikey=demo
        ...
        infoway_server.fault("reset")                # or .play("flaky-network", scale=0.1)
        ...
        assert infoway_server.report()["verdict"] == "pass"

    def test_my_client_survives_the_incident(infoway_server, infoway_url):
        infoway_server.replay("incident.jsonl")      # a production capture (proxy --record), disconnects
        client = MyClient(infoway_url)               # included, before the client connects

Override `infoway_config` in a conftest.py to change timings or plans; mark a test with
`@pytest.mark.infoway(business="stock", heartbeat_timeout=5)` to tweak one test.

Live parity: mark the tests that state protocol facts with `@pytest.mark.infoway_parity`. With
`--infoway-url URL` (or env INFOWAY_URL) and env INFOWAY_API_KEY (or `--infoway-api-key`), those tests run
against that server (the `infoway_url` and `infoway_target` fixtures point there) and every other test is
skipped with the reason; without a URL nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .config import ServerConfig

if TYPE_CHECKING:
    from .background import BackgroundServer
    from .conformance import Target

PARITY_MARKER = "infoway_parity"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("infoway", "infoway-mock live parity")
    group.addoption(
        "--infoway-url",
        default=os.environ.get("INFOWAY_URL") or None,
        help="run the tests marked infoway_parity against this server (e.g. wss://data.infoway.io) instead "
        "of the in-process mock, and skip the others (default: env INFOWAY_URL)",
    )
    group.addoption(
        "--infoway-api-key",
        default=os.environ.get("INFOWAY_API_KEY") or None,
        help="the API key for --infoway-url (default: env INFOWAY_API_KEY)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "infoway(business=..., **settings): settings for the infoway_server fixture of this test"
    )
    config.addinivalue_line(
        "markers",
        f"{PARITY_MARKER}: a protocol fact; with --infoway-url (or INFOWAY_URL) the test runs against that "
        "server instead of the in-process mock",
    )
    url = config.getoption("infoway_url", None)
    if url:
        from .conformance import Target

        key = config.getoption("infoway_api_key", None)
        if not key:
            raise pytest.UsageError(
                "--infoway-url needs an API key: set INFOWAY_API_KEY or --infoway-api-key"
            )
        try:
            Target.parse(url, key)
        except ValueError as e:
            raise pytest.UsageError(f"--infoway-url: {e}") from None


def _parity_url(config: pytest.Config) -> str | None:
    return config.getoption("infoway_url", None)


def pytest_report_header(config: pytest.Config) -> str | None:
    url = _parity_url(config)
    if not url:
        return None
    return f"infoway live parity: tests marked {PARITY_MARKER} run against {url}; the others are skipped"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    url = _parity_url(config)
    if not url:
        return
    skip = pytest.mark.skip(
        reason=f"live parity run against {url}: not marked {PARITY_MARKER} (it needs the in-process mock: "
        "its settings, faults, internals, or market hours it controls)"
    )
    for item in items:
        if item.get_closest_marker(PARITY_MARKER) is None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    url = _parity_url(config)
    if url:
        skipped = len(terminalreporter.stats.get("skipped", []))
        terminalreporter.write_line(
            f"infoway live parity against {url}: tests not marked {PARITY_MARKER} were skipped "
            f"({skipped} skipped in all; -rs shows why)"
        )


@pytest.fixture(scope="session")
def infoway_target(pytestconfig: pytest.Config) -> Target | None:
    """The server under test in a live-parity run (ws_url(business), http_url, api_key), else None."""
    url = _parity_url(pytestconfig)
    if not url:
        return None
    from .conformance import Target

    return Target.parse(url, pytestconfig.getoption("infoway_api_key"))


@pytest.fixture
def infoway_config() -> ServerConfig:
    """The mock's configuration: strict (every frame it sends is checked), ephemeral port, seed 1."""
    return ServerConfig(port=0, seed=1, strict=True)


@pytest.fixture
def infoway_server(
    request: pytest.FixtureRequest, infoway_config: ServerConfig
) -> Iterator[BackgroundServer]:
    url = _parity_url(request.config)
    if url:
        pytest.skip(f"live parity run against {url}: this test drives the mock itself (infoway_server)")
    marker = request.node.get_closest_marker("infoway")
    settings: dict[str, Any] = dict(marker.kwargs) if marker else {}
    settings.pop("business", None)
    # Imported here so that merely having the plugin installed costs nothing at pytest start-up.
    from .background import BackgroundServer

    for name, value in settings.items():
        setattr(infoway_config, name, value)
    with BackgroundServer(infoway_config) as srv:
        yield srv
        violations = list(srv.server.contract_violations)
    if violations:
        pytest.fail("the mock sent frames that break the contract:\n" + "\n".join(violations))


@pytest.fixture
def infoway_url(request: pytest.FixtureRequest, infoway_target: Target | None) -> str:
    """The socket URL to test against: the in-process mock's, or the live-parity target's."""
    marker = request.node.get_closest_marker("infoway")
    business = marker.kwargs.get("business", "crypto") if marker else "crypto"
    if infoway_target is not None:
        return infoway_target.ws_url(business)
    server: BackgroundServer = request.getfixturevalue("infoway_server")
    return server.url(business)
