"""The Python client (clients/python) against real Roomcast servers: restarts, answers, tokens."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import jwt
import pytest
from roomcast_client import (
    AiDelta,
    AiEnd,
    AiStart,
    AuthenticationError,
    Backoff,
    Client,
    Event,
    Left,
    Message,
    PasswordLogin,
    Presence,
    State,
)

from storage import teams
from storage.db import Database
from tests.accounts import signup
from tests.server.ws.helpers import shared_room

FAST = Backoff(initial=0.1, maximum=0.5)


async def messages_until(client: Client, body: str, timeout: float = 20.0) -> list[Message]:
    """The client's `Message` events up to and including the one with `body`."""
    seen: list[Message] = []
    async with asyncio.timeout(timeout):
        async for event in client.events():
            if isinstance(event, Message):
                seen.append(event)
                if event.body == body:
                    return seen
    raise AssertionError(f"events ended before {body!r}: {seen}")


async def first_event(client: Client, match: Callable[[Event], bool]) -> Event:
    """The client's first event from now on for which `match(event)` holds."""
    async for event in client.events():
        if match(event):
            return event
    raise AssertionError("events ended before a match")


def short_lived(token: str, secret_key: str, seconds: float) -> tuple[str, float]:
    """`token` re-signed with the server's key to expire in `seconds`; and its `exp`."""
    claims = jwt.decode(token, options={"verify_signature": False})
    now = int(time.time())
    claims.update(iat=now, exp=now + seconds, jti=uuid.uuid4().hex)
    return jwt.encode(claims, secret_key, algorithm="HS256"), claims["exp"]


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["kill", "terminate"])
async def test_a_message_sent_across_a_restart_arrives_once_and_is_acked(
    instances, database: Database, stop: str
):
    group = await instances(1)
    server = group[0]
    setup = await shared_room(server.client(), database, 2)
    room = setup.room_id
    async with (
        Client(server.url, setup.accounts[0].access_token, backoff=FAST) as alice,
        Client(server.url, setup.accounts[1].access_token, backoff=FAST) as bob,
    ):
        bob_states: list[State] = []
        bob.on_state(lambda change: bob_states.append(change.state))
        await alice.join(room)
        await bob.join(room)
        before = asyncio.create_task(alice.send(room, "just before the stop"))
        await asyncio.sleep(0)  # written to the socket, or at least queued: acked or not
        await getattr(server, stop)()  # SIGKILL: a crash; SIGTERM: 4503 to every client
        during = asyncio.create_task(alice.send(room, "while the server is down"))
        await server.start()
        async with asyncio.timeout(20):
            seqs = [await before, await during]
        after = await alice.send(room, "after the restart")

        received = await messages_until(bob, "after the restart")
        assert [m.body for m in received] == [
            "just before the stop",
            "while the server is down",
            "after the restart",
        ]
        assert [m.seq for m in received] == [*seqs, after] == [1, 2, 3]
        assert State.RECONNECTING in bob_states and bob.state is State.CONNECTED

    history = await server.client().get(
        f"/api/v1/rooms/{room}/messages", headers=setup.accounts[0].headers
    )
    stored = [item["body"] for item in (await history.json())["items"]]
    assert stored == ["just before the stop", "while the server is down", "after the restart"]


@pytest.mark.slow
async def test_leave_returns_on_the_servers_left_reply_and_the_room_sees_the_member_go(
    instances, database: Database
):
    group = await instances(1)
    server = group[0]
    setup = await shared_room(server.client(), database, 2)
    room, bob_id = setup.room_id, setup.accounts[1].id
    async with (
        Client(server.url, setup.accounts[0].access_token) as alice,
        Client(server.url, setup.accounts[1].access_token) as bob,
    ):
        await alice.join(room)
        await bob.join(room)
        async with asyncio.timeout(10):
            await bob.leave(room)
            assert bob.rooms == {}
            left = await first_event(bob, lambda event: isinstance(event, Left))
            gone = await first_event(
                alice,
                lambda event: (
                    isinstance(event, Presence)
                    and event.user.id == bob_id
                    and event.state == "offline"
                ),
            )
    assert left == Left(room, None)
    assert gone.room == room


@pytest.mark.slow
async def test_a_member_who_joins_mid_answer_gets_the_full_text_so_far(
    instances, database: Database
):
    group = await instances(1, AI_OFFLINE_DELAY=0.05)
    server = group[0]
    setup = await shared_room(server.client(), database, 2, assistant="mention")
    room = setup.room_id
    async with Client(server.url, setup.accounts[0].access_token) as asker:
        await asker.join(room)
        await asker.send(room, "Tell me about lighthouses and their keepers, please", ai=True)
        seen = ""
        async with asyncio.timeout(10):
            deltas = 0
            async for event in asker.events():
                if isinstance(event, AiDelta):
                    seen, deltas = seen + event.text, deltas + 1
                    if deltas == 3:
                        break

        async with Client(server.url, setup.accounts[1].access_token) as late:
            await late.join(room)
            events = late.events()
            async with asyncio.timeout(20):
                start = await anext(events)
                full = await anext(events)
                text = ""
                async for event in events:
                    if isinstance(event, AiDelta):
                        text += event.text
                    elif isinstance(event, Message):
                        stored = event
                    elif isinstance(event, AiEnd):
                        end = event
                        break
    assert isinstance(start, AiStart) and start.reply_to == 1
    assert isinstance(full, AiDelta) and full.full and full.gen == start.gen
    assert full.text.startswith(seen) and seen
    assert stored.author.kind == "assistant" and stored.gen == start.gen
    assert full.text + text == stored.body
    assert end.finish == "stop" and end.seq == stored.seq


@pytest.mark.slow
async def test_an_expiring_token_is_refreshed_and_reauthed_on_the_open_connection(
    instances, database: Database
):
    # A grace of 0: the server closes a connection with 4401 within about a second of its
    # token's exp unless it re-auths. The tokens are re-signed to live 3 seconds.
    group = await instances(1, WS_TOKEN_GRACE=0)
    server = group[0]
    setup = await shared_room(server.client(), database, 2)
    room, ada, bob = setup.room_id, setup.accounts[0], setup.accounts[1]
    short, exp = short_lived(ada.access_token, group.env["SECRET_KEY"], 3)
    refresher = PasswordLogin(server.url, ada.email, ada.password, refresh_token=ada.refresh_token)
    handed_out: list[str] = []

    async def provider() -> str:
        token = short if not handed_out else await refresher()
        handed_out.append(token)
        return token

    states: list[State] = []
    expiring = Client(server.url, provider, reauth_margin=1.0)
    expiring.on_state(lambda change: states.append(change.state))
    # The control: the same kind of token, and nothing to refresh it with.
    control_token, _ = short_lived(bob.access_token, group.env["SECRET_KEY"], 3)
    control = Client(server.url, control_token)
    async with expiring, control, Client(server.url, bob.access_token) as listener:
        session = expiring.session_id
        await expiring.join(room)
        await control.join(room)
        await listener.join(room)
        with pytest.raises(AuthenticationError) as refused:
            async with asyncio.timeout(15):
                await control.wait_closed()
        assert refused.value.code == 4401
        while time.time() < exp + 2:  # past the server's check of the expired token
            await asyncio.sleep(0.2)

        assert expiring.reauths >= 1 and len(handed_out) >= 2
        assert expiring.connections == 1 and expiring.session_id == session
        assert states == [State.CONNECTING, State.CONNECTED]
        seq = await expiring.send(room, "still in the room")
        heard = await messages_until(listener, "still in the room")
        assert heard[-1].seq == seq
        await listener.send(room, "and still hearing it")
        assert (await messages_until(expiring, "and still hearing it"))[-1].author.id == bob.id
    await refresher.close()


def load_bot() -> ModuleType:
    """clients/python/examples/bot.py as a module (examples are not part of the package)."""
    path = Path(__file__).resolve().parents[2] / "clients/python/examples/bot.py"
    spec = importlib.util.spec_from_file_location("roomcast_example_bot", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
async def test_the_example_bot_answers_a_mention_and_nothing_else(instances, database: Database):
    group = await instances(1)
    server = group[0]
    setup = await shared_room(server.client(), database, 1)
    room, ada = setup.room_id, setup.accounts[0]
    bot_account = await signup(server.client(), name="Helper")
    async with database.sessions.begin() as session:
        await teams.add_member(session, setup.team_id, bot_account.id, "member")
    bot = load_bot()
    async with Client(server.url, ada.access_token) as client:
        await client.join(room)
        task = asyncio.create_task(
            bot.main(
                ["--url", server.url, "--email", bot_account.email]
                + ["--password", bot_account.password, "--room", room]
            )
        )
        try:
            async with asyncio.timeout(15):
                async for event in client.events():
                    if isinstance(event, Presence) and event.user.id == bot_account.id:
                        break  # the bot has joined
            await client.send(room, "nobody is mentioned here")
            first = await client.send(room, "hello @helper, what time is it?")
            await client.send(room, "a mail to me@helper.example is no mention")
            second = await client.send(room, "@HELPER are you there")
            received: list[Message] = []
            async with asyncio.timeout(15):
                async for event in client.events():
                    if isinstance(event, Message):
                        received.append(event)
                        if sum(m.author.id == bot_account.id for m in received) == 2:
                            break
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    replies = [m for m in received if m.author.id == bot_account.id]
    assert [m.body for m in received if m.author.id == ada.id] == [
        "nobody is mentioned here",
        "hello @helper, what time is it?",
        "a mail to me@helper.example is no mention",
        "@HELPER are you there",
    ]
    assert first < replies[0].seq and second < replies[1].seq  # one answer per mention
    assert replies[0].body == f"@{ada.name} you said to me: “hello , what time is it?”. " + (
        "I am a bot and I heard you."
    )
    assert "“are you there”" in replies[1].body
