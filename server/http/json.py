"""JSON in and out: orjson responses, and request bodies validated by pydantic models."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from errors import Invalid, RoomcastError

T = TypeVar("T", bound="Body")


class Body(BaseModel):
    """Base of request bodies: unknown fields and loose types are refused, not guessed at."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(error: RoomcastError, *, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(error.to_json(), status=error.status, headers=headers)


def _field_errors(exc: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for err in exc.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in err["loc"]) or "body"
        fields.setdefault(name, err["msg"])
    return fields


async def read_json(request: web.Request) -> Any:
    """The decoded body. Raises Invalid when it is not JSON; aiohttp raises 413 past the limit."""
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Invalid("body is not valid JSON") from None


async def parse_body(request: web.Request, model: type[T]) -> T:
    """The body validated against `model`; `details.fields` names every bad field."""
    data = await read_json(request)
    if not isinstance(data, dict):
        raise Invalid("body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = _field_errors(exc)
        first = next(iter(fields.items()))
        raise Invalid(f"{first[0]}: {first[1]}", details={"fields": fields}) from None
