"""`/api/docs`: Swagger UI from the installed package, every asset served here, nothing external."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

_CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".json": "application/json",
}
_EXTERNAL = re.compile(r"(?:https?:)?//", re.IGNORECASE)


class _Assets(HTMLParser):
    """The URLs a page's script and link tags load."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            if found.get("src"):
                self.urls.append(found["src"] or "")
            else:
                self.inline_scripts += 1
        elif tag == "link" and found.get("href"):
            self.urls.append(found["href"] or "")


@pytest.mark.parametrize("path", ["/api/docs", "/api/docs/"])
async def test_the_reference_page_loads_only_assets_this_server_serves(client, path) -> None:
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    html = await response.text()
    assets = _Assets()
    assets.feed(html)
    assert assets.inline_scripts == 0, "the policy allows no inline script"
    assert not _EXTERNAL.search(html)
    assert len(assets.urls) >= 3
    for url in assets.urls:
        assert url.startswith("/api/docs/"), url
        asset = await client.get(url)
        assert asset.status == 200, url
        suffix = url[url.rindex(".") :]
        assert asset.content_type == _CONTENT_TYPES[suffix], url
        if suffix == ".js" and not url.endswith("swagger-ui-bundle.js"):
            assert not _EXTERNAL.search(await asset.text()), url


async def test_swagger_ui_reads_the_openapi_31_document_itself(client) -> None:
    script = await (await client.get("/api/docs/init.js")).text()
    url = re.search(r'url: "([^"]+)"', script)
    assert url is not None
    assert url.group(1) == "/api/v1/openapi.json"
    document = await (await client.get(url.group(1))).json()
    assert document["openapi"].startswith("3.1")


async def test_only_the_pages_own_files_of_the_package_are_served(client) -> None:
    for name in ("index.html", "swagger-initializer.js", "..%2Fswagger-ui-bundle.js"):
        response = await client.get(f"/api/docs/static/{name}")
        assert response.status == 404, name
