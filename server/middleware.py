"""Middleware: a request id on every request, metrics, and one error shape for every failure."""

from __future__ import annotations

import logging
import re
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from errors import (
    Internal,
    Invalid,
    MethodNotAllowed,
    NotFound,
    RateLimited,
    RoomcastError,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from server.http.json import error_response
from server.logs import REQUEST_ID as LOG_REQUEST_ID
from server.state import METRICS, REQUEST_ID
from storage.db import database_down

logger = logging.getLogger(__name__)

#: Seconds a client is told to wait before retrying a 503 `unavailable`.
UNAVAILABLE_RETRY_AFTER = 1

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# aiohttp's own HTTP errors, mapped to the protocol's codes.
_HTTP_TO_ERROR: dict[int, type[RoomcastError]] = {
    400: Invalid,
    401: Unauthorized,
    404: NotFound,
    405: MethodNotAllowed,
    413: TooLarge,
    429: RateLimited,
}


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Name the request (the client's X-Request-ID when it is sane) for logs and the client."""
    given = request.headers.get("X-Request-ID", "")
    request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    token = LOG_REQUEST_ID.set(request_id)
    try:
        response = await handler(request)
    finally:
        LOG_REQUEST_ID.reset(token)
    if not response.prepared:
        response.headers["X-Request-ID"] = request_id
    return response


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time each request by its route template, never by its raw path."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics = request.app[METRICS]
        metrics.http_requests.labels(request.method, route, str(status)).inc()
        metrics.http_latency.labels(route).observe(time.perf_counter() - started)


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    error_class = _HTTP_TO_ERROR.get(exc.status, Invalid if exc.status < 500 else Internal)
    if exc.status == 413:
        error: RoomcastError = TooLarge("body too large")
    elif exc.status == 405:
        error = MethodNotAllowed(f"method {exc.method} not allowed")  # type: ignore[attr-defined]
    elif error_class is NotFound:
        error = NotFound("no such resource")
    else:
        error = error_class(exc.reason)
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    response = error_response(error, headers=headers)
    response.set_status(exc.status)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into docs/protocol.md's shape; a bug becomes 500 `internal`, logged here."""
    try:
        return await handler(request)
    except RateLimited as exc:
        return error_response(exc, headers={"Retry-After": str(exc.retry_after)})
    except Unavailable as exc:
        # A dependency (Redis, the database, a provider) is down: worth a retry shortly.
        return error_response(exc, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})
    except RoomcastError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc)
    except Exception as exc:  # the one place an unknown failure becomes a protocol answer
        if database_down(exc):
            logger.warning("database unreachable on %s %s: %r", request.method, request.path, exc)
            unavailable = Unavailable("the database is unavailable; retry shortly")
            return error_response(
                unavailable, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)}
            )
        logger.exception("unhandled error on %s %s", request.method, request.path)
        error = Internal(
            "internal error", details={"request_id": request.get(REQUEST_ID, "unknown")}
        )
        return error_response(error)
