"""Two real instances behind a real nginx configured as deploy/nginx.conf ships.

Clients bind distinct loopback source addresses (127.0.0.2, 127.0.0.3, ...), so nginx sees
really different peers; nginx itself reaches the instances from 127.0.0.1, the trusted
proxy. 127.0.0.4 stands for a further proxy in front of nginx, trusted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest

from tests.accounts import signup
from tests.instances import Instance, InstanceClient, InstancesFactory
from tests.server.ws.helpers import receive
from tests.services import NginxServer

LIMIT = 2
FORGOT = "/api/v1/auth/password/forgot"
FURTHER_PROXY = "127.0.0.4"


@dataclass
class Deployment:
    nginx: NginxServer
    instances: list[Instance]


@pytest.fixture
async def deployment(instances: InstancesFactory) -> AsyncIterator[Deployment]:
    group = await instances(
        2,
        TRUSTED_PROXIES=f"127.0.0.1, {FURTHER_PROXY}",
        AUTH_RATE_LIMIT=LIMIT,
        LOG_FORMAT="json",
    )
    nginx = NginxServer([f"127.0.0.1:{instance.port}" for instance in group])
    nginx.start()
    try:
        yield Deployment(nginx, list(group))
    finally:
        nginx.destroy()


@contextlib.asynccontextmanager
async def client_at(base_url: str, source: str) -> AsyncIterator[InstanceClient]:
    """A client on `base_url` whose connections leave from `source`, a loopback address."""
    client = InstanceClient(base_url, source=source)
    try:
        yield client
    finally:
        await client.close()


async def forgot(client: InstanceClient, **headers: str) -> int:
    answer = await client.post(FORGOT, json={"email": "x@example.com"}, headers=headers)
    return answer.status


def access_entries(instances: list[Instance]) -> Iterator[dict[str, object]]:
    for instance in instances:
        for line in instance.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("logger") == "aiohttp.access":
                    yield entry


async def access_entry(instances: list[Instance], request_id: str) -> dict[str, object]:
    """The access line of the request `request_id`, once an instance has written it."""
    while True:
        for entry in access_entries(instances):
            if entry.get("request_id") == request_id:
                return entry
        await asyncio.sleep(0.05)  # written after the answer is sent; the test timeout bounds it


async def test_through_nginx_each_client_address_has_its_own_auth_rate_limit(
    deployment: Deployment,
) -> None:
    url = deployment.nginx.url
    async with client_at(url, "127.0.0.2") as first, client_at(url, "127.0.0.3") as second:
        assert [await forgot(first) for _ in range(LIMIT + 1)] == [202] * LIMIT + [429]
        assert await forgot(second) == 202


async def test_through_nginx_a_client_cannot_spoof_its_address_with_its_own_x_forwarded_for(
    deployment: Deployment,
) -> None:
    async with client_at(deployment.nginx.url, "127.0.0.2") as client:
        statuses = [
            await forgot(client, **{"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(LIMIT + 1)
        ]
    assert statuses == [202] * LIMIT + [429]


async def test_clients_behind_a_further_trusted_proxy_are_told_apart_by_its_x_forwarded_for(
    deployment: Deployment,
) -> None:
    async with client_at(deployment.nginx.url, FURTHER_PROXY) as further_proxy:
        first = {"X-Forwarded-For": "203.0.113.1"}
        assert [await forgot(further_proxy, **first) for _ in range(LIMIT + 1)] == [202] * LIMIT + [
            429
        ]
        assert await forgot(further_proxy, **{"X-Forwarded-For": "203.0.113.2"}) == 202


async def test_a_browser_page_at_the_nginx_address_may_open_the_websocket_through_it(
    deployment: Deployment,
) -> None:
    nginx = deployment.nginx
    async with client_at(nginx.url, "127.0.0.2") as browser:
        account = await signup(browser)
        ws = await browser.ws_connect(
            "/ws", headers={**account.headers, "Origin": f"http://127.0.0.1:{nginx.port}"}
        )
        assert (await receive(ws))["type"] == "ready"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await browser.ws_connect(
                "/ws", headers={**account.headers, "Origin": "http://evil.example"}
            )
        assert refused.value.status == 403


async def test_the_access_log_shows_the_client_address_behind_nginx(
    deployment: Deployment,
) -> None:
    request_id = f"behind-nginx-{uuid.uuid4().hex[:12]}"
    async with client_at(deployment.nginx.url, "127.0.0.3") as client:
        answer = await client.get("/health", headers={"X-Request-ID": request_id})
        assert answer.status == 200
    entry = await access_entry(deployment.instances, request_id)
    assert entry["remote"] == "127.0.0.3"


async def test_a_client_connecting_to_an_instance_directly_cannot_spoof_its_address(
    deployment: Deployment,
) -> None:
    request_id = f"direct-{uuid.uuid4().hex[:12]}"
    async with client_at(deployment.instances[0].url, "127.0.0.2") as client:
        statuses = [
            await forgot(client, **{"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(LIMIT + 1)
        ]
        answer = await client.get(
            "/health", headers={"X-Request-ID": request_id, "X-Forwarded-For": "203.0.113.9"}
        )
        assert answer.status == 200
    assert statuses == [202] * LIMIT + [429]
    assert (await access_entry(deployment.instances, request_id))["remote"] == "127.0.0.2"
