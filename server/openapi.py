"""`GET /api/v1/openapi.json`: an OpenAPI 3.1 document of every REST route, built at start-up.

Paths and methods come from the router; summaries from the handlers' docstrings; request
schemas from the pydantic `Body` model each handler passes to `parse_body` (found in its
source, resolved in its module); every operation documents the one error shape.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from server.http.json import json_response

_PARSE_BODY = re.compile(r"parse_(?:optional_)?body\(\s*request\s*,\s*([A-Za-z_][\w.]*)\s*\)")
_PARAM = re.compile(r"\{([^}]+)\}")
_PUBLIC = frozenset(
    "/api/v1/" + path
    for path in (
        "auth/register",
        "auth/login",
        "auth/refresh",
        "auth/otp/request",
        "auth/otp/verify",
        "auth/password/forgot",
        "auth/password/reset",
        "billing/plans",
        "webhooks/stripe",
        "openapi.json",
    )
)

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def _unwrap(handler: Any) -> Any:
    while hasattr(handler, "__wrapped__"):
        handler = handler.__wrapped__
    return handler


def _body_model(handler: Any) -> type[BaseModel] | None:
    """The `Body` model the handler validates its request with, if it has one."""
    target = _unwrap(handler)
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):
        return None
    match = _PARSE_BODY.search(source)
    if match is None:
        return None
    head, *rest = match.group(1).split(".")
    model = target.__globals__.get(head)
    for name in rest:
        model = getattr(model, name, None)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _operation(path: str, method: str, handler: Any) -> dict[str, Any]:
    target = _unwrap(handler)
    doc = inspect.getdoc(target) or ""
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}_{target.__name__}",
        "summary": doc.splitlines()[0] if doc else target.__name__.replace("_", " "),
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(path)
        ],
        "responses": {
            "2XX": {"description": "success (see PROTOCOL.md for the body)"},
            "default": {
                "description": "an error, in the one shape of PROTOCOL.md",
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
            },
        },
    }
    model = _body_model(handler)
    if model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    if path in _PUBLIC:
        operation["security"] = []
    return operation


def build(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document of the app's REST routes (the websocket is in PROTOCOL.md)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if not path or not path.startswith("/api/") or route.method in ("HEAD", "OPTIONS"):
            continue
        paths.setdefault(path, {})[route.method.lower()] = _operation(
            path, route.method, route.handler
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "Roomcast", "version": "1"},
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
    }


OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])


async def _build_on_startup(app: web.Application) -> None:
    app[OPENAPI] = build(app)  # every route is registered by now


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.on_startup.append(_build_on_startup)
