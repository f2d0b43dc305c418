"""The web app at `/` and `/app/`, and the read-only documents under `/docs/`: every link
works, the app's files come with their types under a same-origin policy, and nothing but
the listed files and documents is served."""

from __future__ import annotations

import asyncio
import posixpath
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from server.app import create_app
from server.http.pages import APP_FILES, DOCS_DIR

REPO = Path(__file__).resolve().parents[2]


class Links(HTMLParser):
    """The `href` of every `<a>` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs += [value for name, value in attrs if name == "href" and value]


async def links_of(client) -> list[str]:
    response = await client.get("/")
    assert response.status == 200
    parser = Links()
    parser.feed(await response.text())
    return parser.hrefs


APP_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self'; style-src 'self'; "
    "script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


async def test_the_start_page_is_the_web_app_under_a_same_origin_policy(client) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == APP_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = await response.text()
    assert page == (REPO / "server" / "static" / "app" / "index.html").read_text()
    assert '<script type="module" src="/app/main.js"></script>' in page
    assert '<link rel="stylesheet" href="/app/app.css">' in page
    # No inline script or style: the policy would refuse them.
    assert "<style" not in page
    assert "style=" not in page
    assert page.count("<script") == 1


async def test_stripes_way_back_to_a_teams_billing_opens_the_web_app(client) -> None:
    response = await client.get(
        "/teams/0d5e3d0e-1b0f-4c51-9d8e-0a1b2c3d4e5f/billing?checkout=success"
    )
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == APP_POLICY
    assert await response.text() == (REPO / "server" / "static" / "app" / "index.html").read_text()


async def test_the_start_page_links_the_api_reference_the_openapi_document_and_the_docs(
    client,
) -> None:
    assert {
        "/api/docs",
        "/api/v1/openapi.json",
        "/docs/protocol.md",
        "/docs/architecture.md",
        "/docs/operations.md",
    } <= set(await links_of(client))


async def test_every_link_of_the_start_page_resolves(client) -> None:
    for href in await links_of(client):
        if href.startswith("#"):
            continue  # a screen of the app itself
        assert href.startswith("/"), f"{href}: the page links only this server"
        response = await client.get(href)
        assert response.status == 200, href


@pytest.mark.parametrize(
    ("name", "content_type", "source"),
    [
        ("app.css", "text/css; charset=utf-8", "server/static/app/app.css"),
        ("main.js", "text/javascript; charset=utf-8", "server/static/app/main.js"),
        ("api.js", "text/javascript; charset=utf-8", "server/static/app/api.js"),
        ("views/login.js", "text/javascript; charset=utf-8", "server/static/app/views/login.js"),
        (
            "views/account.js",
            "text/javascript; charset=utf-8",
            "server/static/app/views/account.js",
        ),
        ("icon.svg", "image/svg+xml", "server/static/app/icon.svg"),
        ("roomcast.js", "text/javascript; charset=utf-8", "clients/js/roomcast.js"),
    ],
)
async def test_each_app_file_is_served_with_its_type_under_the_policy(
    client, name: str, content_type: str, source: str
) -> None:
    if not (REPO / source).is_file():
        pytest.fail(f"{source} is missing from the repository")
    response = await client.get(f"/app/{name}")
    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Security-Policy"] == APP_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert await response.read() == (REPO / source).read_bytes()


def test_every_module_the_app_imports_is_one_the_server_serves() -> None:
    app = REPO / "server" / "static" / "app"
    relative_import = re.compile(r'(?:from|import\()\s*"(\.\.?/[^"]+)"')
    imported = set()
    for script in [*app.glob("*.js"), *app.glob("views/*.js")]:
        folder = script.parent.relative_to(app).as_posix()
        for target in relative_import.findall(script.read_text()):
            imported.add(posixpath.normpath(posixpath.join(folder, target)))
    assert imported
    assert imported <= set(APP_FILES), imported - set(APP_FILES)


@pytest.mark.parametrize(
    "target",
    [
        "/app/",
        "/app/index.html",
        "/app/nothing.js",
        "/app/MAIN.JS",
        "/app/main.js.orig",
        "/app/views/",
        "/app/views/nothing.js",
        "/app/../config.py",
        "/app/..%2fconfig.py",
        "/app/..%2F..%2Frun.py",
        "/app/views/..%2F..%2F..%2Fhttp%2Fpages.py",
        "/app/%2E%2E/%2E%2E/run.py",
        "/app//etc/passwd",
        "/app/%2Fetc%2Fpasswd",
        "/app/main.js%00.txt",
    ],
)
async def test_nothing_but_the_listed_app_files_is_served_from_app(client, target: str) -> None:
    assert await raw_status(client, target) == 404


@pytest.mark.parametrize("name", ["protocol.md", "architecture.md", "operations.md"])
async def test_each_document_is_served_as_it_is_in_the_repository(client, name: str) -> None:
    response = await client.get(f"/docs/{name}")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert await response.read() == (REPO / "docs" / name).read_bytes()


async def raw_status(client, target: str) -> int:
    """The status of `GET target`, sent byte for byte (no client normalizes the path)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


@pytest.mark.parametrize(
    "target",
    [
        "/docs/README.md",
        "/docs/PROTOCOL.md",
        "/docs/protocol.md.orig",
        "/docs/",
        "/docs/../README.md",
        "/docs/..%2FREADME.md",
        "/docs/%2E%2E%2Frun.py",
        "/docs/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/docs/%2Fetc%2Fpasswd",
        "/docs/protocol.md%00.txt",
        "/docs//etc/passwd",
    ],
)
async def test_nothing_but_the_listed_documents_is_served_from_docs(client, target: str) -> None:
    assert await raw_status(client, target) == 404


async def test_documents_come_from_the_docs_folder_and_a_missing_one_is_not_found(
    make_client, settings, tmp_path
) -> None:
    app = create_app(settings)
    app[DOCS_DIR] = tmp_path
    (tmp_path / "protocol.md").write_text("# Protocol, as this folder has it\n")
    (tmp_path / "secrets.md").write_text("not listed\n")
    client = await make_client(app)
    served = await client.get("/docs/protocol.md")
    assert (served.status, await served.text()) == (200, "# Protocol, as this folder has it\n")
    missing = await client.get("/docs/architecture.md")
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"
    assert (await client.get("/docs/secrets.md")).status == 404
