"""`/api/docs` in a real browser: Swagger UI renders every operation from this server alone.

The page is loaded in Chromium from a live server; every request the browser makes is
recorded, and any console error (a refused script, a Content-Security-Policy violation,
a document Swagger UI cannot read) fails the test.
"""

from __future__ import annotations

from yarl import URL

from tests.browser import chromium


async def test_the_reference_renders_every_operation_with_nothing_fetched_elsewhere(
    client,
) -> None:
    document = await (await client.get("/api/v1/openapi.json")).json()
    operations = sum(
        1
        for path in document["paths"].values()
        for method in path
        if method in {"get", "put", "post", "delete", "patch"}
    )
    origin = client.make_url("/").origin()
    requested: list[str] = []
    errors: list[str] = []

    async with chromium() as browser:
        page = await browser.new_page()
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(str(client.make_url("/api/docs")))
        await page.wait_for_selector(".opblock", timeout=30_000)
        title = await page.inner_text(".info .title")
        rendered = await page.locator(".opblock").count()
        paths = await page.locator(".opblock-summary-path").all_inner_texts()

    assert title.startswith(document["info"]["title"])
    assert rendered == operations
    assert "/api/v1/rooms/{room_id}/messages" in {p.replace("\u200b", "") for p in paths}
    assert errors == []
    assert requested
    assert all(URL(url).origin() == origin for url in requested), requested
