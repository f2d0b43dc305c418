"""A Roomcast bot: logs in, joins a room and answers every message that mentions it.

    python bot.py --url http://localhost:8080 --email bot@example.com \
        --password '...' --room ROOM-ID [--name helper]

It is mentioned by `@<name>` (its account's name unless `--name` is given), anywhere in a
message, in any letter case. It reconnects by itself and, thanks to the client's `seq`
tracking, never answers the same message twice.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re

from roomcast_client import Client, Message, PasswordLogin, State

log = logging.getLogger("roomcast-bot")


def mention_pattern(name: str) -> re.Pattern[str]:
    """`@name` as a word of its own, in any case (not the `@name` of `me@name.example`)."""
    return re.compile(rf"(?<![\w.@])@{re.escape(name)}(?![\w@-]|\.\w)", re.IGNORECASE)


def mentions(message: Message, name: str) -> bool:
    """Whether `message` mentions `@name`."""
    return mention_pattern(name).search(message.body) is not None


def answer(message: Message, name: str) -> str:
    """The bot's reply to a message that mentioned it."""
    asked = " ".join(mention_pattern(name).sub("", message.body).split()) or "(nothing)"
    return f"@{message.author.name} you said to me: “{asked}”. I am a bot and I heard you."


async def run_bot(url: str, email: str, password: str, room: str, name: str | None = None) -> None:
    """Answer mentions in `room` until cancelled (or until the client stops for good)."""
    login = PasswordLogin(url, email, password)
    try:
        async with Client(url, login) as client:
            client.on_state(lambda change: log.info("connection %s", change.state.value))
            me = client.user
            if me is None:  # pragma: no cover - set by connect()
                raise RuntimeError("not connected")
            handle = name or me.name
            await client.join(room)
            log.info("joined %s as @%s", room, handle)
            async for event in client.events():
                if (
                    isinstance(event, Message)
                    and event.room == room
                    and event.author.id != me.id
                    and mentions(event, handle)
                ):
                    seq = await client.send(room, answer(event, handle))
                    log.info("answered #%d with #%d", event.seq, seq)
            if client.state is not State.CLOSED:  # pragma: no cover - events() ends on close
                await client.close()
    finally:
        await login.close()


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("ROOMCAST_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--email", default=os.environ.get("ROOMCAST_EMAIL"), required=False)
    parser.add_argument("--password", default=os.environ.get("ROOMCAST_PASSWORD"))
    parser.add_argument("--room", required=True)
    parser.add_argument("--name", help="the handle it answers to (default: its account name)")
    args = parser.parse_args(argv)
    if not args.email or not args.password:
        parser.error("--email and --password (or ROOMCAST_EMAIL, ROOMCAST_PASSWORD) are needed")
    await run_bot(args.url, args.email, args.password, args.room, args.name)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main())
