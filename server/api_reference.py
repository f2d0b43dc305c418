"""`/api/docs`: the browsable API reference, Swagger UI served by Roomcast itself.

The assets come from the `swagger-ui-bundle-v2` package (Swagger UI 5, which reads the
OpenAPI 3.1 document of `/api/v1/openapi.json` as it is), never from a CDN, so the page
works offline. The start-up script is a served file, not inline, so a `script-src 'self'`
policy holds.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle  # type: ignore[import-untyped]
from aiohttp import web

from errors import NotFound

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
_INIT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""

# The page's own policy: everything from this origin; Swagger UI styles some elements inline.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def page(_request: web.Request) -> web.StreamResponse:
    """The reference page."""
    return _secured(web.Response(text=_PAGE, content_type="text/html"))


async def init_script(_request: web.Request) -> web.StreamResponse:
    return _secured(web.Response(text=_INIT, content_type="text/javascript"))


async def asset(request: web.Request) -> web.StreamResponse:
    """One of Swagger UI's files from the installed package; 404 for anything else."""
    name = request.match_info["name"]
    content_type = _SERVED.get(name)
    if content_type is None:
        raise NotFound("no such resource")
    return _secured(web.FileResponse(_ASSETS / name, headers={"Content-Type": content_type}))


def setup(app: web.Application) -> None:
    """Register the page and the files it loads."""
    app.router.add_get(PREFIX, page)
    app.router.add_get(f"{PREFIX}/", page)
    app.router.add_get(f"{PREFIX}/init.js", init_script)
    app.router.add_get(f"{PREFIX}/static/{{name}}", asset)
