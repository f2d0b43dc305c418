"""`/api/docs`: the browsable API reference, Swagger UI served by Roomcast itself.

The assets come from the `swagger-ui-bundle` package (never a CDN), so the page works
offline. That package carries Swagger UI 4.15.5, which reads OpenAPI 3.0 only: the page
loads `/api/docs/openapi-3.0.json`, the 3.1 document of `/api/v1/openapi.json` written
the 3.0 way (`nullable` for a `null` branch, `enum` for `const`); 3.1 stays the one source.
The start-up script is a served file, not inline, so a `script-src 'self'` policy holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import swagger_ui_bundle  # type: ignore[import-untyped]
from aiohttp import web

from errors import NotFound
from server.http.json import json_response
from server.openapi import OPENAPI

PREFIX = "/api/docs"
_ASSETS = Path(swagger_ui_bundle.swagger_ui_path)
# Only what the page loads (and the source maps browsers ask for), not the whole folder;
# types set here, not guessed from the machine's mime.types (application/javascript, or none).
_SERVED = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-bundle.js.map": "application/json",
    "swagger-ui.css": "text/css",
    "swagger-ui.css.map": "application/json",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Roomcast API reference</title>
<link rel="stylesheet" href="{PREFIX}/static/swagger-ui.css">
<link rel="icon" type="image/png" href="{PREFIX}/static/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{PREFIX}/static/swagger-ui-bundle.js"></script>
<script src="{PREFIX}/init.js"></script>
</body>
</html>
"""

# validatorUrl null: no badge fetched from the Swagger validator's site.
_INIT = f"""window.addEventListener("load", function () {{
  window.ui = SwaggerUIBundle({{
    url: "{PREFIX}/openapi-3.0.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  }});
}});
"""

# The page's own policy: everything from this origin; Swagger UI styles some elements inline.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)


def openapi_30(node: Any) -> Any:
    """`node` (an OpenAPI 3.1 document or part of one) as OpenAPI 3.0.3 says it."""
    if isinstance(node, list):
        return [openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: openapi_30(value) for key, value in node.items()}
    if isinstance(out.get("openapi"), str) and out["openapi"].startswith("3.1"):
        out["openapi"] = "3.0.3"
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("type"), list):
        types = [t for t in out["type"] if t != "null"]
        out["type"], out["nullable"] = types[0], len(types) < len(out["type"])
    for keyword in ("anyOf", "oneOf"):
        branches = out.get(keyword)
        if isinstance(branches, list) and {"type": "null"} in branches:
            rest = [branch for branch in branches if branch != {"type": "null"}]
            del out[keyword]
            if len(rest) == 1 and "$ref" not in rest[0]:
                out.update(rest[0])
            else:
                out["allOf" if len(rest) == 1 else keyword] = rest
            out["nullable"] = True
    return out


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def page(_request: web.Request) -> web.StreamResponse:
    """The reference page."""
    return _secured(web.Response(text=_PAGE, content_type="text/html"))


async def init_script(_request: web.Request) -> web.StreamResponse:
    return _secured(web.Response(text=_INIT, content_type="text/javascript"))


async def document_30(request: web.Request) -> web.StreamResponse:
    return _secured(json_response(request.app[_OPENAPI_30]))


async def asset(request: web.Request) -> web.StreamResponse:
    """One of Swagger UI's files from the installed package; 404 for anything else."""
    name = request.match_info["name"]
    content_type = _SERVED.get(name)
    if content_type is None:
        raise NotFound("no such resource")
    return _secured(web.FileResponse(_ASSETS / name, headers={"Content-Type": content_type}))


_OPENAPI_30: web.AppKey[dict[str, Any]] = web.AppKey("openapi_30")


async def _convert_on_startup(app: web.Application) -> None:
    app[_OPENAPI_30] = openapi_30(app[OPENAPI])


def setup(app: web.Application) -> None:
    """Register the page; after `openapi.setup`, whose document it converts on start-up."""
    app.router.add_get(PREFIX, page)
    app.router.add_get(f"{PREFIX}/", page)
    app.router.add_get(f"{PREFIX}/init.js", init_script)
    app.router.add_get(f"{PREFIX}/openapi-3.0.json", document_30)
    app.router.add_get(f"{PREFIX}/static/{{name}}", asset)
    app.on_startup.append(_convert_on_startup)
