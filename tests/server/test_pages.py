"""The start page at `/` and the read-only documents under `/docs/`: every link works,
nothing but the listed documents is served."""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser
from pathlib import Path

import pytest

from server.app import create_app
from server.http.pages import DOCS_DIR

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


async def test_the_start_page_is_plain_html_under_a_policy_that_allows_nothing_else(
    client,
) -> None:
    response = await client.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = await response.text()
    assert "<h1>Roomcast</h1>" in page
    assert not any(tag in page for tag in ("<script", "<style", "style=", "<img", "<link"))
    assert page == (REPO / "server" / "static" / "index.html").read_text()


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
        assert href.startswith("/"), f"{href}: the page links only this server"
        response = await client.get(href)
        assert response.status == 200, href


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
