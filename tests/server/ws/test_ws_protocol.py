"""docs/protocol.md's WebSocket section, frame by frame and close code by close code."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from server import ws as ws_module
from tests.server.ws.helpers import closed_with, connect, join, receive, shared_room


async def test_header_auth_answers_ready_with_user_session_and_heartbeat(client, database):
    setup = await shared_room(client, database, 1)
    account = setup.accounts[0]
    ws = await client.ws_connect("/ws", headers=account.headers)
    ready = await receive(ws)
    assert ready["type"] == "ready"
    assert ready["user"] == {"id": account.id, "name": account.name}
    assert isinstance(ready["session"], str) and ready["session"]
    assert ready["heartbeat"] == 25
    await ws.close()


async def test_first_frame_auth_answers_ready_with_the_request_id(client, database):
    account = (await shared_room(client, database, 1)).accounts[0]
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "auth", "token": account.access_token, "id": 7})
    ready = await receive(ws, "ready")
    assert ready["re"] == 7 and ready["user"]["id"] == account.id
    await ws.close()


async def test_every_ready_has_the_same_shape_after_auth_and_after_re_auth(make_client, database):
    client = await make_client(ws_heartbeat=7.5)
    account = (await shared_room(client, database, 1)).accounts[0]
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "auth", "token": account.access_token, "id": 1})
    first = await receive(ws, "ready")
    await ws.send_json({"type": "auth", "token": account.access_token, "id": 2})
    again = await receive(ws, "ready")
    assert first.keys() == again.keys() == {"type", "user", "session", "heartbeat", "re"}
    assert {**first, "re": 2} == again
    assert again["heartbeat"] == 7.5
    await ws.close()


async def test_a_re_auth_without_an_id_answers_the_same_ready_as_header_auth(client, database):
    account = (await shared_room(client, database, 1)).accounts[0]
    ws = await client.ws_connect("/ws", headers=account.headers)
    first = await receive(ws, "ready")
    await ws.send_json({"type": "auth", "token": account.access_token})
    again = await receive(ws, "ready")
    assert first.keys() == again.keys() == {"type", "user", "session", "heartbeat"}
    assert first == again
    await ws.close()


async def test_bad_header_token_refuses_the_upgrade_with_401(client):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws", headers={"Authorization": "Bearer garbage"})
    assert refused.value.status == 401


async def test_foreign_origin_refuses_the_upgrade_with_403(client, database):
    account = (await shared_room(client, database, 1)).accounts[0]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(
            "/ws", headers={**account.headers, "Origin": "https://evil.example"}
        )
    assert refused.value.status == 403


async def test_allowed_origin_is_accepted(make_client, database):
    client = await make_client(allowed_origins=("https://chat.example",))
    account = (await shared_room(client, database, 1)).accounts[0]
    ws = await client.ws_connect(
        "/ws", headers={**account.headers, "Origin": "https://chat.example"}
    )
    assert (await receive(ws))["type"] == "ready"
    await ws.close()


@pytest.mark.parametrize(
    "first_frame",
    [
        {"type": "auth", "token": "not-a-jwt"},
        {"type": "join", "room": "r"},
        {"type": "auth"},
        "plain text",
    ],
)
async def test_bad_first_frame_closes_with_4401(client, first_frame):
    ws = await client.ws_connect("/ws")
    if isinstance(first_frame, str):
        await ws.send_str(first_frame)
    else:
        await ws.send_json(first_frame)
    assert await closed_with(ws) == 4401


async def test_no_auth_within_the_deadline_closes_with_4408(client, monkeypatch):
    monkeypatch.setattr(ws_module, "AUTH_DEADLINE", 0.2)
    ws = await client.ws_connect("/ws")
    assert await closed_with(ws) == 4408


async def test_ping_gets_pong_echoing_the_id(client, database):
    ws = await connect(client, (await shared_room(client, database, 1)).accounts[0])
    await ws.send_json({"type": "ping", "id": "p-1"})
    assert await receive(ws) == {"type": "pong", "re": "p-1"}
    await ws.close()


async def test_join_send_ack_and_message_reach_every_member_sender_included(client, database):
    setup = await shared_room(client, database, 2)
    alice = await connect(client, setup.accounts[0])
    bob = await connect(client, setup.accounts[1])
    joined = await join(alice, setup.room_id, id=1)
    assert joined["re"] == 1 and joined["seq"] == 0 and joined["room"] == setup.room_id
    assert {"id": setup.accounts[0].id, "name": setup.accounts[0].name} in joined["members"]
    await join(bob, setup.room_id)

    await alice.send_json(
        {"type": "send", "room": setup.room_id, "body": "hi", "client_id": "c-1", "id": "s1"}
    )
    # The ack and the sender's own message event may come in either order.
    by_type: dict = {}
    while not {"ack", "message"} <= by_type.keys():
        frame = await receive(alice)
        by_type.setdefault(frame["type"], frame)
    assert by_type["ack"] == {
        "type": "ack",
        "re": "s1",
        "room": setup.room_id,
        "seq": 1,
        "client_id": "c-1",
    }
    for message in (by_type["message"], await receive(bob, "message")):
        assert message["seq"] == 1 and message["body"] == "hi" and message["client_id"] == "c-1"
        assert message["author"] == {
            "id": setup.accounts[0].id,
            "name": setup.accounts[0].name,
            "kind": "user",
        }
        assert message["ts"].endswith("Z")
    await alice.close()
    await bob.close()


async def test_presence_and_typing_go_to_the_others(client, database):
    setup = await shared_room(client, database, 2)
    alice = await connect(client, setup.accounts[0])
    bob = await connect(client, setup.accounts[1])
    await join(alice, setup.room_id)
    await join(bob, setup.room_id)
    online = await receive(alice, "presence")
    assert online["user"]["id"] in {setup.accounts[0].id, setup.accounts[1].id}
    await bob.send_json({"type": "typing", "room": setup.room_id})
    typing = await receive(alice, "typing")
    assert typing["user"]["id"] == setup.accounts[1].id
    await bob.close()
    offline = await receive(alice, "presence")
    while offline["state"] != "offline":
        offline = await receive(alice, "presence")
    assert offline["user"]["id"] == setup.accounts[1].id
    await alice.close()


async def test_leave_answers_left_and_stops_events(client, database):
    setup = await shared_room(client, database, 2)
    alice = await connect(client, setup.accounts[0])
    bob = await connect(client, setup.accounts[1])
    await join(alice, setup.room_id)
    await join(bob, setup.room_id)
    await bob.send_json({"type": "leave", "room": setup.room_id, "id": 3})
    assert await receive(bob, "left") == {"type": "left", "room": setup.room_id, "re": 3}
    await alice.send_json({"type": "send", "room": setup.room_id, "body": "after"})
    await receive(alice, "message")
    await bob.send_json({"type": "ping"})
    assert (await receive(bob, "pong"))["type"] == "pong", "no message arrived before the pong"
    await alice.close()
    await bob.close()


async def test_rooms_of_other_teams_are_not_found_and_sending_needs_a_join(client, database):
    ours = await shared_room(client, database, 1)
    theirs = await shared_room(client, database, 1)
    ws = await connect(client, ours.accounts[0])
    await ws.send_json({"type": "join", "room": theirs.room_id, "id": 1})
    error = await receive(ws, "error")
    assert error["code"] == "not_found" and error["re"] == 1
    await ws.send_json({"type": "send", "room": ours.room_id, "body": "x", "id": 2})
    error = await receive(ws, "error")
    assert error["code"] == "forbidden" and error["re"] == 2
    await ws.send_json({"type": "join", "room": "no-such-room", "id": 3})
    assert (await receive(ws, "error"))["code"] == "not_found"
    await ws.close()


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "teleport"},
        {"type": 5},
        {"type": "join"},
        {"type": "join", "room": 12},
        {"type": "join", "room": "r", "since": -1},
        {"type": "join", "room": "r", "since": "3"},
        {"type": "send", "room": "r"},
        {"type": "send", "room": "r", "body": ""},
        {"type": "send", "room": "r", "body": "x" * 4001},
        {"type": "send", "room": "r", "body": "a\u0000b"},
        {"type": "send", "room": "r", "body": "x", "client_id": 5},
        {"type": "send", "room": "r", "body": "x", "ai": "yes"},
        {"type": "cancel", "room": "r"},
        {"type": "auth", "token": 1},
        {"type": "leave", "room": "'; DROP TABLE messages; --" * 10},
    ],
)
async def test_malformed_frames_get_invalid_and_the_connection_stays(client, database, frame):
    ws = await connect(client, (await shared_room(client, database, 1)).accounts[0])
    await ws.send_json({**frame, "id": "bad"})
    error = await receive(ws, "error")
    assert error["code"] == "invalid" and error["re"] == "bad"
    await ws.send_json({"type": "ping"})
    assert (await receive(ws))["type"] == "pong"
    await ws.close()


@pytest.mark.parametrize(
    ("raw", "code"),
    [("not json", 4400), ("[1, 2]", 4400), ('"text"', 4400), ('{"no": "type"}', 4400)],
)
async def test_protocol_violations_close_with_4400(client, database, raw, code):
    ws = await connect(client, (await shared_room(client, database, 1)).accounts[0])
    await ws.send_str(raw)
    assert await closed_with(ws) == code


async def test_binary_frame_closes_with_1003(client, database):
    ws = await connect(client, (await shared_room(client, database, 1)).accounts[0])
    await ws.send_bytes(b'{"type": "ping"}')
    assert await closed_with(ws) == 1003


def ping_of(size: int) -> str:
    """A ping frame of exactly `size` bytes of UTF-8 (its padding is two-byte characters)."""
    head, tail = '{"type": "ping", "id": "big", "pad": "', '"}'
    pad = size - len(head) - len(tail)
    text = head + "é" * (pad // 2) + "x" * (pad % 2) + tail
    assert len(text.encode()) == size
    return text


async def test_a_frame_of_exactly_64_kib_is_accepted(client, database):
    ws = await connect(client, (await shared_room(client, database, 1)).accounts[0])
    await ws.send_str(ping_of(64 * 1024))
    assert await receive(ws) == {"type": "pong", "re": "big"}
    await ws.close()


async def test_a_frame_one_byte_over_64_kib_closes_with_1009(client, database):
    ws = await connect(client, (await shared_room(client, database, 1)).accounts[0])
    await ws.send_str(ping_of(64 * 1024 + 1))
    assert await closed_with(ws) == 1009


async def test_a_first_auth_frame_of_exactly_64_kib_is_accepted(client, database):
    account = (await shared_room(client, database, 1)).accounts[0]
    ws = await client.ws_connect("/ws")
    head = '{"type": "auth", "id": 1, "token": "' + account.access_token + '", "pad": "'
    await ws.send_str(head + "x" * (64 * 1024 - len(head) - 2) + '"}')
    assert (await receive(ws, "ready"))["user"]["id"] == account.id
    await ws.close()


async def test_too_many_frames_per_second_close_with_4429(make_client, database):
    client = await make_client(ws_frames_per_second=5.0, ws_burst=10.0)
    ws = await connect(client, (await shared_room(client, database, 1)).accounts[0])
    for _ in range(40):
        await ws.send_json({"type": "ping"})
    assert await closed_with(ws) == 4429


async def test_server_keeps_serving_after_hostile_connections(client, database):
    setup = await shared_room(client, database, 1)
    for raw in ("\x00\x01", "{" * 1000, '{"type": "send", "room": null, "body": {}}'):
        ws = await connect(client, setup.accounts[0])
        await ws.send_str(raw)
        await asyncio.wait_for(ws.receive(), 5)
        await ws.close()
    ws = await connect(client, setup.accounts[0])
    await join(ws, setup.room_id)
    await ws.send_json({"type": "send", "room": setup.room_id, "body": "still here"})
    assert (await receive(ws, "ack"))["seq"] == 1
    await ws.close()
    health = await client.get("/health")
    assert health.status == 200


async def test_an_expired_token_closes_the_connection_with_4401_unless_refreshed(
    make_client, database
):
    client = await make_client(access_token_ttl=4, ws_token_grace=0.5)
    account = (await shared_room(client, database, 1)).accounts[0]
    lapsing = await connect(client, account)
    refreshed = await connect(client, account)
    await asyncio.sleep(2.4)  # the fresh token then outlives the first by 2.4 s
    login = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    fresh = (await login.json())["access_token"]
    await refreshed.send_json({"type": "auth", "token": fresh, "id": "again"})
    again = await receive(refreshed, "ready")
    assert again["re"] == "again"
    assert again["user"]["id"] == account.id
    assert await closed_with(lapsing, timeout=8) == 4401
    await refreshed.send_json({"type": "ping"})
    assert (await receive(refreshed))["type"] == "pong"
    await refreshed.close()


async def test_reauth_with_a_bad_token_closes_with_4401(client, database):
    ws = await connect(client, (await shared_room(client, database, 1)).accounts[0])
    await ws.send_json({"type": "auth", "token": "garbage"})
    assert await closed_with(ws) == 4401


async def test_reauth_as_another_user_is_refused_and_the_session_stays(client, database):
    setup = await shared_room(client, database, 2)
    ws = await connect(client, setup.accounts[0])
    await ws.send_json({"type": "auth", "token": setup.accounts[1].access_token, "id": 1})
    error = await receive(ws, "error")
    assert error["code"] == "invalid"
    await ws.send_json({"type": "ping"})
    assert (await receive(ws))["type"] == "pong"
    await ws.close()


async def test_cancel_without_a_running_generation_is_not_found(client, database):
    setup = await shared_room(client, database, 1)
    ws = await connect(client, setup.accounts[0])
    await join(ws, setup.room_id)
    await ws.send_json({"type": "cancel", "room": setup.room_id, "gen": "g-1", "id": "c"})
    error = await receive(ws, "error")
    assert error["code"] == "not_found"
    assert error["re"] == "c"
    await ws.close()


async def test_room_list_shows_the_new_last_seq_right_after_a_send(client, database):
    setup = await shared_room(client, database, 1)
    account = setup.accounts[0]
    listing = await client.get(f"/api/v1/teams/{setup.team_id}/rooms", headers=account.headers)
    assert (await listing.json())["items"][0]["last_seq"] == 0
    ws = await connect(client, account)
    await join(ws, setup.room_id)
    await ws.send_json({"type": "send", "room": setup.room_id, "body": "hello"})
    assert (await receive(ws, "ack"))["seq"] == 1
    listing = await client.get(f"/api/v1/teams/{setup.team_id}/rooms", headers=account.headers)
    assert (await listing.json())["items"][0]["last_seq"] == 1
    await ws.close()
