"""`GET /api/v1/openapi.json`: an OpenAPI 3.1 document of every REST route, built at start-up.

Paths and methods come from the router; summaries from the handlers' docstrings; what each
operation answers from its `@answers` declaration (server/http/operation.py), whose models
are in server/http/shapes.py; request schemas from the pydantic `Body` model each handler
passes to `parse_body` (found in its source, resolved in its module). Every schema goes in
`components.schemas` once, referenced from the operations.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

import errors
from server.http import shapes
from server.http.json import json_response
from server.http.operation import Answer, answer_of, answers

logger = logging.getLogger(__name__)

_PARSE_BODY = re.compile(r"parse_(optional_)?body\(\s*request\s*,\s*([A-Za-z_][\w.]*)\s*\)")
_PARAM = re.compile(r"\{([^}]+)\}")
_REF = "#/components/schemas/{model}"
# Routes under /api/ that are not REST operations: the API reference page and its assets.
_NOT_OPERATIONS = ("/api/docs",)
PROTOCOL = "docs/protocol.md"
_UNDECLARED = Answer(200, None, (), (), False, None, None)
_SUCCESS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}


def _error_codes() -> dict[int, list[str]]:
    """The protocol's error codes by HTTP status, from the classes in errors.py."""
    found: dict[int, list[str]] = {}
    pending: list[type[errors.RoomcastError]] = [errors.RoomcastError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.code not in found.setdefault(cls.status, []):
            found[cls.status].append(cls.code)
    return found


_CODES = _error_codes()


def _unwrap(handler: Any) -> Any:
    while hasattr(handler, "__wrapped__"):
        handler = handler.__wrapped__
    return handler


def _body_model(handler: Any) -> tuple[type[BaseModel] | None, bool]:
    """The `Body` model the handler validates its request with, and whether it is required."""
    target = _unwrap(handler)
    try:
        source = inspect.getsource(target)
    except (OSError, TypeError):
        return None, False
    match = _PARSE_BODY.search(source)
    if match is None:
        return None, False
    head, *rest = match.group(2).split(".")
    model = target.__globals__.get(head)
    for name in rest:
        model = getattr(model, name, None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model, match.group(1) is None
    return None, False


def _error_response(status: int) -> dict[str, Any]:
    codes = ", ".join(f"`{code}`" for code in _CODES.get(status, ["internal"]))
    response: dict[str, Any] = {
        "description": f"{codes}: the error shape of {PROTOCOL}",
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="Error")}}},
    }
    if status == 429:
        response["headers"] = {
            "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
        }
    return response


def _success_response(answer: Answer, schemas: dict[type[BaseModel], dict[str, Any]]) -> Any:
    response: dict[str, Any] = {"description": _SUCCESS.get(answer.status, "Success")}
    if answer.model is not None:
        schema = schemas[answer.model]
        response["content"] = {"application/json": {"schema": schema}}
    return response


def _error_statuses(answer: Answer, path: str, has_body: bool) -> set[int]:
    statuses = {500, *answer.errors}
    if has_body:
        statuses |= {400, 413}
    if any(param.where == "query" for param in answer.params):
        statuses.add(400)
    if not answer.public:
        statuses.add(401)
    if _PARAM.search(path):
        statuses.add(404)  # an unknown id, or one the caller may not see
    return statuses


def _operation(
    path: str,
    method: str,
    handler: Any,
    answer: Answer,
    schemas: dict[type[BaseModel], dict[str, Any]],
) -> dict[str, Any]:
    target = _unwrap(handler)
    doc = inspect.getdoc(target) or ""
    summary, _, description = doc.partition("\n")
    model, required = _body_model(handler)
    if answer.body is not None:
        model, required = answer.body, True
    if answer.body_required is not None:
        required = answer.body_required
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}_{target.__name__}",
        "summary": summary or target.__name__.replace("_", " "),
        "tags": [target.__module__.rsplit(".", 1)[-1]],
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(path)
        ]
        + [param.to_openapi() for param in answer.params],
    }
    if description.strip():
        operation["description"] = description.strip()
    if model is not None:
        operation["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": schemas[model]}},
        }
    responses = {str(answer.status): _success_response(answer, schemas)}
    for status in sorted(_error_statuses(answer, path, model is not None)):
        responses[str(status)] = _error_response(status)
    operation["responses"] = responses
    if answer.public:
        operation["security"] = []
    return operation


def _operations(app: web.Application) -> Iterable[tuple[str, str, Any, Answer]]:
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if not path or not path.startswith("/api/") or route.method in ("HEAD", "OPTIONS"):
            continue
        if path.startswith(_NOT_OPERATIONS):
            continue
        answer = answer_of(route.handler)
        if answer is None:  # documented as little as is known; test_openapi.py refuses it
            logger.warning("%s %s declares no @answers", route.method, path)
            answer = _UNDECLARED
        yield path, route.method, route.handler, answer


def _schemas(
    models: Iterable[type[BaseModel]],
) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    """Each model's schema (a reference) and the components they refer to."""
    unique = list(dict.fromkeys(models))
    refs, top = models_json_schema([(model, "validation") for model in unique], ref_template=_REF)
    return {model: refs[(model, "validation")] for model in unique}, top.get("$defs", {})


def build(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document of the app's REST routes (the websocket is in docs/protocol.md)."""
    found = list(_operations(app))
    models: list[type[BaseModel]] = [shapes.Error]
    for _path, _method, handler, answer in found:
        models += [m for m in (answer.model, answer.body, _body_model(handler)[0]) if m]
    schemas, components = _schemas(models)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, handler, answer in found:
        paths.setdefault(path, {})[method.lower()] = _operation(
            path, method, handler, answer, schemas
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Roomcast",
            "version": "1",
            "description": f"Roomcast's REST API. Errors, their codes, the websocket: {PROTOCOL}.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(components.items())),
        },
        "security": [{"bearer": []}],
        "paths": dict(sorted(paths.items())),
    }


OPENAPI: web.AppKey[dict[str, Any]] = web.AppKey("openapi")


@answers(200, shapes.Document, public=True)
async def openapi(request: web.Request) -> web.Response:
    """This document."""
    return json_response(request.app[OPENAPI])


async def _build_on_startup(app: web.Application) -> None:
    app[OPENAPI] = build(app)  # every route is registered by now


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", openapi)
    app.on_startup.append(_build_on_startup)
