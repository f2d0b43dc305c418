"""`GET /api/v1/openapi.json` documents every REST route: parameters, bodies, answers, errors."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest

from server.http.operation import answer_of


@pytest.fixture
async def document(client) -> dict[str, Any]:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    return await response.json()


def _route_path(route) -> str:
    info = route.resource.get_info()
    return info.get("path") or info.get("formatter") or ""


def _body_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    body = document["paths"][path][method]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    return {**document["components"]["schemas"][ref.rsplit("/", 1)[-1]], **_components(document)}


def _components(document: dict[str, Any]) -> dict[str, Any]:
    return {"components": document["components"]}


async def test_openapi_lists_every_rest_route_and_each_declares_its_answer(
    client, document
) -> None:
    assert document["openapi"] == "3.1.0"
    rest_routes = {
        (route.method.lower(), _route_path(route))
        for route in client.app.router.routes()
        if route.method not in ("HEAD", "OPTIONS")
        and _route_path(route).startswith("/api/")
        and not _route_path(route).startswith("/api/docs")
    }
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert rest_routes == documented
    undeclared = [
        (route.method, _route_path(route))
        for route in client.app.router.routes()
        if (route.method.lower(), _route_path(route)) in rest_routes
        and answer_of(route.handler) is None
    ]
    assert undeclared == []


async def test_every_operation_has_a_summary_a_success_schema_and_the_error_shape(
    document,
) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method} {path}"
            assert operation["summary"], where
            successes = [s for s in operation["responses"] if s.startswith("2")]
            assert len(successes) == 1, where
            success = operation["responses"][successes[0]]
            if successes[0] in ("202", "204"):
                assert "content" not in success, where
            else:
                assert "schema" in success["content"]["application/json"], where
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, where
                    assert "docs/protocol.md" in response["description"], where
            assert "500" in operation["responses"], where
    assert "PROTOCOL.md" not in json.dumps(document)


async def test_paging_parameters_carry_the_bounds_the_server_enforces(document) -> None:
    history = document["paths"]["/api/v1/rooms/{room_id}/messages"]["get"]
    params = {param["name"]: param for param in history["parameters"]}
    assert set(params) == {"room_id", "limit", "cursor", "before_seq", "after_seq"}
    assert params["limit"]["in"] == "query"
    assert params["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 200,
        "default": 50,
    }
    assert params["before_seq"]["schema"]["minimum"] == 0
    assert "400" in history["responses"]
    teams = document["paths"]["/api/v1/teams"]["get"]
    assert {param["name"] for param in teams["parameters"]} == {"limit", "cursor"}
    item = teams["responses"]["200"]["content"]["application/json"]["schema"]
    assert item == {"$ref": "#/components/schemas/TeamPage"}


async def test_body_schemas_refuse_what_the_server_refuses(client, document) -> None:
    register = _body_schema(document, "/api/v1/auth/register", "post")
    validator = jsonschema_rs.validator_for(register)
    good = {"email": "ada@example.com", "password": "Correct-Horse-9", "name": "Ada"}
    assert validator.is_valid(good)
    for name in ("", "   ", "a" * 101, "Ada\u202e", "A\tda"):
        assert not validator.is_valid({**good, "name": name}), repr(name)
        response = await client.post("/api/v1/auth/register", json={**good, "name": name})
        assert response.status == 400, repr(name)
    otp = jsonschema_rs.validator_for(_body_schema(document, "/api/v1/auth/otp/request", "post"))
    assert otp.is_valid({"email": "ada@example.com"})
    assert otp.is_valid({"phone": "+49 151 1234-5678", "email": None})
    assert not otp.is_valid({})
    assert not otp.is_valid({"email": "ada@example.com", "phone": "+4915112345678"})
    assert not otp.is_valid({"phone": "+49\t15112345678"})


async def test_bodies_are_required_only_where_the_handler_needs_one(document) -> None:
    paths = document["paths"]
    assert paths["/api/v1/auth/register"]["post"]["requestBody"]["required"] is True
    for optional in ("logout", "logout-all", "2fa/setup"):
        assert paths[f"/api/v1/auth/{optional}"]["post"]["requestBody"]["required"] is False
    portal = paths["/api/v1/teams/{team_id}/billing/portal"]["post"]
    assert portal["requestBody"]["required"] is False
    assert "requestBody" not in paths["/api/v1/teams/{team_id}"]["delete"]


async def test_security_locked_accounts_and_rate_limits_are_documented(document) -> None:
    paths = document["paths"]
    register = paths["/api/v1/auth/register"]["post"]
    assert register["security"] == []
    assert "401" not in register["responses"]
    login = paths["/api/v1/auth/login"]["post"]["responses"]
    assert {"401", "423", "429"} <= set(login)
    assert "Retry-After" in login["429"]["headers"]
    create_room = paths["/api/v1/teams/{team_id}/rooms"]["post"]
    assert create_room["parameters"][0]["name"] == "team_id"
    assert "security" not in create_room, "authenticated by default"
    assert {"401", "404"} <= set(create_room["responses"])
