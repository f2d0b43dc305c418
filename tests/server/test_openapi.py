"""`GET /api/v1/openapi.json` documents every REST route with its body schema and errors."""

from __future__ import annotations


async def test_openapi_lists_every_rest_route_with_body_schemas(client) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    paths = document["paths"]
    rest_routes = {
        (
            route.method.lower(),
            route.resource.get_info().get("path") or route.resource.get_info().get("formatter"),
        )
        for route in client.app.router.routes()
        if route.method not in ("HEAD", "OPTIONS")
        and (
            route.resource.get_info().get("path")
            or route.resource.get_info().get("formatter")
            or ""
        ).startswith("/api/")
    }
    documented = {(method, path) for path, item in paths.items() for method in item}
    assert rest_routes == documented
    register = paths["/api/v1/auth/register"]["post"]
    schema = register["requestBody"]["content"]["application/json"]["schema"]
    assert {"email", "password", "name"} <= set(schema["properties"])
    assert register["security"] == []
    create_room = paths["/api/v1/teams/{team_id}/rooms"]["post"]
    assert create_room["parameters"][0]["name"] == "team_id"
    assert (
        "name" in create_room["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )
    assert "security" not in create_room, "authenticated by default"
    error = paths["/api/v1/me"]["get"]["responses"]["default"]["content"]["application/json"]
    assert error["schema"]["required"] == ["error"]
