"""Names the dead-code check (vulture, in `make lint`) must not report: called by frameworks, or public
API that users call and our own code does not. Each line names one; a reason follows it."""

from infoway_mock.client.connection import Connection as ClientConnection
from infoway_mock.client.events import Trade
from infoway_mock.mockserver import __getattr__ as lazy_module_attributes
from infoway_mock.mockserver import pytest_plugin
from infoway_mock.mockserver.background import BackgroundServer
from infoway_mock.mockserver.connection import Connection
from infoway_mock.mockserver.server import MockServer
from loadtests import locustfile
from loadtests.lightclient import LightClient
from tests import conftest

# asyncio.Protocol callbacks, called by the event loop
Connection.connection_made, Connection.data_received, Connection.eof_received
Connection.pause_writing, Connection.resume_writing
ClientConnection.connection_made, ClientConnection.data_received, ClientConnection.eof_received
LightClient.connection_made, LightClient.data_received
# pytest hooks, called by pytest
pytest_plugin.pytest_addoption, pytest_plugin.pytest_configure, pytest_plugin.pytest_report_header
pytest_plugin.pytest_collection_modifyitems, pytest_plugin.pytest_terminal_summary
conftest.pytest_runtest_teardown
# locust: the User class, its hooks and tasks, and the command-line options event
locustfile.InfowayUser, locustfile.InfowayUser.wait_time, locustfile.InfowayUser.on_stop
locustfile.InfowayUser.heartbeat, locustfile._options
# module __getattr__ (PEP 562), called by the import system
lazy_module_attributes
# public API for users' tests and clients
BackgroundServer.clear_faults, MockServer.news_url, Trade.turnover
