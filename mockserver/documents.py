"""`/openapi.yaml` and `/asyncapi.yaml`: the API documents, self-contained, naming the mock that serves them.

The address written into a document is the one the client used (its Host header), so a copy fetched
through `localhost`, a container's published port or `--host 0.0.0.0` names an address that works from
where it was fetched; without a usable Host header, the mock's own address. Each rendering is kept, a
bounded number of them, since a document depends only on the package's files and that address.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson

from infoway_mock.schemas import documents

from .connection import HttpRequest, HttpResponse

Handler = Callable[[HttpRequest], HttpResponse]
CONTENT_TYPE = "application/yaml; charset=utf-8"  # RFC 9512
MAX_RENDERINGS = 16  # per document: distinct Host headers kept; past it the cache starts over
_ALLOWED = ("GET", "HEAD")
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def get_only(handler: Handler) -> Handler:
    """A read-only route: GET and HEAD reach `handler`; any other method is a 405 with `Allow`, as the REST
    paths answer (Schemathesis found /healthz and /metrics answering TRACE and POST with 200)."""

    def guarded(req: HttpRequest) -> HttpResponse:
        if req.method in _ALLOWED:
            return handler(req)
        body = orjson.dumps({"code": 405, "message": "Use GET, HEAD"})
        return HttpResponse(405, body, headers=[("Allow", ", ".join(_ALLOWED))])

    return guarded


def _handler(name: str, own_url: Callable[[], str]) -> Handler:
    cache: dict[str, bytes] = {}

    def serve(req: HttpRequest) -> HttpResponse:
        host = req.headers.get("host", "")
        url = f"http://{host}" if len(host) <= 260 and _HOST.match(host) else own_url()
        text = cache.get(url)
        if text is None:
            if len(cache) >= MAX_RENDERINGS:
                cache.clear()
            text = cache[url] = documents.render(name, server_url=url).encode()
        # Public and read-only: a browser viewer served from another origin (Swagger UI) may load it.
        return HttpResponse(200, text, CONTENT_TYPE, [("Access-Control-Allow-Origin", "*")])

    return serve


def document_routes(own_url: Callable[[], str]) -> list[tuple[str, Handler]]:
    """(path, handler) for each document; `own_url()` is the mock's http://host:port."""
    return [(f"/{name}.yaml", get_only(_handler(name, own_url))) for name in documents.DOCUMENTS]
