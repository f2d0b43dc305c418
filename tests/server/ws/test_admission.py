"""Admission control: a saturated instance refuses new upgrades at once with 503 and a
jittered Retry-After, counts the refusal, and leaves open connections alone."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiohttp
import pytest

from server.admission import Admission, AdmissionLimits, RefusalCause
from server.config import ConfigError, load_settings
from server.ws import ADMISSION_KEY
from tests.accounts import signup
from tests.server.test_metrics_ws import metric
from tests.server.ws.helpers import connect, join, receive, shared_room


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def refused_upgrade(client: Any, **kwargs: Any) -> aiohttp.WSServerHandshakeError:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", **kwargs)
    return refused.value


async def answers_503_unavailable(client: Any) -> int:
    """A plain GET of /ws shows the refusal's body; its Retry-After, in seconds."""
    response = await client.get("/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket"})
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "unavailable"
    return int(response.headers["Retry-After"])


async def ack_and_message(ws: aiohttp.ClientWebSocketResponse) -> str:
    """Read a send's `ack` and its `message` (in either order); the message's body."""
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < 2:
        frame = await receive(ws)
        if frame["type"] in ("ack", "message"):
            seen[frame["type"]] = frame
    assert seen["ack"]["seq"] == seen["message"]["seq"]
    return str(seen["message"]["body"])


def test_admission_settings_are_read_and_checked(tmp_path) -> None:
    defaults = load_settings({"VAR_DIR": str(tmp_path)})
    assert (defaults.ws_max_handshakes, defaults.ws_max_connections) == (2000, 0)
    given = load_settings(
        {
            "VAR_DIR": str(tmp_path),
            "WS_MAX_HANDSHAKES": "50",
            "WS_MAX_LOOP_LAG": "0.25",
            "WS_MAX_CONNECTIONS": "10000",
            "WS_RETRY_AFTER": "5",
        }
    )
    assert given.ws_max_handshakes == 50
    assert given.ws_max_loop_lag == 0.25
    assert given.ws_max_connections == 10000
    assert given.ws_retry_after == 5
    for name in ("WS_MAX_HANDSHAKES", "WS_RETRY_AFTER"):
        with pytest.raises(ConfigError, match=f"{name} must be at least 1, got 0"):
            load_settings({"VAR_DIR": str(tmp_path), name: "0"})


def test_too_many_handshakes_in_progress_is_saturation() -> None:
    admission = Admission(AdmissionLimits(max_handshakes=2), lambda: 0)
    with admission.handshake():
        assert admission.refusal() is None
        with admission.handshake():
            assert admission.refusal() is RefusalCause.SATURATED
    assert admission.handshakes == 0
    assert admission.refusal() is None


def test_a_capped_instance_is_full_counting_handshakes_as_connections() -> None:
    open_connections = 1
    admission = Admission(AdmissionLimits(max_connections=2), lambda: open_connections)
    assert admission.refusal() is None
    with admission.handshake():
        assert admission.refusal() is RefusalCause.FULL
    open_connections = 0
    with admission.handshake():
        assert admission.refusal() is None


def test_no_connection_cap_by_default() -> None:
    admission = Admission(AdmissionLimits(), lambda: 1_000_000)
    assert admission.refusal() is None


async def test_an_event_loop_running_late_is_saturation_before_its_timer_fires() -> None:
    clock = Clock()
    admission = Admission(AdmissionLimits(max_loop_lag=0.5), lambda: 0, clock=clock)
    watch = asyncio.create_task(admission.watch_lag())
    try:
        await asyncio.sleep(0)  # the watch arms its timer
        assert admission.refusal() is None
        clock.now += 0.1 + 0.4  # the timer is due, 0.4 s late: within the limit
        assert admission.refusal() is None
        clock.now += 0.2  # a loop stuck this long is saturated, timer or not
        assert admission.current_lag() == pytest.approx(0.6)
        assert admission.refusal() is RefusalCause.SATURATED
    finally:
        watch.cancel()


async def test_the_measured_lag_stays_until_the_next_measurement() -> None:
    clock = Clock()
    admission = Admission(AdmissionLimits(max_loop_lag=0.5), lambda: 0, clock=clock)
    admission.lag = 0.8  # what the last timer measured
    assert admission.refusal() is RefusalCause.SATURATED
    assert Admission(AdmissionLimits(max_loop_lag=0), lambda: 0).refusal() is None


def test_refusals_are_logged_at_most_every_ten_seconds(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    admission = Admission(AdmissionLimits(max_handshakes=1), lambda: 7, clock=clock)
    with caplog.at_level("WARNING", logger="server.admission"), admission.handshake():
        for _ in range(100):
            admission.refused(RefusalCause.SATURATED)
        clock.now += 10
        admission.refused(RefusalCause.SATURATED)
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert "(saturated): 1 handshakes in progress" in lines[0]
    assert "7 connections open" in lines[0]


def test_retry_after_is_jittered_between_the_base_and_three_times_it() -> None:
    admission = Admission(AdmissionLimits(retry_after=2), lambda: 0, rng=random.Random(7))
    waits = {admission.retry_after() for _ in range(200)}
    assert waits == {2, 3, 4, 5, 6}


async def test_a_saturated_instance_refuses_upgrades_and_keeps_open_connections(
    make_client, database
) -> None:
    client = await make_client(ws_max_handshakes=1)
    setup = await shared_room(client, database)
    alice, bob = setup.accounts
    open_ws = await connect(client, alice)
    await join(open_ws, setup.room_id)
    pending = await client.ws_connect("/ws")  # upgraded, never authenticated: in progress

    refused = await refused_upgrade(client, headers=bob.headers)
    assert refused.status == 503
    assert 2 <= int(refused.headers["Retry-After"]) <= 6
    assert 2 <= await answers_503_unavailable(client) <= 6

    await open_ws.send_json({"type": "send", "room": setup.room_id, "body": "still here"})
    assert await ack_and_message(open_ws) == "still here"
    text = await (await client.get("/metrics")).text()
    assert metric(text, "roomcast_ws_refusals_total", cause="saturated") == 2
    assert metric(text, "roomcast_ws_handshakes") == 1
    assert metric(text, "roomcast_ws_connections") == 1

    await pending.send_json({"type": "auth", "token": bob.access_token, "id": 1})
    assert (await receive(pending, "ready"))["re"] == 1
    again = await connect(client, bob)  # nothing in progress: admitted again
    for ws in (open_ws, pending, again):
        await ws.close()


async def test_a_burst_below_the_handshake_limit_is_admitted(make_client) -> None:
    client = await make_client(ws_max_handshakes=40)
    accounts = [await signup(client) for _ in range(3)]
    # 40 upgrades in progress at once, none authenticated yet: all admitted.
    sockets = await asyncio.gather(*[client.ws_connect("/ws") for _ in range(40)])
    refused = await refused_upgrade(client)  # the 41st
    assert refused.status == 503
    for i, ws in enumerate(sockets):
        await ws.send_json({"type": "auth", "token": accounts[i % 3].access_token, "id": i})
    for i, ws in enumerate(sockets):
        assert (await receive(ws, "ready"))["re"] == i
    text = await (await client.get("/metrics")).text()
    assert metric(text, "roomcast_ws_connects_total") == 40
    assert metric(text, "roomcast_ws_refusals_total", cause="saturated") == 1
    assert metric(text, "roomcast_ws_connections") == 40
    for ws in sockets:
        await ws.close()


async def test_a_burst_of_healthy_clients_is_not_refused_by_default(client) -> None:
    # 50 at once: the test client holds at most 100 connections, /metrics included.
    accounts = [await signup(client) for _ in range(5)]
    sockets = await asyncio.gather(*[connect(client, accounts[i % 5]) for i in range(50)])
    text = await (await client.get("/metrics")).text()
    assert metric(text, "roomcast_ws_connects_total") == 50
    assert (
        sum(metric(text, "roomcast_ws_refusals_total", cause=cause) for cause in RefusalCause) == 0
    )
    assert client.app[ADMISSION_KEY].handshakes == 0
    for ws in sockets:
        await ws.close()


async def test_an_instance_at_its_connection_cap_refuses_until_one_leaves(make_client) -> None:
    client = await make_client(ws_max_connections=1)
    alice = await signup(client)
    first = await connect(client, alice)
    refused = await refused_upgrade(client, headers=alice.headers)
    assert refused.status == 503
    text = await (await client.get("/metrics")).text()
    assert metric(text, "roomcast_ws_refusals_total", cause="full") == 1

    await first.close()
    async with asyncio.timeout(10):  # the server notices the close on its own loop
        while client.app[ADMISSION_KEY].refusal() is not None:
            await asyncio.sleep(0.02)
    second = await connect(client, alice)
    await second.close()
