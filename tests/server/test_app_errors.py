"""The app factory's error middleware: every failure in docs/protocol.md's shape."""

from __future__ import annotations

import io

import orjson
from aiohttp import web

from server.app import create_app
from server.config import Settings
from server.http.json import Body, json_response, parse_body


class Echo(Body):
    name: str
    count: int = 1


async def echo(request: web.Request) -> web.Response:
    body = await parse_body(request, Echo)
    return json_response(body.model_dump())


async def boom(_request: web.Request) -> web.Response:
    raise RuntimeError("SELECT password_hash FROM users WHERE id = 'x'")


def app_with_test_routes(settings: Settings) -> web.Application:
    app = create_app(settings)
    app.router.add_post("/test/echo", echo)
    app.router.add_get("/test/boom", boom)
    return app


async def test_unknown_route_is_404_not_found_in_the_error_shape(client) -> None:
    response = await client.get("/nope")
    assert response.status == 404
    body = await response.json()
    assert body["error"]["code"] == "not_found"
    assert isinstance(body["error"]["message"], str)


async def test_wrong_method_is_405_with_allow_header(client) -> None:
    response = await client.delete("/health")
    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


async def test_unhandled_exception_is_500_internal_without_traceback_or_sql(
    make_client, settings, caplog
) -> None:
    client = await make_client(app_with_test_routes(settings))
    response = await client.get("/test/boom", headers={"X-Request-ID": "req-123"})
    assert response.status == 500
    text = await response.text()
    assert "SELECT" not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    error = orjson.loads(text)["error"]
    assert error["code"] == "internal"
    assert error["details"]["request_id"] == "req-123"
    logged = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged
    assert logged[0].exc_info is not None
    assert (await client.get("/health")).status == 200, "the process keeps serving"


async def test_body_over_the_limit_is_413_too_large(make_client, settings) -> None:
    client = await make_client(app_with_test_routes(settings))
    response = await client.post("/test/echo", data=io.BytesIO(b"x" * (1024 * 1024 + 1)))
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"


async def test_bad_bodies_get_400_invalid_naming_the_field(make_client, settings) -> None:
    client = await make_client(app_with_test_routes(settings))
    cases = {
        b"not json": None,
        b"[1, 2]": None,
        b'"a string"': None,
        b"{}": "name",
        b'{"name": 5}': "name",
        b'{"name": "a", "count": "3"}': "count",
        b'{"name": "a", "extra": true}': "extra",
        b'{"name": "a", "count": 1e400}': None,
        b'{"name": "\\u0000\\u202e\xf0\x9f\x98\x80", "count": "x"}': "count",
        b"{'name': 'single quotes'}": None,
        b'{"name": "' + b"x" * 900_000 + b'", "count": []}': "count",
    }
    for raw, field in cases.items():
        response = await client.post("/test/echo", data=raw)
        assert response.status == 400, raw
        error = (await response.json())["error"]
        assert error["code"] == "invalid"
        if field is not None:
            assert field in error["details"]["fields"], (raw, error)
    ok = await client.post("/test/echo", json={"name": "Ada \u202e😀", "count": 2})
    assert ok.status == 200
    assert await ok.json() == {"name": "Ada \u202e😀", "count": 2}


async def test_request_id_is_echoed_or_generated(client) -> None:
    given = await client.get("/health", headers={"X-Request-ID": "abc-1"})
    assert given.headers["X-Request-ID"] == "abc-1"
    hostile = await client.get("/health", headers={"X-Request-ID": "<script>" * 20})
    assert hostile.headers["X-Request-ID"] != "<script>" * 20
    assert len(hostile.headers["X-Request-ID"]) == 32
