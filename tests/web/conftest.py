"""Browser fixtures for the web app: a real instance, Chromium, and pages that fail on errors.

- `app_server`: one `python run.py serve` on throwaway PostgreSQL and Redis, the offline
  assistant answering slowly enough (`AI_OFFLINE_DELAY`) that a stop button can be
  clicked mid-answer. `.url`, `.restart()`, `.database` (to read mailed codes). A module
  overrides `app_env` to give it more settings.
- `browser`: Chromium from `tests/browser.py`.
- `new_page(**context_options)`: a fresh context and page. Any console error, uncaught
  exception, Content-Security-Policy violation, failed app asset or request to another
  origin fails the test at teardown. An API error answer (a 4xx/5xx from `/api/v1`) is
  allowed: the app shows those to the user.
- `signed_up(page, name)`: signs a new user up through the UI (unique email) and waits
  for the rooms screen; returns the `WebAccount`.
- `screenshots_dir`: where tests save PNGs (`SCREENSHOTS_DIR`, default var/screenshots).
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Request, Response, expect
from redis.asyncio import Redis
from yarl import URL

from storage.db import Database
from tests.browser import chromium
from tests.instances import Instance, launched

PASSWORD = "Correct-Horse-42"
ROOMS_URL = re.compile(r"#/teams/[^/]+/rooms")
LOGIN_URL = re.compile(r"#/login$")
# Chromium reports every non-2xx fetch as a console error; the app's API errors are expected.
_API_ANSWER = re.compile(r"^Failed to load resource: the server responded with a status of")
_names = itertools.count(1)

# A sign-in is several requests and a websocket handshake; on a loaded test machine that
# can take longer than Playwright's default 5 s wait without anything being wrong.
expect.set_options(timeout=15_000)


@dataclass
class AppServer:
    """The instance under test and the database it shares with the test."""

    instance: Instance
    database: Database

    @property
    def url(self) -> str:
        return self.instance.url

    async def restart(self) -> None:
        """Kill the process and start it again on the same port (clients reconnect)."""
        await self.instance.restart()


@dataclass(frozen=True)
class WebAccount:
    name: str
    email: str
    password: str = PASSWORD


@dataclass
class PageProblems:
    """What went wrong in one page: each entry fails the test."""

    origin: URL
    allowed: list[re.Pattern[str]]
    foreign: list[str]
    problems: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        source = message.location.get("url", "") if message.location else ""
        if _API_ANSWER.match(message.text) and URL(source).path.startswith("/api/v1/"):
            return
        if any(pattern.search(message.text) for pattern in self.allowed):
            return
        self.problems.append(f"console: {message.text} ({source})")

    def page_error(self, error: Any) -> None:
        self.problems.append(f"uncaught: {error}")

    def request(self, request: Request) -> None:
        url = URL(request.url)
        if url.scheme in ("data", "blob", "about"):
            return
        if url.origin() != self.origin and str(url.origin()) not in self.foreign:
            self.problems.append(f"request to another origin: {request.url}")

    def response(self, response: Response) -> None:
        if response.status >= 400 and not URL(response.url).path.startswith("/api/v1/"):
            self.problems.append(f"{response.status} for {response.url}")


@pytest.fixture
def app_env() -> dict[str, str]:
    """Settings of the instance under test beyond the suite's; a module may override it."""
    return {}


@pytest.fixture
async def app_server(
    database: Database,
    redis: Redis,
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    app_env: dict[str, str],
) -> AsyncIterator[AppServer]:
    async with launched(database_url, redis_url, tmp_path / "instances") as factory:
        group = await factory(1, AI_PROVIDER="offline", AI_OFFLINE_DELAY="0.05", **app_env)
        yield AppServer(group[0], database)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


NewPage = Callable[..., Awaitable[Page]]


@pytest.fixture
def allowed_console() -> list[re.Pattern[str]]:
    """Console errors a test expects (say, refused connections while the server restarts)."""
    return []


@pytest.fixture
def foreign_origins() -> list[str]:
    """Origins a test expects the browser to go to (say, a payment page); none by default."""
    return []


@pytest.fixture
async def new_page(
    browser: Browser,
    app_server: AppServer,
    allowed_console: list[re.Pattern[str]],
    foreign_origins: list[str],
) -> AsyncIterator[NewPage]:
    watched: list[PageProblems] = []

    async def make(**context_options: Any) -> Page:
        context = await browser.new_context(base_url=app_server.url, **context_options)
        page = await context.new_page()
        problems = PageProblems(URL(app_server.url).origin(), allowed_console, foreign_origins)
        page.on("console", problems.console)
        page.on("pageerror", problems.page_error)
        page.on("request", problems.request)
        page.on("response", problems.response)
        watched.append(problems)
        return page

    yield make
    found = [problem for problems in watched for problem in problems.problems]
    assert found == [], "\n".join(found)


SignedUp = Callable[[Page, str], Awaitable[WebAccount]]


@pytest.fixture
def signed_up() -> SignedUp:
    async def sign_up(page: Page, name: str) -> WebAccount:
        unique = f"{next(_names)}-{uuid.uuid4().hex[:8]}"
        account = WebAccount(name, f"{name.lower()}-{unique}@example.com")
        await page.goto("/#/signup")
        await page.get_by_label("Name", exact=True).fill(account.name)
        await page.get_by_label("Email", exact=True).fill(account.email)
        await page.get_by_label("Password", exact=True).fill(account.password)
        await page.get_by_role("button", name="Sign up").click()
        await expect(page).to_have_url(ROOMS_URL)
        return account

    return sign_up


@pytest.fixture
def screenshots_dir() -> Path:
    path = Path(os.environ.get("SCREENSHOTS_DIR", "var/screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path
