"""JSON in and out: orjson responses, and request bodies validated by pydantic models."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, ValidationError, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from actors.requests import decode_frame
from errors import Invalid, RoomcastError
from storage.types import unstorable

T = TypeVar("T", bound="Body")

# What `Body._storable` refuses, for the OpenAPI document: no NUL, no unpaired surrogate.
STORABLE_PATTERN = r"^[^\x00\ud800-\udfff]*$"
# String schemas that already say what they accept, NUL and surrogates excluded.
_SAID = frozenset({"pattern", "format", "enum", "const"})


class Body(BaseModel):
    """Base of request bodies: unknown fields and loose types are refused, not guessed at."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @field_validator("*", mode="before", check_fields=False)
    @classmethod
    def _storable(cls, value: Any) -> Any:
        """Every string field, whatever its type says: no database stores NUL or an unpaired
        surrogate, and a lookup by such a value fails on PostgreSQL as much as a write."""
        reason = unstorable(value) if isinstance(value, str) else None
        if reason is not None:
            raise PydanticCustomError("unstorable", reason)
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        for prop in target.get("properties", {}).values():
            for branch in prop.get("anyOf", [prop]):
                if branch.get("type") == "string" and not _SAID & branch.keys():
                    branch["pattern"] = STORABLE_PATTERN
        return schema


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
    """The decoded body. Raises Invalid when it is not JSON; aiohttp raises 413 past the limit.

    As on the websocket, an escaped unpaired surrogate (`"\\ud800"`) is still JSON: the
    body decodes, and the model refuses that field by name.
    """
    raw = await request.read()
    try:
        return decode_frame(raw.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        raise Invalid("body is not valid JSON") from None


def validate(model: type[T], data: Any) -> T:
    """`data` (a decoded body) validated against `model`. Raises Invalid naming every bad
    field in `details.fields`."""
    if not isinstance(data, dict):
        raise Invalid("body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = _field_errors(exc)
        first = next(iter(fields.items()))
        raise Invalid(f"{first[0]}: {first[1]}", details={"fields": fields}) from None


async def parse_body(request: web.Request, model: type[T]) -> T:
    """The body validated against `model`; `details.fields` names every bad field."""
    return validate(model, await read_json(request))
