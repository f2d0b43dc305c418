"""The web app at `/` and `/app/<name>`, and the repository's documentation under `/docs/`.

Someone who opens the address `make run` prints gets the Roomcast web app: sign up, chat,
manage teams. `/app/<name>` serves only the files listed in `APP_FILES` (and the
JavaScript client, from clients/js/), looked up by exact name, so no path a client sends
reaches the filesystem; the same holds for `/docs/<name>.md` and `DOCUMENTS`.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from errors import NotFound

_REPOSITORY = Path(__file__).resolve().parents[2]
APP_DIR = _REPOSITORY / "server" / "static" / "app"
CLIENT_JS = _REPOSITORY / "clients" / "js" / "roomcast.js"
DOCUMENTS = frozenset({"protocol.md", "architecture.md", "operations.md"})

_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
_VIEWS = ("dom", "login", "account", "teams", "billing", "admin")

#: Every file `/app/<name>` may answer, with its content type.
APP_FILES: dict[str, tuple[Path, str]] = {
    "app.css": (APP_DIR / "app.css", _CSS),
    "chat.css": (APP_DIR / "chat.css", _CSS),
    "api.js": (APP_DIR / "api.js", _JS),
    "main.js": (APP_DIR / "main.js", _JS),
    "chat.js": (APP_DIR / "chat.js", _JS),
    "roomcast.js": (CLIENT_JS, _JS),
    "icon.svg": (APP_DIR / "icon.svg", "image/svg+xml"),
    **{f"views/{name}.js": (APP_DIR / "views" / f"{name}.js", _JS) for name in _VIEWS},
}

#: Where `/docs/` reads from: the repository's docs/ unless a test points elsewhere.
DOCS_DIR = web.AppKey("docs_dir", Path)

# The app loads its scripts, styles and data from this origin only; 'self' in
# connect-src covers the websocket to the same host as well.
APP_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self'; style-src 'self'; "
    "script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# A document is text; `sandbox` keeps a browser that renders it anyway from running it.
_DOCUMENT_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"


def _secured(response: web.StreamResponse, policy: str) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def start_page(_request: web.Request) -> web.StreamResponse:
    """`GET /`: the web app's page; its scripts route by the URL's `#` part.

    Also `GET /teams/<id>/billing`, where Stripe returns the browser: the app then shows
    that team's billing screen.
    """
    response = web.FileResponse(
        APP_DIR / "index.html",
        headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"},
    )
    return _secured(response, APP_POLICY)


async def app_file(request: web.Request) -> web.StreamResponse:
    """`GET /app/<name>`: one of `APP_FILES`; 404 for any other name or a missing file."""
    entry = APP_FILES.get(request.match_info["name"])
    if entry is None or not entry[0].is_file():
        raise NotFound("no such file")
    path, content_type = entry
    response = web.FileResponse(
        path, headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
    )
    return _secured(response, APP_POLICY)


async def document(request: web.Request) -> web.StreamResponse:
    """`GET /docs/<name>.md`: one of `DOCUMENTS` as text/markdown; 404 for any other name."""
    name = request.match_info["name"]
    path = request.app[DOCS_DIR] / name
    if name not in DOCUMENTS or not path.is_file():
        raise NotFound("no such document")
    response = web.FileResponse(path, headers={"Content-Type": "text/markdown; charset=utf-8"})
    return _secured(response, _DOCUMENT_POLICY)


def setup(app: web.Application, docs_dir: Path = _REPOSITORY / "docs") -> None:
    app[DOCS_DIR] = docs_dir
    app.router.add_get("/", start_page)
    # Where Stripe sends the browser back after checkout and the billing portal.
    app.router.add_get("/teams/{team_id}/billing", start_page)
    app.router.add_get("/app/{name:.+}", app_file)
    app.router.add_get("/docs/{name}", document)
