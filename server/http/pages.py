"""The start page at `/` and the repository's documentation, read-only, under `/docs/`.

Someone who opens the address `make run` prints finds what Roomcast is and links to the
API reference and the documents. `/docs/<name>.md` serves only the documents listed in
`DOCUMENTS`, looked up by exact name, so no path a client sends reaches the filesystem.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from errors import NotFound

_REPOSITORY = Path(__file__).resolve().parents[2]
START_PAGE = _REPOSITORY / "server" / "static" / "index.html"
DOCUMENTS = frozenset({"protocol.md", "architecture.md", "operations.md"})

#: Where `/docs/` reads from: the repository's docs/ unless a test points elsewhere.
DOCS_DIR = web.AppKey("docs_dir", Path)

# Neither response needs anything beyond itself: no script, style, frame or form.
_PAGE_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
# A document is text; `sandbox` keeps a browser that renders it anyway from running it.
_DOCUMENT_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"


def _secured(response: web.StreamResponse, policy: str) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def start_page(_request: web.Request) -> web.StreamResponse:
    """`GET /`: what this server is, with links to the API reference and the docs."""
    response = web.FileResponse(START_PAGE, headers={"Content-Type": "text/html; charset=utf-8"})
    return _secured(response, _PAGE_POLICY)


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
    app.router.add_get("/docs/{name}", document)
