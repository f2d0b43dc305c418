"""Middleware: a request id on every request, metrics, one error shape for every failure, and
a websocket upgrade served with all of that in one frame."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Sequence

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

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
from server.config import IPNetwork, ProxyHeaders
from server.forwarded import client_request
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


def request_id_of(request: web.Request) -> str:
    """The client's X-Request-ID when it is sane, else a new one."""
    given = request.headers.get("X-Request-ID", "")
    return given if _SAFE_ID.match(given) else uuid.uuid4().hex


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Name the request (the client's X-Request-ID when it is sane) for logs and the client."""
    request_id = request[REQUEST_ID] = request_id_of(request)
    token = LOG_REQUEST_ID.set(request_id)
    try:
        response = await handler(request)
    finally:
        LOG_REQUEST_ID.reset(token)
    if not response.prepared:
        response.headers["X-Request-ID"] = request_id
    return response


def count_request(request: web.Request, status: int, started: float) -> None:
    """Count and time one answered request by its route template, never by its raw path."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    metrics = request.app[METRICS]
    metrics.http_requests.labels(request.method, route, str(status)).inc()
    metrics.http_latency.labels(route).observe(time.perf_counter() - started)


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
        count_request(request, status, started)


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
    except Exception as exc:  # the one place an unknown failure becomes a protocol answer
        return error_answer(request, exc)


def error_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The protocol's answer to `exc`; a redirect (an HTTPException under 400) is re-raised."""
    if isinstance(exc, RateLimited):
        return error_response(exc, headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, Unavailable):
        # A dependency (Redis, the database, a provider) is down: worth a retry shortly.
        return error_response(exc, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})
    if isinstance(exc, RoomcastError):
        return error_response(exc)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return _from_http_exception(exc)
    if database_down(exc):
        logger.warning("database unreachable on %s %s: %r", request.method, request.path, exc)
        unavailable = Unavailable("the database is unavailable; retry shortly")
        return error_response(unavailable, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})
    logger.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    error = Internal("internal error", details={"request_id": request.get(REQUEST_ID, "unknown")})
    return error_response(error)


def upgrade_middleware(
    trusted: Sequence[IPNetwork], mode: ProxyHeaders, *, self_served: Handler | None = None
) -> Middleware:
    """Serve a websocket upgrade with the whole chain's work done in one frame, or none.

    A websocket's handler runs for the connection's life, and each middleware around it stays
    suspended that long, thousands of times over with idle clients. So, first in the chain,
    this does for an upgrade what the middlewares after it would (request id, the trusted
    proxy's client, metrics, the error shape) and calls the route's handler itself. The
    `self_served` handler (the websocket endpoint) answers its own errors with
    `error_answer`, and `count_upgrade` counts and names its answer: it is called straight
    from this plain function, with no frame of ours around it. Any other request goes down
    the chain, through the same plain function.
    """

    def middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if request.headers.get(hdrs.UPGRADE, "").lower() != "websocket":
            return handler(request)
        if self_served is not None and request.match_info.handler is self_served:
            return self_served(_begin_upgrade(request, trusted, mode))
        return _serve_upgrade(request, trusted, mode)

    middleware.__middleware_version__ = 1  # type: ignore[attr-defined]  # what @web.middleware sets
    return middleware


#: When an upgrade's request came in, until it is counted: when answered 101, or when its
#: handler ends without an upgrade.
_UPGRADE_STARTED = web.RequestKey("upgrade_started", float)


def _begin_upgrade(
    request: web.Request, trusted: Sequence[IPNetwork], mode: ProxyHeaders
) -> web.Request:
    """request_id_middleware's and forwarded_middleware's work for an upgrade: the request
    to hand its handler. The log's request id is not reset after: aiohttp runs each
    request in a task of its own, whose context ends with it."""
    request_id = request[REQUEST_ID] = request_id_of(request)
    LOG_REQUEST_ID.set(request_id)
    request[_UPGRADE_STARTED] = time.perf_counter()
    return client_request(request, trusted, mode)


async def _serve_upgrade(
    request: web.Request, trusted: Sequence[IPNetwork], mode: ProxyHeaders
) -> web.StreamResponse:
    """request_id_middleware, forwarded_middleware, metrics_middleware and error_middleware,
    in that order, around the route's handler; its answer is counted, and gets its request
    id, by `count_upgrade` as it is sent."""
    request = _begin_upgrade(request, trusted, mode)
    try:
        return await request.match_info.handler(request)
    except Exception as exc:  # error_middleware's place, for an upgrade
        return error_answer(request, exc)


async def count_upgrade(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: a websocket is counted when its upgrade is answered (101, with
    the time to answer it), not when its socket closes hours later; a self-served upgrade's
    refusal is counted, and gets its request id, as it is sent."""
    started = request.pop(_UPGRADE_STARTED, None)
    if started is None:
        return
    count_request(request, response.status, started)
    if response.status != 101 and "X-Request-ID" not in response.headers:
        response.headers["X-Request-ID"] = request[REQUEST_ID]
