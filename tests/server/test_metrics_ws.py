"""The websocket metrics on /metrics follow a connection from upgrade to close, and the
process collector's CPU and memory are served from the same registry."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.server.ws.helpers import closed_with, connect, join, receive, shared_room


def metric(text: str, name: str, **labels: str) -> float:
    """The value of sample `name` with exactly `labels` in Prometheus text; 0 if absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


async def scrape(client: Any) -> str:
    response = await client.get("/metrics")
    assert response.status == 200
    return await response.text()


async def test_a_connection_is_counted_timed_and_gone_after_it_closes(client, database) -> None:
    setup = await shared_room(client, database, 1)
    before = await scrape(client)
    assert metric(before, "roomcast_ws_connections") == 0
    assert metric(before, "roomcast_ws_connects_total") == 0

    ws = await connect(client, setup.accounts[0])
    await join(ws, setup.room_id)
    text = await scrape(client)
    assert metric(text, "roomcast_ws_connections") == 1
    assert metric(text, "roomcast_ws_connects_total") == 1
    assert metric(text, "roomcast_ws_auth_duration_seconds_count") == 1
    assert metric(text, "roomcast_ws_auth_duration_seconds_sum") > 0
    assert metric(text, "roomcast_ws_join_duration_seconds_count") == 1
    assert metric(text, "roomcast_ws_joins_since_total") == 0

    await ws.send_json({"type": "leave", "room": setup.room_id, "id": 2})
    await receive(ws, "left")
    await join(ws, setup.room_id, since=0, id=3)  # a resume after a reconnect
    text = await scrape(client)
    assert metric(text, "roomcast_ws_join_duration_seconds_count") == 2
    assert metric(text, "roomcast_ws_joins_since_total") == 1

    await ws.close()
    async with asyncio.timeout(10):  # the server ends the connection on its own loop
        while metric(await scrape(client), "roomcast_ws_connections") != 0:
            await asyncio.sleep(0.02)
    assert metric(await scrape(client), "roomcast_ws_connects_total") == 1


async def test_a_failed_join_is_not_timed_and_the_next_join_is(client, database) -> None:
    setup = await shared_room(client, database, 1)
    other = await shared_room(client, database, 1)
    ws = await connect(client, setup.accounts[0])
    await ws.send_json({"type": "join", "room": other.room_id, "id": "theirs"})
    assert (await receive(ws, "error"))["re"] == "theirs"
    assert metric(await scrape(client), "roomcast_ws_join_duration_seconds_count") == 0
    # Two joins at once, the first of them failing: only the second is timed.
    await ws.send_json({"type": "join", "room": other.room_id, "id": 1})
    await ws.send_json({"type": "join", "room": setup.room_id, "id": 2})
    assert (await receive(ws, "joined"))["re"] == 2
    assert metric(await scrape(client), "roomcast_ws_join_duration_seconds_count") == 1
    await ws.close()


async def test_refusals_are_counted_by_cause(client, database) -> None:
    setup = await shared_room(client, database, 1)
    bad_origin = await client.get(
        "/ws", headers={"Origin": "https://elsewhere.example", "Upgrade": "websocket"}
    )
    assert bad_origin.status == 403
    bad_token = await client.get("/ws", headers={"Authorization": "Bearer nonsense"})
    assert bad_token.status == 401
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "ping"})  # not an auth frame
    assert await closed_with(ws) == 4401
    ok = await connect(client, setup.accounts[0])

    text = await scrape(client)
    assert metric(text, "roomcast_ws_refusals_total", cause="origin") == 1
    assert metric(text, "roomcast_ws_refusals_total", cause="auth") == 2
    assert metric(text, "roomcast_ws_refusals_total", cause="saturated") == 0
    assert metric(text, "roomcast_ws_connects_total") == 1
    await ok.close()


async def test_process_cpu_and_memory_are_served_from_the_app_registry(client) -> None:
    text = await scrape(client)
    assert metric(text, "process_cpu_seconds_total") > 0
    assert metric(text, "process_resident_memory_bytes") > 1024 * 1024
    assert metric(text, "process_open_fds") > 0
    assert metric(text, "roomcast_event_loop_lag_seconds") >= 0
