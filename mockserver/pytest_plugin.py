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
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .config import ServerConfig

if TYPE_CHECKING:
    from .background import BackgroundServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "infoway(business=..., **settings): settings for the infoway_server fixture of this test"
    )


@pytest.fixture
def infoway_config() -> ServerConfig:
    """The mock's configuration: strict (every frame it sends is checked), ephemeral port, seed 1."""
    return ServerConfig(port=0, seed=1, strict=True)


@pytest.fixture
def infoway_server(
    request: pytest.FixtureRequest, infoway_config: ServerConfig
) -> Iterator[BackgroundServer]:
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
def infoway_url(request: pytest.FixtureRequest, infoway_server: BackgroundServer) -> str:
    marker = request.node.get_closest_marker("infoway")
    business = marker.kwargs.get("business", "crypto") if marker else "crypto"
    return infoway_server.url(business)
