"""Structured logging: a JSON formatter and the request id carried into every log line.

Only `run.py` installs these; modules just use `logging.getLogger(__name__)`.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

#: The id of the request being served, for every line logged while it is handled.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
#: The same id on the request itself: its access line is written after the handler (and
#: the context variable's value with it) is gone.
REQUEST_ID_KEY = web.RequestKey("request_id", str)
#: The client's address behind a trusted proxy, for the access line: it is handed the
#: request as received, whose `remote` is the proxy's (server/forwarded.py sets this).
CLIENT_ADDRESS_KEY = web.RequestKey("client_address", str)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being served, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class AccessLogger(AbstractAccessLogger):
    """One line per answered request, with its id, status and duration."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        fields: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "status": response.status,
            "duration_ms": round(time * 1000, 1),
            "remote": request.get(CLIENT_ADDRESS_KEY, request.remote),
        }
        request_id = request.get(REQUEST_ID_KEY)  # none when refused before the middleware
        if request_id is not None:
            fields["request_id"] = request_id
        self.logger.info(
            "%s %s %d %.1fms",
            request.method,
            request.path,
            response.status,
            time * 1000,
            extra=fields,
        )


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    logging.getLogger("roomcast").critical(
        "stopped by an uncaught error", exc_info=(kind, error, trace)
    )


def configure(level: str, fmt: str) -> None:
    """Install the root handler: JSON lines, or readable text for a terminal.

    In JSON every line of the process is one object: warnings and an uncaught error's
    traceback go through logging too.
    """
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        sys.excepthook = _log_uncaught
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-5s %(name)s [%(request_id)s] %(message)s",
                defaults={"request_id": "-"},
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
