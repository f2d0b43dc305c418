"""Behind a trusted proxy, rate limits and the Origin check see the client, not the proxy.

The test client connects from 127.0.0.1, so `trusted_proxies=LOOPBACK` makes it a proxy
whose forwarding headers count, and the default (trust nobody) makes it a direct client
whose forwarding headers are ignored. The address a request was counted under is read
back from its rate-limit key in Redis.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import aiohttp
import pytest
from redis.asyncio import Redis

from server.forwarded import client_index, parse_address
from tests.server.ws.helpers import receive, shared_room

LOOPBACK = (ip_network("127.0.0.1/32"),)
FORGOT = "/api/v1/auth/password/forgot"


async def forgot(client, **headers: str) -> int:
    """One rate-limited request (always 202 below the limit); its status."""
    answer = await client.post(FORGOT, json={"email": "x@example.com"}, headers=headers)
    return answer.status


async def counted_addresses(redis: Redis) -> set[str]:
    """The client addresses the forgot-password limit has counted requests under."""
    keys = [key.decode() async for key in redis.scan_iter(match="*rl:auth:password-forgot:*")]
    return {key.split("rl:auth:password-forgot:", 1)[1] for key in keys}


async def test_a_direct_client_cannot_spoof_its_address_with_x_forwarded_for(
    make_client, redis: Redis
) -> None:
    client = await make_client(auth_rate_limit=2)
    assert await forgot(client, **{"X-Forwarded-For": "203.0.113.1"}) == 202
    assert await forgot(client, **{"X-Forwarded-For": "203.0.113.2"}) == 202
    assert await forgot(client, **{"X-Forwarded-For": "203.0.113.3"}) == 429
    assert await counted_addresses(redis) == {"127.0.0.1"}


async def test_forwarding_headers_of_an_untrusted_peer_are_all_ignored(
    make_client, redis: Redis
) -> None:
    client = await make_client(proxy_headers="forwarded")
    assert await forgot(client, Forwarded="for=203.0.113.1") == 202
    assert await counted_addresses(redis) == {"127.0.0.1"}


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_rate_limit(
    make_client, redis: Redis
) -> None:
    client = await make_client(auth_rate_limit=2, trusted_proxies=LOOPBACK)
    first = {"X-Forwarded-For": "203.0.113.1"}
    assert [await forgot(client, **first) for _ in range(3)] == [202, 202, 429]
    assert await forgot(client, **{"X-Forwarded-For": "203.0.113.2"}) == 202
    assert await counted_addresses(redis) == {"203.0.113.1", "203.0.113.2"}


async def test_a_client_behind_a_trusted_proxy_cannot_spoof_by_sending_its_own_header(
    make_client, redis: Redis
) -> None:
    # What nginx forwards when the client sent `X-Forwarded-For: 6.6.6.6` itself.
    client = await make_client(trusted_proxies=LOOPBACK)
    assert await forgot(client, **{"X-Forwarded-For": "6.6.6.6, 203.0.113.1"}) == 202
    assert await counted_addresses(redis) == {"203.0.113.1"}


async def test_rfc_7239_forwarded_is_read_when_proxy_headers_is_forwarded(
    make_client, redis: Redis
) -> None:
    client = await make_client(trusted_proxies=LOOPBACK, proxy_headers="forwarded")
    forwarded = 'for=6.6.6.6, for="[2001:db8::7]:4711";proto=https'
    assert await forgot(client, Forwarded=forwarded, **{"X-Forwarded-For": "6.6.6.6"}) == 202
    assert await counted_addresses(redis) == {"2001:db8::7"}


async def test_with_x_forwarded_headers_a_forwarded_header_is_ignored(
    make_client, redis: Redis
) -> None:
    # A proxy that only appends X-Forwarded-For passes a client's own Forwarded through.
    client = await make_client(trusted_proxies=LOOPBACK)
    headers = {"Forwarded": "for=6.6.6.6", "X-Forwarded-For": "203.0.113.1"}
    assert await forgot(client, **headers) == 202
    assert await counted_addresses(redis) == {"203.0.113.1"}


TRUSTED = (ip_network("10.0.0.0/8"), ip_network("127.0.0.1/32"))


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        ("", "127.0.0.1"),
        ("203.0.113.7", "203.0.113.7"),
        ("6.6.6.6, 203.0.113.7", "203.0.113.7"),
        ("203.0.113.7, 10.1.2.3", "203.0.113.7"),
        ("10.0.0.5, 10.1.2.3", "10.0.0.5"),
        ("not-an-address, 203.0.113.7", "203.0.113.7"),
        ("203.0.113.7, unknown, 10.1.2.3", "10.1.2.3"),
        ("203.0.113.7:4711", "203.0.113.7"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_the_client_is_the_right_most_address_that_is_not_a_trusted_proxy(
    forwarded_for: str, client: str
) -> None:
    chain = [parse_address(entry) for entry in forwarded_for.split(",") if entry.strip()]
    chain.append(ip_address("127.0.0.1"))
    found = chain[client_index(chain, TRUSTED)]
    assert str(found) == client


async def test_the_origin_check_uses_the_scheme_and_host_a_trusted_proxy_forwards(
    make_client, database
) -> None:
    client = await make_client(trusted_proxies=LOOPBACK)
    account = (await shared_room(client, database, 1)).accounts[0]
    headers = {
        **account.headers,
        "Origin": "https://chat.example.com",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "chat.example.com",
    }
    ws = await client.ws_connect("/ws", headers=headers)
    assert (await receive(ws))["type"] == "ready"
    await ws.close()


async def test_forwarded_scheme_and_host_from_an_untrusted_peer_do_not_pass_the_origin_check(
    client, database
) -> None:
    account = (await shared_room(client, database, 1)).accounts[0]
    headers = {
        **account.headers,
        "Origin": "https://chat.example.com",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "chat.example.com",
        "Forwarded": "proto=https;host=chat.example.com",
    }
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", headers=headers)
    assert refused.value.status == 403


async def test_a_page_at_the_public_url_may_open_the_websocket(make_client, database) -> None:
    client = await make_client(public_url="https://chat.example.com")
    account = (await shared_room(client, database, 1)).accounts[0]
    ws = await client.ws_connect(
        "/ws", headers={**account.headers, "Origin": "https://chat.example.com"}
    )
    assert (await receive(ws))["type"] == "ready"
    await ws.close()


async def test_a_page_of_the_same_host_under_another_scheme_is_refused(client, database) -> None:
    account = (await shared_room(client, database, 1)).accounts[0]
    origin = f"https://{client.host}:{client.port}"  # the server was reached over http
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", headers={**account.headers, "Origin": origin})
    assert refused.value.status == 403


async def test_the_same_origin_matches_with_the_default_port_written_out(client, database) -> None:
    account = (await shared_room(client, database, 1)).accounts[0]
    headers = {"Host": "chat.example.com", "Origin": "http://chat.example.com:80"}
    ws = await client.ws_connect("/ws", headers={**account.headers, **headers})
    assert (await receive(ws))["type"] == "ready"
    await ws.close()


@pytest.mark.parametrize("origin", ["null", "http://[::1", "http://chat.example.com:port", "x"])
async def test_a_malformed_origin_is_refused_with_403(client, database, origin: str) -> None:
    account = (await shared_room(client, database, 1)).accounts[0]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", headers={**account.headers, "Origin": origin})
    assert refused.value.status == 403
